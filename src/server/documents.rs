//! Trusted documents (persisted operations): operations an operator registered, which
//! clients run by id (`{"documentId": "…"}`, the GraphQL-over-HTTP persisted-documents
//! convention). With `trusted_documents.anonymous_only`, callers without a token run these
//! and nothing else, so a public endpoint answers only the operations its dashboards use.
//!
//! The registry is a JSON object from id to document text, read once at start; `anchorfed
//! documents add` writes it. Ids are `sha256:<hex of the text>` unless the operator names one.
//! The dashboard's operations (`crate::dashboard::DOCUMENTS`) are built in: every server
//! registers them, with or without a file, and a file cannot take their ids.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

#[derive(Debug, Default)]
pub struct TrustedDocuments {
    by_id: BTreeMap<String, String>,
}

impl TrustedDocuments {
    /// Reads the registry; no file configured is an empty registry. A file that cannot be
    /// read, or a document in it that does not parse, stops the service at start.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut by_id: BTreeMap<String, String> = built_in()
            .map(|(id, text)| (id.to_owned(), text.to_owned()))
            .collect();
        let Some(path) = file else {
            return Ok(Self { by_id });
        };
        for (id, text) in read(path)? {
            check(&text).with_context(|| {
                format!(
                    "trusted document `{id}` in {} does not parse",
                    path.display()
                )
            })?;
            if by_id.get(&id).is_some_and(|b| *b != text) {
                anyhow::bail!(
                    "trusted document `{id}` in {} takes the id of a built-in document; remove it or give it another id",
                    path.display()
                );
            }
            by_id.insert(id, text);
        }
        Ok(Self { by_id })
    }

    /// How many documents came from the registry file, not built in.
    pub fn registered(&self) -> usize {
        self.by_id
            .keys()
            .filter(|id| !built_in().any(|(b, _)| b == id.as_str()))
            .count()
    }

    pub fn get(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The documents every server registers: the dashboard's operations.
fn built_in() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::dashboard::DOCUMENTS.iter().copied()
}

/// The id a document is registered under when the operator names none.
pub fn content_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn check(text: &str) -> anyhow::Result<()> {
    async_graphql::parser::parse_query(text)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn read(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let raw = std::fs::read_to_string(path).with_context(|| {
        format!(
            "Failed to read the trusted documents file {} (trusted_documents.file)",
            path.display()
        )
    })?;
    serde_json::from_str(&raw).with_context(|| {
        format!(
            "{} is not a JSON object from document id to document text",
            path.display()
        )
    })
}

/// Registers `text` in the registry at `path` (created when missing) under `id`, or under
/// its content id; returns the id. Registering the same text again changes nothing; a
/// different text under a taken id is refused.
pub fn register(path: &Path, text: &str, id: Option<&str>) -> anyhow::Result<String> {
    check(text).context("the document does not parse")?;
    let mut by_id = if path.exists() {
        read(path)?
    } else {
        BTreeMap::new()
    };
    let id = id.map(str::to_owned).unwrap_or_else(|| content_id(text));
    if id.trim().is_empty() {
        anyhow::bail!("--id must not be empty");
    }
    if built_in().any(|(b, _)| b == id) {
        anyhow::bail!("`{id}` is a built-in document (the dashboard's); give another --id");
    }
    match by_id.get(&id) {
        Some(existing) if existing == text => return Ok(id),
        Some(_) => anyhow::bail!(
            "`{id}` is already registered with another document; give another --id (clients that use it would change under them)"
        ),
        None => {}
    }
    by_id.insert(id.clone(), text.to_owned());
    let json = serde_json::to_string_pretty(&by_id).context("Failed to encode the registry")?;
    // Written whole, then renamed over the old one: a server starting meanwhile reads
    // either registry, never half of one.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json + "\n")
        .with_context(|| format!("Failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("Failed to replace {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_by_content_or_name_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs.json");
        let q = "query Regions { regions { code } }";
        let id = register(&path, q, None).unwrap();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        assert_eq!(register(&path, q, None).unwrap(), id);
        assert_eq!(
            register(&path, "{ metrics { code } }", Some("dashboard-metrics")).unwrap(),
            "dashboard-metrics"
        );
        assert!(register(&path, "{ regions { name } }", Some("dashboard-metrics")).is_err());
        assert!(register(&path, "{ regions {", None).is_err());
        assert!(register(&path, "{ regions { name } }", Some("dashboard-headline")).is_err());
        let docs = TrustedDocuments::load(Some(&path)).unwrap();
        assert_eq!(docs.registered(), 2);
        assert_eq!(docs.len(), 2 + crate::dashboard::DOCUMENTS.len());
        assert_eq!(docs.get(&id), Some(q));
        assert_eq!(docs.get("nope"), None);
    }

    #[test]
    fn a_bad_registry_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs.json");
        std::fs::write(&path, r#"{"a": "{ regions {"}"#).unwrap();
        let err = format!("{:#}", TrustedDocuments::load(Some(&path)).unwrap_err());
        assert!(err.contains("`a`"), "{err}");
        assert!(TrustedDocuments::load(Some(&dir.path().join("missing.json"))).is_err());
        let built_in = TrustedDocuments::load(None).unwrap();
        assert_eq!(built_in.registered(), 0);
        assert!(built_in.get("dashboard-headline").is_some());
        std::fs::write(&path, r#"{"dashboard-headline": "{ regions { code } }"}"#).unwrap();
        let err = format!("{:#}", TrustedDocuments::load(Some(&path)).unwrap_err());
        assert!(err.contains("built-in"), "{err}");
    }
}
