//! Settings, layered: built-in defaults, then a TOML file (`--config`, `ANCHORFED_CONFIG`, or
//! `./anchorfed.toml` when present), then `ANCHORFED_*` variables (nested keys with `__`, such
//! as `ANCHORFED_LIMITS__DEPTH=10`), then `DATABASE_URL`. Validated once at start, so a bad
//! setting stops the service with a message that says what to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("setting `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Request limits. async-graphql enforces depth and complexity; the HTTP handler enforces
/// the rest, which async-graphql lacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub depth: usize,
    pub complexity: usize,
    pub aliases: usize,
    pub root_fields: usize,
    /// Fragment definitions in one document.
    pub fragments: usize,
    pub batch: usize,
    pub body_bytes: usize,
    /// Multipart (file upload) request bodies; larger files go through `anchorfed import`.
    pub upload_bytes: usize,
    /// Streamed import bodies (`POST /imports/spend`), counted as they stream.
    pub import_bytes: u64,
    /// Spend imports running at once on this server (`POST /imports/spend`): each holds two
    /// database connections of its own for as long as its body streams.
    pub imports_at_once: usize,
    /// How long one request's operations may run before they are stopped (and, on
    /// PostgreSQL, each statement's `statement_timeout`).
    pub request_timeout_seconds: u64,
    /// The largest answer a query may have, serialized.
    pub response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 15,
            complexity: 20_000,
            aliases: 30,
            root_fields: 20,
            fragments: 100,
            batch: 10,
            body_bytes: 1 << 20,
            upload_bytes: 16 << 20,
            import_bytes: 8 << 30,
            imports_at_once: 4,
            request_timeout_seconds: 30,
            response_bytes: 8 << 20,
        }
    }
}

/// Per-caller budgets of query cost (the complexity async-graphql counts, `impact` priced by
/// its cells), refilled continuously: a caller may spend `burst` at once and `per_minute`
/// over a minute. Token callers are keyed by token, anonymous callers by client address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    pub anonymous_per_minute: u32,
    pub anonymous_burst: u32,
    pub token_per_minute: u32,
    pub token_burst: u32,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed; from anyone else the
    /// header is ignored and the connection's own address is the client's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_per_minute: 60_000,
            anonymous_burst: 40_000,
            token_per_minute: 600_000,
            token_burst: 100_000,
            trusted_proxies: vec![],
        }
    }
}

/// Registered operations (persisted documents) that clients run by id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedDocuments {
    /// A JSON object from document id to document text (`anchorfed documents add` writes it).
    pub file: Option<PathBuf>,
    /// Anonymous callers may run registered documents only: those of the file and the
    /// built-in ones (the dashboard's), so without a file, the dashboard's only.
    pub anonymous_only: bool,
}

/// The response cache (`cache.rs`): answers to repeated reads, kept while the data stands.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub enabled: bool,
    /// The bytes of answers kept at most (the least recently used go first).
    pub max_bytes: u64,
    /// The longest an answer is kept, even with nothing changed.
    pub ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 64 * 1024 * 1024,
            ttl_seconds: 60,
        }
    }
}

/// Where `/metrics` is served: nowhere (the default), on its own address, or on the main
/// address behind a bearer token (or both: its own address and a token).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// Serve `/metrics` here only, such as an address that only the scraper can reach.
    pub bind: Option<SocketAddr>,
    /// The bearer token a scraper must send.
    pub token: Option<SecretString>,
}

/// How this service signs the tokens it issues.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// A shared secret: generated into the data directory on first run unless configured.
    #[default]
    HS256,
    /// An Ed25519 key pair (PEM files), so other nodes can verify with the public key alone.
    EdDSA,
    /// An RSA key pair (PEM files).
    RS256,
}

/// Which claims of an external identity provider's tokens carry what anchorfed needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimMapping {
    pub subject: String,
    pub role: String,
    pub network: String,
    pub region: String,
    pub organisation: String,
    pub scope: String,
    /// The provider's role values and the anchorfed role each means (`"coordinator" =
    /// "NETWORK_ADMIN"`); when empty the claim must hold an anchorfed role name.
    pub roles: std::collections::BTreeMap<String, String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            role: "role".into(),
            network: "network".into(),
            region: "region".into(),
            organisation: "org".into(),
            scope: "scope".into(),
            roles: Default::default(),
        }
    }
}

/// An identity provider whose tokens are trusted: its issuer, its keys (a JWKS file, keys
/// chosen by `kid`) and the mapping from its claims.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: PathBuf,
    /// The algorithms accepted from this issuer (default RS256).
    #[serde(default = "default_external_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub claims: ClaimMapping,
}

fn default_external_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `iss` of the tokens this service issues.
    pub issuer: String,
    /// `aud` the tokens this service issues and accepts carry.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    pub algorithm: SigningAlgorithm,
    /// HS256: the secret's file (default `<data_dir>/token-secret`, generated on first run).
    pub secret_file: Option<PathBuf>,
    /// EdDSA or RS256: the private key (PEM) to sign with; a node that only verifies omits it.
    pub private_key_file: Option<PathBuf>,
    /// EdDSA or RS256: the public key (PEM) to verify with.
    pub public_key_file: Option<PathBuf>,
    /// A `kid` to put in issued tokens' headers and to require on the way in.
    pub key_id: Option<String>,
    /// Lifetime of an issued token when none is asked for (30 days).
    pub default_ttl_seconds: u64,
    /// The longest lifetime a token may be issued with (365 days).
    pub max_ttl_seconds: u64,
    pub external: Vec<ExternalIssuer>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "anchorfed".into(),
            audience: "anchorfed".into(),
            leeway_seconds: 30,
            algorithm: SigningAlgorithm::HS256,
            secret_file: None,
            private_key_file: None,
            public_key_file: None,
            key_id: None,
            default_ttl_seconds: 30 * 24 * 3600,
            max_ttl_seconds: 365 * 24 * 3600,
            external: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Where the embedded SQLite file and generated keys live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; the SQLite file in `data_dir` when unset.
    pub database_url: Option<SecretString>,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `anchorfed=debug,info`.
    pub log_level: String,
    pub graphiql: bool,
    pub introspection: bool,
    /// With `introspection` on, whether callers without a token may introspect too.
    pub introspection_anonymous: bool,
    pub limits: Limits,
    pub rate_limit: RateLimits,
    pub trusted_documents: TrustedDocuments,
    pub metrics: MetricsSettings,
    pub cache: CacheSettings,
    pub shutdown_timeout_seconds: u64,
    pub auth: AuthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            db_max_connections: 16,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            graphiql: true,
            introspection: true,
            introspection_anonymous: true,
            limits: Limits::default(),
            rate_limit: RateLimits::default(),
            trusted_documents: TrustedDocuments::default(),
            metrics: MetricsSettings::default(),
            cache: CacheSettings::default(),
            shutdown_timeout_seconds: 30,
            auth: AuthSettings::default(),
        }
    }
}

impl Settings {
    /// Loads settings from the layers above. `file` overrides where the TOML file is read from.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ANCHORFED_CONFIG").map(PathBuf::from));
        let mut fig = Figment::new();
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid {
                        key: "config",
                        reason: format!("the settings file {} does not exist", path.display()),
                    });
                }
                fig = fig.merge(Toml::file(path));
            }
            None => fig = fig.merge(Toml::file("anchorfed.toml")),
        }
        let settings: Settings = fig
            .merge(Env::prefixed("ANCHORFED_").ignore(&["CONFIG"]).split("__"))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            )
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    // Long because it is one check per setting, in the order the README's table lists them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, v) in [
            ("limits.depth", l.depth),
            ("limits.complexity", l.complexity),
            ("limits.aliases", l.aliases),
            ("limits.root_fields", l.root_fields),
            ("limits.fragments", l.fragments),
            ("limits.batch", l.batch),
            ("limits.body_bytes", l.body_bytes),
            ("limits.upload_bytes", l.upload_bytes),
            (
                "limits.import_bytes",
                usize::try_from(l.import_bytes).unwrap_or(usize::MAX),
            ),
            ("limits.response_bytes", l.response_bytes),
            ("limits.imports_at_once", l.imports_at_once),
            (
                "limits.request_timeout_seconds",
                usize::try_from(l.request_timeout_seconds).unwrap_or(usize::MAX),
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        self.validate_rate_limits()?;
        self.validate_metrics()?;
        if self.db_max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "db_max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError::Invalid {
                    key: "database_url",
                    reason: "must start with sqlite:, postgres:// or postgresql://".into(),
                });
            }
        }
        let a = &self.auth;
        if a.issuer.trim().is_empty() || a.audience.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "auth.issuer",
                reason: "auth.issuer and auth.audience must not be empty".into(),
            });
        }
        if a.default_ttl_seconds == 0 || a.default_ttl_seconds > a.max_ttl_seconds {
            return Err(ConfigError::Invalid {
                key: "auth.default_ttl_seconds",
                reason: "must be at least 1 and at most auth.max_ttl_seconds".into(),
            });
        }
        if a.algorithm != SigningAlgorithm::HS256 && a.public_key_file.is_none() {
            return Err(ConfigError::Invalid {
                key: "auth.public_key_file",
                reason: format!(
                    "{:?} needs the public key (PEM) to verify tokens",
                    a.algorithm
                ),
            });
        }
        for e in &a.external {
            if e.issuer == a.issuer {
                return Err(ConfigError::Invalid {
                    key: "auth.external.issuer",
                    reason: format!("`{}` is this service's own issuer", e.issuer),
                });
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError::Invalid {
                key: "log_level",
                reason: format!("{e} (try `info` or `anchorfed=debug,info`)"),
            });
        }
        Ok(())
    }

    fn validate_rate_limits(&self) -> Result<(), ConfigError> {
        let r = &self.rate_limit;
        if !r.enabled {
            return Ok(());
        }
        let complexity = self.limits.complexity;
        for (key, per_minute, burst) in [
            (
                "rate_limit.anonymous_burst",
                r.anonymous_per_minute,
                r.anonymous_burst,
            ),
            ("rate_limit.token_burst", r.token_per_minute, r.token_burst),
        ] {
            if per_minute == 0 {
                return Err(ConfigError::Invalid {
                    key: if key == "rate_limit.token_burst" {
                        "rate_limit.token_per_minute"
                    } else {
                        "rate_limit.anonymous_per_minute"
                    },
                    reason: "must be at least 1 (or set rate_limit.enabled = false)".into(),
                });
            }
            // A request the complexity limit admits must be able to pass a full bucket.
            if (burst as usize) < complexity {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be at least limits.complexity ({complexity})"),
                });
            }
        }
        Ok(())
    }

    fn validate_metrics(&self) -> Result<(), ConfigError> {
        let m = &self.metrics;
        if let Some(t) = &m.token
            && t.expose_secret().trim().len() < 16
        {
            return Err(ConfigError::Invalid {
                key: "metrics.token",
                reason: "must be at least 16 characters".into(),
            });
        }
        if m.enabled && m.bind.is_none() && m.token.is_none() {
            return Err(ConfigError::Invalid {
                key: "metrics.enabled",
                reason: "on the main address, /metrics needs metrics.token; or give it its own \
                         address with metrics.bind"
                    .into(),
            });
        }
        if m.bind.is_some_and(|b| b == self.bind && b.port() != 0) {
            return Err(ConfigError::Invalid {
                key: "metrics.bind",
                reason: "must differ from bind".into(),
            });
        }
        Ok(())
    }

    /// The cost a caller may spend a minute.
    pub fn rate_limit_per_minute(&self, with_token: bool) -> u32 {
        if with_token {
            self.rate_limit.token_per_minute
        } else {
            self.rate_limit.anonymous_per_minute
        }
    }

    /// The database to use: the configured URL, or a SQLite file in the data directory.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("anchorfed.sqlite");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn zero_limit_is_refused_by_name() {
        let mut s = Settings::default();
        s.limits.aliases = 0;
        let err = s.validate().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("limits.aliases"), "{err}");
    }

    #[test]
    fn public_metrics_on_the_main_address_are_refused() {
        let mut s = Settings::default();
        s.metrics.enabled = true;
        let err = s.validate().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("metrics.enabled"), "{err}");
        s.metrics.token = Some(SecretString::from("a-long-enough-scraper-token"));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_burst_below_the_complexity_limit_is_refused() {
        let mut s = Settings::default();
        s.rate_limit.anonymous_burst = 10;
        let err = s.validate().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("rate_limit.anonymous_burst"), "{err}");
    }

    #[test]
    fn foreign_database_is_refused() {
        let s = Settings {
            database_url: Some(SecretString::from("mysql://x")),
            ..Settings::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings {
            database_url: Some(SecretString::from("postgres://u:hunter2@h/db")),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
