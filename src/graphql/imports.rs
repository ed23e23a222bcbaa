//! File imports: `importJob(id)`, the state of a file sent to `POST /imports/spend` (or
//! `anchorfed import spend`), for those who may import for its network.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{import_jobs, spend_files};

use super::context::{caller, db, internal, loaders};
use super::loaders::{InstitutionId, NetworkId};
use super::objects::{Institution, Network};
use super::scalars::{Decimal, FinancialYear};
use crate::domain::quantity;
use crate::error::ApiError;
use crate::ingest::{jobs, spend};
use crate::policy;

/// Where an import stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::ImportState")]
pub enum ImportState {
    /// Created; nothing read yet.
    Queued,
    /// Reading the file, or switching it in.
    Running,
    /// Switched in (or the same file had been before): see `result`.
    Succeeded,
    /// Nothing was written: see `problems` and `failure`.
    Failed,
}

/// What an import brings in.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::ImportKind")]
pub enum ImportKind {
    /// Supplier spend lines of one institution and period.
    SpendLines,
}

/// A problem with a line of a file (the header is line 1).
#[derive(SimpleObject)]
pub struct ImportProblem {
    line: i32,
    /// The column, by its header name; null for the whole line.
    column: Option<String>,
    code: String,
    reason: String,
}

impl From<jobs::LineProblem> for ImportProblem {
    fn from(p: jobs::LineProblem) -> Self {
        Self {
            line: i32::try_from(p.line).unwrap_or(i32::MAX),
            column: p.column,
            code: p.code,
            reason: p.reason,
        }
    }
}

/// A line whose supplier's place is unknown: kept, counted as "place unknown", never guessed.
#[derive(SimpleObject)]
pub struct PlaceUnknownLine {
    line: i32,
    /// The postcode given, if any.
    postcode: Option<String>,
    reason: String,
}

pub struct SpendImportResult {
    file: spend_files::Model,
    job: import_jobs::Model,
}

/// What a spend-lines import wrote: a version of the institution's spend lines for the period.
#[Object]
impl SpendImportResult {
    /// The version of the institution's spend lines for the period (1, 2, …).
    async fn version(&self) -> i32 {
        self.file.version
    }
    /// The same file had been imported before: nothing was written, and this is the version
    /// it wrote then.
    async fn replayed(&self) -> bool {
        self.job.replayed
    }
    async fn lines(&self) -> i32 {
        clamp(self.file.lines)
    }
    /// The sum of the lines' amounts, in pounds.
    async fn total(&self) -> Decimal {
        Decimal(quantity::from_minor_units(self.file.total, 2))
    }
    /// Lines whose supplier's place is unknown, and their amount.
    async fn place_unknown_lines(&self) -> i32 {
        clamp(self.file.place_unknown_lines)
    }
    async fn place_unknown_amount(&self) -> Decimal {
        Decimal(quantity::from_minor_units(self.file.place_unknown_total, 2))
    }
    /// The first lines whose place is unknown, with the reason (all of them are counted).
    async fn place_unknown(&self) -> Vec<PlaceUnknownLine> {
        spend::place_unknown_of(&self.job)
            .into_iter()
            .map(|u| PlaceUnknownLine {
                line: i32::try_from(u.line).unwrap_or(i32::MAX),
                postcode: u.postcode,
                reason: u.reason,
            })
            .collect()
    }
    /// SHA-256 of the file: the same file again writes nothing.
    async fn sha256(&self) -> &str {
        &self.file.sha256
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.file.submitted_at
    }
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub struct ImportJob(import_jobs::Model);

/// A file import (`POST /imports/spend`, `anchorfed import spend`): where it stands, what was
/// wrong with the file, and what it wrote.
#[Object]
impl ImportJob {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn kind(&self) -> ImportKind {
        self.0.kind.into()
    }
    async fn state(&self) -> ImportState {
        self.0.state.into()
    }
    /// The steward network the file came through.
    async fn network(&self, ctx: &Context<'_>) -> Result<Network> {
        loaders(ctx)?
            .load_one(NetworkId(self.0.network_id))
            .await?
            .map(Network)
            .ok_or_else(|| internal("import job without network"))
    }
    async fn institution(&self, ctx: &Context<'_>) -> Result<Option<Institution>> {
        let Some(id) = self.0.institution_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(InstitutionId(id))
            .await?
            .map(Institution))
    }
    async fn period(&self) -> Option<FinancialYear> {
        self.0
            .period
            .as_deref()
            .and_then(|p| p.parse().ok())
            .map(FinancialYear)
    }
    /// Lines read after the header (so far, while running).
    async fn rows_read(&self) -> i32 {
        clamp(self.0.rows_read)
    }
    /// Lines with at least one problem; any refuses the whole file.
    async fn rows_rejected(&self) -> i32 {
        clamp(self.0.rows_rejected)
    }
    /// The first problems, by line (all are counted in `rowsRejected`).
    async fn problems(&self) -> Vec<ImportProblem> {
        spend::problems_of(&self.0)
            .into_iter()
            .map(ImportProblem::from)
            .collect()
    }
    /// Why the job failed, in words.
    async fn failure(&self) -> Option<&str> {
        self.0.failure.as_deref()
    }
    /// What it wrote, once it has succeeded.
    async fn result(&self, ctx: &Context<'_>) -> Result<Option<SpendImportResult>> {
        let file = spend::version_of(db(ctx)?, &self.0).await?;
        Ok(file.map(|file| SpendImportResult {
            file,
            job: self.0.clone(),
        }))
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(Default)]
pub struct ImportsQuery;

#[Object]
impl ImportsQuery {
    /// A file import, for those who may import for its network (its admins and submitters
    /// with `write:returns`); null for anyone else, as for an id that names no job.
    async fn import_job(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ImportJob>> {
        let caller = caller(ctx);
        policy::authenticated(caller)?;
        let Some(job) = jobs::reaped(db(ctx)?, &id).await? else {
            return Ok(None);
        };
        match policy::spend::may_follow_import(caller, job.network_id) {
            Ok(_) => Ok(Some(ImportJob(job))),
            Err(ApiError::Forbidden { reason }) => {
                tracing::info!(refusal.reason = %reason, "importJob: not the caller's");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
