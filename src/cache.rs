//! The response cache (issue 13): an answer to a read is kept and given again to the same
//! caller asking the same thing, for as long as nothing it could depend on has changed.
//!
//! Readers ask the same questions over and over (a dashboard's trusted documents, a network
//! system's nightly pull) while the data changes a few times a day, so most answers can be
//! given again instead of worked out again. What keeps that safe:
//!
//! - **Who**: the key holds the caller's token id (or "anonymous") and everything the request
//!   authenticated to (role, network, region, organisation, scopes), so a token whose stored
//!   row is changed gets answers of its own; tokens without an id are never cached. Every
//!   request still authenticates, so a revoked or expired token gets no cached answer.
//! - **What**: the query text, variables and operation name, whole (no hash to collide), and
//!   the UTC date (memberships "now" change at midnight).
//! - **Changes**: `data_version` (migration 000012), moved by triggers on every table readers
//!   see, is read before each cached read; an answer made at another version is not given.
//!   The read happens before the answer is worked out, so an answer is never newer than its
//!   version says it is older than.
//! - **Time**: a grant that expires changes what callers see without a write, so an answer is
//!   kept at most until the next grant in force expires, and never longer than the TTL.
//! - **Which reads**: queries whose root fields are all in [`CACHEABLE_ROOTS`], answered without
//!   any error. Mutations, batches, the viewer, tokens, grants and the access log never are;
//!   nor a document that names `asOf` (an instant ahead of now makes its answer change with the
//!   clock), nor a document and variables over [`MAX_REQUEST_BYTES`] or an answer over a
//!   sixteenth of the cache (so padding cannot fill memory past `cache.max_bytes`).
//! - **Accountability**: each answer keeps the access-log entries its making recorded, and a
//!   cached answer records them again, for this caller, now. Rate limits and pricing run as
//!   before, ahead of the cache.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::sql::Sql;

/// Root fields whose answers may be kept: the directory, the catalogue, returns and impact.
pub const CACHEABLE_ROOTS: [&str; 10] = [
    "regions",
    "region",
    "networks",
    "network",
    "institutions",
    "institution",
    "organisations",
    "metrics",
    "returns",
    "impact",
];

/// The most bytes of document and variables a kept read may have: dashboards' documents are a
/// few kilobytes; a padded one is not kept.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;

/// What the cache is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    caller: String,
    query: String,
    variables: String,
    operation: Option<String>,
    day: NaiveDate,
}

impl Key {
    /// The key of a request, when it may be cached: a query (not a mutation), every root
    /// field cacheable, from an anonymous caller or a token with an id.
    pub fn of(
        caller: &Caller,
        query: &str,
        variables: &async_graphql::Variables,
        operation: Option<&str>,
        doc: &ExecutableDocument,
        now: DateTime<Utc>,
    ) -> Option<Key> {
        if !cacheable(doc, operation) || query.contains("asOf") {
            return None;
        }
        let caller = match caller.principal() {
            None => "anonymous".to_owned(),
            // What the request authenticated to, not only which token: the stored row of a
            // token decides its reach, and an operator may change it.
            Some(p) => format!(
                "token:{} {} network={:?} region={:?} org={:?} scopes={:?}",
                p.token_id.as_deref()?,
                p.role.as_str(),
                p.network.as_ref().map(|n| n.id),
                p.region.as_ref().map(|r| r.as_str()),
                p.organisation.as_ref().map(|o| o.id),
                p.scopes,
            ),
        };
        let variables = serde_json::to_string(variables).ok()?;
        if query.len() + variables.len() > MAX_REQUEST_BYTES {
            return None;
        }
        Some(Key {
            caller,
            query: query.to_owned(),
            variables,
            operation: operation.map(str::to_owned),
            day: now.date_naive(),
        })
    }
}

/// Whether the operation that runs is a query whose root fields are all cacheable. Fragments
/// at the root are not looked into: such a request is not cached.
fn cacheable(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    op.node.ty == OperationType::Query
        && op
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                Selection::Field(f) => CACHEABLE_ROOTS.contains(&f.node.name.node.as_str()),
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
            })
}

/// An access-log entry an answer's making recorded, to record again when it is given again.
#[derive(Debug, Clone)]
pub struct Read {
    pub operation: String,
    pub networks: Vec<i64>,
    pub refused: bool,
}

/// A kept answer.
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    pub reads: Vec<Read>,
    version: i64,
    until: DateTime<Utc>,
}

/// Where the data stands: the counter and the next instant a grant in force expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Freshness {
    pub version: i64,
    pub next_expiry: Option<DateTime<Utc>>,
}

/// Reads where the data stands, in one statement.
pub async fn freshness<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> ApiResult<Freshness> {
    let statement = Sql::format(
        "SELECT (SELECT version FROM data_version WHERE id = 1) AS version, \
         (SELECT MIN(expires_at) FROM grants WHERE revoked_at IS NULL AND expires_at > {}) AS next_expiry",
        [Sql::value(now)],
    )
    .statement(db.get_database_backend());
    Freshness::find_by_statement(statement)
        .one(db)
        .await
        .map_err(|e| anyhow::Error::new(e).context("Failed to read the data version"))?
        .ok_or_else(|| anyhow::anyhow!("data_version has no row").into())
}

/// The cache: bounded by the bytes of the answers it keeps.
pub struct ResponseCache {
    entries: moka::sync::Cache<Key, Arc<Answer>>,
    ttl: Duration,
    /// The largest answer kept.
    max_answer: usize,
}

impl ResponseCache {
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &Key, a: &Arc<Answer>| {
                    let bytes = k.query.len() + k.variables.len() + a.body.len() + 256;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            ttl,
            max_answer: usize::try_from(max_bytes / 16).unwrap_or(usize::MAX),
        }
    }

    /// The kept answer to `key`, if it was made at the data's present version and is still
    /// within its time.
    pub fn get(&self, key: &Key, now: DateTime<Utc>, at: Freshness) -> Option<Arc<Answer>> {
        let a = self.entries.get(key)?;
        if a.version == at.version && now < a.until {
            Some(a)
        } else {
            self.entries.invalidate(key);
            None
        }
    }

    /// Keeps an answer made at `at` (read before it was made, at `made`).
    pub fn put(
        &self,
        key: Key,
        body: String,
        reads: Vec<Read>,
        made: DateTime<Utc>,
        at: Freshness,
    ) {
        if body.len() > self.max_answer {
            return;
        }
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(60));
        let until = match at.next_expiry {
            Some(t) => t.min(made + ttl),
            None => made + ttl,
        };
        self.entries.insert(
            key,
            Arc::new(Answer {
                body,
                reads,
                version: at.version,
                until,
            }),
        );
        // Evict now rather than at moka's next housekeeping, so the bound holds as it fills.
        self.entries.run_pending_tasks();
    }
}

/// The tracked tables (migration 000012) that have lost their data-version trigger, for
/// instance to a table rebuilt by hand: while any has, the cache must stay off.
pub async fn untracked_tables<C: ConnectionTrait>(db: &C) -> ApiResult<Vec<&'static str>> {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT DISTINCT event_object_table AS name FROM information_schema.triggers \
             WHERE trigger_name LIKE '%_data_version'"
        }
        _ => {
            "SELECT DISTINCT tbl_name AS name FROM sqlite_master WHERE type = 'trigger' \
             AND name LIKE '%_data_version_%'"
        }
    };
    #[derive(FromQueryResult)]
    struct Name {
        name: String,
    }
    let found: Vec<String> =
        Name::find_by_statement(Sql::raw(sql).statement(db.get_database_backend()))
            .all(db)
            .await
            .map_err(|e| anyhow::Error::new(e).context("Failed to list the data-version triggers"))?
            .into_iter()
            .map(|n| n.name)
            .collect();
    Ok(migration::m20261130_000012_data_version::TRACKED
        .into_iter()
        .filter(|t| !found.iter().any(|f| f == t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn only_queries_of_cacheable_roots_are_kept() {
        assert!(cacheable(
            &doc("{ networks(first: 1) { nodes { key } } }"),
            None
        ));
        assert!(cacheable(
            &doc(
                "query A { returns(first: 1) { nodes { id } } impact(input: $i) { cells { value } } }"
            ),
            None
        ));
        assert!(!cacheable(&doc("{ me { subject } }"), None));
        assert!(!cacheable(
            &doc("{ networks(first: 1) { nodes { key } } grants(networkId: 1) { id } }"),
            None
        ));
        assert!(!cacheable(
            &doc("mutation { revokeGrant(id: 1) { id } }"),
            None
        ));
        assert!(!cacheable(
            &doc("{ ... on Query { networks(first: 1) { nodes { key } } } }"),
            None
        ));
        let two =
            doc("query A { networks(first: 1) { nodes { key } } } query B { me { subject } }");
        assert!(cacheable(&two, Some("A")));
        assert!(!cacheable(&two, Some("B")));
        assert!(!cacheable(&two, None));
    }

    #[test]
    fn reads_naming_as_of_or_padded_past_the_bound_are_not_kept() {
        let now = Utc::now();
        let vars = async_graphql::Variables::default();
        let key = |q: &str| Key::of(&Caller::Anonymous, q, &vars, None, &doc(q), now);
        assert!(key("{ metrics { code } }").is_some());
        assert!(
            key("query($a: DateTime) { returns(first: 1, asOf: $a) { totalCount } }").is_none()
        );
        let padded = format!(
            "{{ metrics {{ code }} }}\n#{}",
            "x".repeat(MAX_REQUEST_BYTES)
        );
        assert!(key(&padded).is_none());
        let cache = ResponseCache::new(16 * 1024, Duration::from_secs(60));
        let at = Freshness {
            version: 1,
            next_expiry: None,
        };
        let k = key("{ metrics { code } }").unwrap();
        cache.put(k.clone(), "x".repeat(2 * 1024), vec![], now, at);
        assert!(
            cache.get(&k, now, at).is_none(),
            "over a sixteenth of the cache"
        );
        cache.put(k.clone(), "x".repeat(512), vec![], now, at);
        assert!(cache.get(&k, now, at).is_some());
    }

    #[test]
    fn an_answer_ends_with_a_write_a_grant_expiry_or_its_time() {
        let cache = ResponseCache::new(1 << 20, Duration::from_secs(60));
        let now = Utc::now();
        let key = Key {
            caller: "anonymous".into(),
            query: "{ networks(first: 1) { nodes { key } } }".into(),
            variables: "{}".into(),
            operation: None,
            day: now.date_naive(),
        };
        let at = Freshness {
            version: 7,
            next_expiry: Some(now + chrono::Duration::seconds(10)),
        };
        cache.put(key.clone(), "{}".into(), vec![], now, at);
        assert!(cache.get(&key, now, at).is_some());
        let moved = Freshness { version: 8, ..at };
        assert!(cache.get(&key, now, moved).is_none(), "a write ends it");
        cache.put(key.clone(), "{}".into(), vec![], now, at);
        assert!(
            cache
                .get(&key, now + chrono::Duration::seconds(11), at)
                .is_none(),
            "a grant's expiry ends it"
        );
        let none = Freshness {
            version: 7,
            next_expiry: None,
        };
        cache.put(key.clone(), "{}".into(), vec![], now, none);
        assert!(
            cache
                .get(&key, now + chrono::Duration::seconds(59), none)
                .is_some()
        );
        assert!(
            cache
                .get(&key, now + chrono::Duration::seconds(61), none)
                .is_none(),
            "the TTL ends it"
        );
    }
}
