//! File imports: `importJob(id)`, the state of a file sent to `POST /imports/spend` (or
//! `anchorfed import spend`), for those who may import for its network; and what the
//! imported lines show: `topSuppliers`, for DETAIL readers of the institution's returns.

use async_graphql::connection::{Connection, CursorType};
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{import_jobs, spend_files};

use super::connection::{BadCursor, MAX_PAGE};
use super::context::{caller, db, id_or_key, internal, loaders, log_read};
use super::loaders::{InstitutionId, NetworkId};
use super::objects::{Institution, Network};
use super::scalars::{Decimal, FinancialYear};
use crate::domain::quantity;
use crate::error::ApiError;
use crate::ingest::spend::suppliers;
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

/// A cursor naming the last supplier row seen, by its total and first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupplierCursor(suppliers::After);

impl CursorType for SupplierCursor {
    type Error = BadCursor;

    fn decode_cursor(s: &str) -> Result<Self, BadCursor> {
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| BadCursor)?;
        let text = String::from_utf8(raw).map_err(|_| BadCursor)?;
        let (total, line) = text
            .strip_prefix("sup:")
            .and_then(|rest| rest.split_once(':'))
            .ok_or(BadCursor)?;
        Ok(SupplierCursor(suppliers::After {
            total: total.parse().map_err(|_| BadCursor)?,
            first_line: line.parse().map_err(|_| BadCursor)?,
        }))
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("sup:{}:{}", self.0.total, self.0.first_line))
    }
}

/// One supplier of an institution for a period, from its current spend lines. Sole traders
/// are never named: all their lines are one row, `soleTrader: true`, with no name, id or
/// district.
pub struct Supplier(suppliers::SupplierRow);

#[Object]
impl Supplier {
    /// The supplier's name as given; "sole trader" for the row of all sole traders.
    async fn name(&self) -> &str {
        self.0.supplier.as_deref().unwrap_or("sole trader")
    }
    /// Companies House number, charity number, or the institution's own id; null for sole
    /// traders.
    async fn supplier_id(&self) -> Option<&str> {
        self.0.supplier_id.as_deref()
    }
    /// The district the supplier is in (its code); null when unknown, and for sole traders.
    async fn district(&self) -> Option<&str> {
        self.0.district_code.as_deref()
    }
    /// The sum of the supplier's lines, in pounds.
    async fn total_amount(&self) -> Decimal {
        Decimal(quantity::from_minor_units(self.0.total, 2))
    }
    async fn line_count(&self) -> i32 {
        clamp(self.0.lines)
    }
    /// Whether this is the row of all sole traders' lines.
    async fn sole_trader(&self) -> bool {
        self.0.sole_traders
    }
    /// Any of its lines marks the supplier an SME.
    async fn sme(&self) -> bool {
        self.0.sme
    }
    /// Any of its lines marks it voluntary, community or social enterprise.
    async fn vcse(&self) -> bool {
        self.0.vcse
    }
    /// Any of its lines marks it another anchor institution.
    async fn anchor(&self) -> bool {
        self.0.anchor
    }
}

pub struct SupplierCount {
    file: Option<i64>,
}

#[Object]
impl SupplierCount {
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        match self.file {
            Some(file) => Ok(suppliers::count(db(ctx)?, file).await?),
            None => Ok(0),
        }
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
        // A period that does not parse is no period the token's scopes could allow.
        let period = match job
            .period
            .as_deref()
            .map(str::parse::<crate::domain::FinancialYear>)
        {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return Err(internal("import_jobs.period")),
            None => None,
        };
        match policy::spend::may_follow_import(caller, job.network_id, period) {
            Ok(_) => Ok(Some(ImportJob(job))),
            Err(ApiError::Forbidden { reason }) => {
                tracing::info!(refusal.reason = %reason, "importJob: not the caller's");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The institution's suppliers for the period, from its current spend lines, largest
    /// total first (ties by the supplier's first line). Only for those who see the
    /// institution's returns for the period at DETAIL, spend included; sole traders are never
    /// named.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn top_suppliers(
        &self,
        ctx: &Context<'_>,
        institution: ID,
        period: FinancialYear,
        first: i32,
        after: Option<String>,
    ) -> Result<Connection<SupplierCursor, Supplier, SupplierCount>> {
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::bad_input(
                "first",
                format!("must be between 1 and {MAX_PAGE}, got {first}"),
            )
            .into());
        }
        let after = after
            .as_deref()
            .map(SupplierCursor::decode_cursor)
            .transpose()
            .map_err(|e| ApiError::bad_input("after", e))?
            .map(|c| c.0);
        let db = db(ctx)?;
        let inst = crate::directory::institution(db, &id_or_key("institution", &institution)?)
            .await?
            .ok_or_else(|| suppliers::not_found(institution.as_str()))?;
        let period = period.0;
        if let Err(e) = suppliers::check(db, caller(ctx), &inst, period).await {
            if matches!(e, ApiError::Forbidden { .. }) {
                log_read(ctx, "topSuppliers", vec![inst.steward_network_id], true).await;
            }
            return Err(e.into());
        }
        log_read(ctx, "topSuppliers", vec![inst.steward_network_id], false).await;
        let file = suppliers::current_file(db, inst.id, period).await?;
        let page = match file {
            Some(file) => suppliers::page(db, file, first as u64, after).await?,
            None => crate::pagination::Page {
                items: vec![],
                has_next: false,
            },
        };
        let mut c = Connection::with_additional_fields(
            after.is_some(),
            page.has_next,
            SupplierCount { file },
        );
        c.edges.extend(page.items.into_iter().map(|row| {
            let cursor = SupplierCursor(suppliers::After {
                total: row.total,
                first_line: row.first_line,
            });
            async_graphql::connection::Edge::new(cursor, Supplier(row))
        }));
        Ok(c)
    }
}
