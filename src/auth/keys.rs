//! Signing and verification keys: this service's own (HS256 secret generated on first run,
//! or an EdDSA / RS256 key pair from PEM files) and those of trusted identity providers
//! (JWKS files, keys chosen by `kid`). Loaded once at start; a bad key file stops the start.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::config::{AuthSettings, ClaimMapping, ExternalIssuer, SigningAlgorithm};

pub(crate) struct OwnKeys {
    pub algorithm: Algorithm,
    pub encoding: Option<EncodingKey>,
    pub decoding: DecodingKey,
    pub kid: Option<String>,
}

pub(crate) struct ExternalKeys {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub keys: HashMap<String, DecodingKey>,
    pub claims: ClaimMapping,
}

/// Every key the service signs or verifies tokens with.
pub struct Keys {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) leeway: u64,
    pub(crate) own: OwnKeys,
    pub(crate) external: Vec<ExternalKeys>,
    pub(crate) default_ttl: u64,
    pub(crate) max_ttl: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.own.algorithm)
            .field(
                "external",
                &self.external.iter().map(|e| &e.issuer).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("Failed to read {what} from {}", path.display()))
}

/// Reads the HS256 secret, generating one (32 random bytes, readable by the owner only) the
/// first time.
fn secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.exists() {
        let text = String::from_utf8(read(path, "the token secret")?)
            .context("The token secret file is not text")?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .context("The token secret file is not base64url")?;
        if bytes.len() < 32 {
            bail!(
                "The token secret in {} is shorter than 32 bytes",
                path.display()
            );
        }
        return Ok(bytes);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("No randomness for the token secret: {e}"))?;
    write_private(path, URL_SAFE_NO_PAD.encode(&bytes).as_bytes())?;
    tracing::info!(path = %path.display(), "generated a token signing secret");
    Ok(bytes)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("Failed to write {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("Failed to write {}", path.display()))
}

fn algorithm(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => bail!(
            "`{other}` is not an accepted algorithm for an external issuer (symmetric ones never are)"
        ),
    }
}

impl Keys {
    pub fn load(a: &AuthSettings, data_dir: &Path) -> anyhow::Result<Self> {
        let own = match a.algorithm {
            SigningAlgorithm::HS256 => hs256_keys(a, data_dir)?,
            alg @ (SigningAlgorithm::EdDSA | SigningAlgorithm::RS256) => pem_keys(a, alg)?,
        };
        let external = a
            .external
            .iter()
            .map(external_keys)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway: a.leeway_seconds,
            own,
            external,
            default_ttl: a.default_ttl_seconds,
            max_ttl: a.max_ttl_seconds,
        })
    }

    /// Whether this node can issue tokens (it holds a signing key).
    pub fn can_sign(&self) -> bool {
        self.own.encoding.is_some()
    }
}

/// This service's HS256 secret, from `auth.secret_file` or the data directory.
fn hs256_keys(a: &AuthSettings, data_dir: &Path) -> anyhow::Result<OwnKeys> {
    let path = a
        .secret_file
        .clone()
        .unwrap_or_else(|| data_dir.join("token-secret"));
    let s = secret(&path)?;
    Ok(OwnKeys {
        algorithm: Algorithm::HS256,
        encoding: Some(EncodingKey::from_secret(&s)),
        decoding: DecodingKey::from_secret(&s),
        kid: a.key_id.clone(),
    })
}

/// This service's EdDSA or RS256 key pair from PEM files; without the private key it can
/// verify but not sign.
fn pem_keys(a: &AuthSettings, alg: SigningAlgorithm) -> anyhow::Result<OwnKeys> {
    let public = a
        .public_key_file
        .as_ref()
        .context("auth.public_key_file is required for EdDSA and RS256")?;
    let pem = read(public, "the public key")?;
    let private = a
        .private_key_file
        .as_ref()
        .map(|p| read(p, "the private key"))
        .transpose()?;
    let (algorithm, decoding, encoding) = if alg == SigningAlgorithm::EdDSA {
        (
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(&pem)
                .context("auth.public_key_file is not an Ed25519 public key (PEM)")?,
            private
                .map(|k| {
                    EncodingKey::from_ed_pem(&k)
                        .context("auth.private_key_file is not an Ed25519 private key (PEM)")
                })
                .transpose()?,
        )
    } else {
        (
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(&pem)
                .context("auth.public_key_file is not an RSA public key (PEM)")?,
            private
                .map(|k| {
                    EncodingKey::from_rsa_pem(&k)
                        .context("auth.private_key_file is not an RSA private key (PEM)")
                })
                .transpose()?,
        )
    };
    Ok(OwnKeys {
        algorithm,
        encoding,
        decoding,
        kid: a.key_id.clone(),
    })
}

/// A trusted identity provider's keys, read from its JWKS file and chosen by `kid`.
fn external_keys(e: &ExternalIssuer) -> anyhow::Result<ExternalKeys> {
    let jwks: JwkSet = serde_json::from_slice(&read(&e.jwks_file, "a JWKS")?)
        .with_context(|| format!("{} is not a JWKS (JSON Web Key Set)", e.jwks_file.display()))?;
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let kid = jwk.common.key_id.clone().with_context(|| {
            format!(
                "a key in {} has no kid; every key must have one",
                e.jwks_file.display()
            )
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .with_context(|| format!("key {kid} in {} cannot verify", e.jwks_file.display()))?;
        keys.insert(kid, key);
    }
    Ok(ExternalKeys {
        issuer: e.issuer.clone(),
        audience: e.audience.clone(),
        algorithms: e
            .algorithms
            .iter()
            .map(|n| algorithm(n))
            .collect::<anyhow::Result<_>>()?,
        keys,
        claims: e.claims.clone(),
    })
}
