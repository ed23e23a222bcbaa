//! What the command line does beyond serving: issuing and revoking tokens and importing
//! returns at the console. Whoever can run these holds the database and the signing key, so
//! they act as an operator (imports: as the network's admin). Each returns what happened; the
//! binary prints it.

use anyhow::Context;
use sea_orm::DatabaseConnection;

use crate::auth::{self, IssueRequest, Keys};
use crate::config::Settings;
use crate::db;
use crate::domain::{GssCode, IdOrKey, Role};
use crate::error::ApiError;

// The flags of `anchorfed token issue`, as given. (A doc comment here would replace the
// subcommand's own in `--help`.)
#[derive(Debug, clap::Args)]
pub struct TokenIssue {
    /// OPERATOR, NETWORK_ADMIN, NETWORK_SUBMITTER, REGION_ANALYST or RESEARCHER.
    #[arg(long)]
    pub role: String,
    /// The network's key (admins and submitters).
    #[arg(long)]
    pub network: Option<String>,
    /// The region's GSS code (analysts).
    #[arg(long)]
    pub region: Option<String>,
    /// The organisation's key (researchers).
    #[arg(long)]
    pub org: Option<String>,
    /// A scope entry, repeatable: metrics:spend, years:2021/22-2023/24, network:KEY, read:impact, …
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime, such as 1h, 30d or 3600 (seconds); default 30 days.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Who or what will hold it, for the record.
    #[arg(long)]
    pub subject: Option<String>,
}

fn bad(flag: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{flag}: {e}")
}

/// A refusal of the console's input, naming flags where the service names input fields.
fn refused_flags(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::Forbidden { .. } => {
            e.into_anyhow()
        }
        other => anyhow::anyhow!("{}", other.message().replace("input.", "--")),
    }
}

/// The database, migrated: the console may be the first to touch it.
async fn open(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let conn = db::connect(&settings.database_url(), 2, None).await?;
    db::migrate(&conn).await?;
    Ok(conn)
}

/// An optional flag's value, parsed; a bad one names the flag.
fn optional<T, E: std::fmt::Display>(
    raw: Option<&str>,
    flag: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> anyhow::Result<Option<T>> {
    raw.map(parse).transpose().map_err(|e| bad(flag, e))
}

/// Issues a token and returns it with its id and expiry.
pub async fn token_issue(
    settings: &Settings,
    t: TokenIssue,
) -> anyhow::Result<(String, String, String)> {
    let role: Role = t.role.parse().map_err(|e| bad("--role", e))?;
    let network = optional(t.network.as_deref(), "--network", IdOrKey::parse)?;
    let region = optional(t.region.as_deref(), "--region", GssCode::parse)?;
    let organisation = optional(t.org.as_deref(), "--org", IdOrKey::parse)?;
    let ttl_seconds = optional(t.ttl.as_deref(), "--ttl", auth::parse_ttl)?;
    let conn = open(settings).await?;
    let keys =
        Keys::load(&settings.auth, &settings.data_dir).context("Failed to load the token keys")?;
    let resolved = IssueRequest {
        role,
        network,
        region,
        organisation,
        scopes: (!t.scopes.is_empty()).then(|| t.scopes.join(" ")),
        ttl_seconds,
        subject: t.subject,
        issued_by: "cli".into(),
    }
    .resolve(&conn, &keys)
    .await
    .map_err(refused_flags)?;
    let issued = auth::issue(&conn, &keys, resolved)
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to issue the token")?;
    Ok((
        issued.token,
        issued.row.id,
        issued.row.expires_at.to_rfc3339(),
    ))
}

pub async fn token_revoke(settings: &Settings, jti: &str) -> anyhow::Result<()> {
    let conn = open(settings).await?;
    auth::revoke(&conn, jti, "cli")
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to revoke the token")?;
    Ok(())
}

/// The console acting for a network, as its admin would.
fn console_admin(network: &entity::networks::Model) -> crate::auth::Principal {
    crate::auth::Principal {
        subject: "cli".into(),
        role: Role::NetworkAdmin,
        network: Some(crate::auth::NetworkRef {
            id: network.id,
            key: network.key.clone(),
        }),
        region: None,
        organisation: None,
        scopes: crate::domain::Scopes::full(),
        token_id: None,
        issuer: "cli".into(),
        expires_at: chrono::Utc::now(),
    }
}

/// What an import did, for the console.
pub enum ImportReport {
    Written { returns: usize, key: String },
    Replayed { returns: usize, key: String },
    Checked { returns: usize },
    Refused(Vec<crate::ingest::csv_returns::FileProblem>),
}

/// Imports a returns CSV for a network, as its admin would: all or nothing, and by default
/// keyed by the file's SHA-256 so importing the same file again writes nothing.
pub async fn import_returns(
    settings: &Settings,
    network: &str,
    file: &std::path::Path,
    key: Option<String>,
    dry_run: bool,
) -> anyhow::Result<ImportReport> {
    use crate::ingest::{self, Outcome, csv_returns};
    let conn = open(settings).await?;
    let network = IdOrKey::parse(network).map_err(|e| bad("--network", e))?;
    let network = crate::directory::require_network(&conn, "--network", &network)
        .await
        .map_err(ApiError::into_anyhow)?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("Failed to open {}", file.display()))?;
    let parsed = match csv_returns::read(std::io::BufReader::new(reader)) {
        Ok(p) => p,
        Err(problems) => return Ok(ImportReport::Refused(problems)),
    };
    let console = console_admin(&network);
    let key = key.unwrap_or_else(|| parsed.sha256.clone());
    let outcome = ingest::submit(
        &conn,
        ingest::Batch {
            network,
            idempotency_key: key.clone(),
            items: parsed.items.clone(),
            dry_run,
            by: &console,
        },
    )
    .await
    .map_err(ApiError::into_anyhow)
    .context("Failed to import the returns")?;
    Ok(match outcome {
        Outcome::Written(r) => ImportReport::Written {
            returns: r.len(),
            key,
        },
        Outcome::Replayed(r) => ImportReport::Replayed {
            returns: r.len(),
            key,
        },
        Outcome::DryRun(p, problems) if problems.is_empty() => {
            ImportReport::Checked { returns: p.len() }
        }
        Outcome::DryRun(_, problems) | Outcome::Rejected(problems) => {
            ImportReport::Refused(problems.iter().map(|p| parsed.locate(p)).collect())
        }
    })
}

/// What a spend import came to: its job, and the version it wrote (or had written before).
pub struct SpendReport {
    pub job: entity::import_jobs::Model,
    pub version: Option<entity::spend_files::Model>,
}

/// Imports a spend-lines CSV for an institution and period through its steward network, as
/// the network's admin would: all or nothing, and the same file twice writes once.
pub async fn import_spend(
    settings: &Settings,
    network: &str,
    institution: &str,
    period: &str,
    file: &std::path::Path,
) -> anyhow::Result<SpendReport> {
    use crate::ingest::spend;
    let period: crate::domain::FinancialYear = period.parse().map_err(|e| bad("--period", e))?;
    let network = IdOrKey::parse(network).map_err(|e| bad("--network", e))?;
    let institution = IdOrKey::parse(institution).map_err(|e| bad("--institution", e))?;
    let input =
        std::fs::File::open(file).with_context(|| format!("Failed to open {}", file.display()))?;
    let conn = open(settings).await?;
    let network = crate::directory::require_network(&conn, "--network", &network)
        .await
        .map_err(ApiError::into_anyhow)?;
    let institution = crate::directory::institution(&conn, &institution)
        .await
        .map_err(ApiError::into_anyhow)?
        .ok_or_else(|| bad("--institution", "no such institution"))?;
    if institution.steward_network_id != network.id {
        return Err(bad(
            "--network",
            format!(
                "{} is not the steward network of {}; only its steward imports its spend lines",
                network.key, institution.key
            ),
        ));
    }
    let console = crate::auth::Caller::Token(Box::new(console_admin(&network)));
    crate::policy::spend::may_import_spend(&console, institution.steward_network_id, period)
        .map_err(ApiError::into_anyhow)?;
    let target = spend::Target {
        network,
        institution,
        period,
        by: "cli".into(),
    };
    let job = spend::start(&conn, &target)
        .await
        .map_err(ApiError::into_anyhow)?;
    let job = spend::run(
        &conn,
        &job.id,
        &target,
        std::io::BufReader::new(input),
        None,
    )
    .await
    .map_err(ApiError::into_anyhow)
    .context("Failed to import the spend lines")?;
    let version = spend::version_of(&conn, &job)
        .await
        .map_err(ApiError::into_anyhow)?;
    Ok(SpendReport { job, version })
}

/// Which geography file `anchorfed geography load` reads.
pub enum GeographyFile {
    Nspl,
    Imd { edition: Option<i32> },
}

/// Loads a published geography file (postcode lookup, or deprivation deciles).
pub async fn geography_load(
    settings: &Settings,
    kind: GeographyFile,
    file: &std::path::Path,
) -> anyhow::Result<crate::geography::Loaded> {
    let input =
        std::fs::File::open(file).with_context(|| format!("Failed to open {}", file.display()))?;
    let input = std::io::BufReader::new(input);
    let conn = open(settings).await?;
    let loaded = match kind {
        GeographyFile::Nspl => crate::geography::nspl::load(&conn, input).await,
        GeographyFile::Imd { edition } => crate::geography::imd::load(&conn, input, edition).await,
    };
    loaded.map_err(ApiError::into_anyhow)
}
