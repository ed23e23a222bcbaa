//! The metric catalogue, returns and their values, submitting and deciding on returns.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{metrics, return_values, returns};

use super::catalogue::Metric;
use super::connection::{IdCursor, connect, page_args};
use super::context::{caller, db, id_or_key, internal, loaders, log_read};
use super::directory::Institution;
use super::loaders::{InstitutionId, MetricCode, ValuesOf};
use super::scalars::{Date, Decimal, FinancialYear};
use crate::directory;
use crate::domain::quantity;
use crate::error::ApiError;
use crate::ingest::{self, Outcome, ReturnItem, ValueItem};
use crate::policy;
use crate::returns::{self as svc, ReturnFilter};

/// Where a return stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ReturnStatus {
    Submitted,
    Approved,
    Rejected,
}

impl ReturnStatus {
    fn from_stored(s: &str) -> Self {
        match s {
            ingest::APPROVED => Self::Approved,
            ingest::REJECTED => Self::Rejected,
            _ => Self::Submitted,
        }
    }

    fn as_stored(self) -> &'static str {
        match self {
            Self::Submitted => ingest::SUBMITTED,
            Self::Approved => ingest::APPROVED,
            Self::Rejected => ingest::REJECTED,
        }
    }
}

/// One value of a return.
pub struct MetricValue {
    v: return_values::Model,
    scale: Option<u32>,
}

#[Object]
impl MetricValue {
    async fn metric(&self, ctx: &Context<'_>) -> Result<Metric> {
        loaders(ctx)?
            .load_one(MetricCode(self.v.metric_code.clone()))
            .await?
            .map(Metric)
            .ok_or_else(|| internal("value of an unknown metric"))
    }
    /// The value in the metric's unit, with its scale's decimal places; null when not reported.
    async fn value(&self, ctx: &Context<'_>) -> Result<Option<Decimal>> {
        let Some(v) = self.v.value else {
            return Ok(None);
        };
        let scale = match self.scale {
            Some(s) => s,
            None => loaders(ctx)?
                .load_one(MetricCode(self.v.metric_code.clone()))
                .await?
                .map(|m| u32::try_from(m.scale).unwrap_or(0))
                .unwrap_or(0),
        };
        Ok(Some(Decimal(quantity::from_minor_units(v, scale))))
    }
    /// Not reported, which is not zero.
    async fn not_reported(&self) -> bool {
        self.v.not_reported
    }
    /// `district:CODE` or `imd_decile:N` for breakdown metrics.
    async fn breakdown(&self) -> Option<&str> {
        Some(self.v.breakdown.as_str()).filter(|b| !b.is_empty())
    }
    async fn method(&self) -> Option<&str> {
        self.v.method.as_deref()
    }
}

/// One version of an institution's return for one period.
pub struct Return {
    r: returns::Model,
    /// Values known already (a dry run's, or a fresh submission's); otherwise loaded.
    values: Option<Vec<return_values::Model>>,
    institution: Option<entity::institutions::Model>,
}

impl Return {
    fn stored(r: returns::Model) -> Self {
        Self {
            r,
            values: None,
            institution: None,
        }
    }
}

#[Object]
impl Return {
    /// The return's id; empty for a dry run's returns, which are not written.
    async fn id(&self) -> ID {
        ID(if self.r.id > 0 {
            self.r.id.to_string()
        } else {
            String::new()
        })
    }
    async fn institution(&self, ctx: &Context<'_>) -> Result<Institution> {
        if let Some(i) = &self.institution {
            return Ok(Institution(i.clone()));
        }
        loaders(ctx)?
            .load_one(InstitutionId(self.r.institution_id))
            .await?
            .map(Institution)
            .ok_or_else(|| internal("return without institution"))
    }
    async fn period(&self) -> Result<FinancialYear> {
        Ok(FinancialYear(
            self.r
                .period
                .parse()
                .map_err(|_| internal("stored period"))?,
        ))
    }
    async fn period_start(&self) -> Date {
        Date(self.r.period_start)
    }
    async fn period_end(&self) -> Date {
        Date(self.r.period_end)
    }
    /// 1 for the first submission; each resubmission is a new version of the whole return.
    async fn version(&self) -> i32 {
        self.r.version
    }
    async fn status(&self) -> ReturnStatus {
        ReturnStatus::from_stored(&self.r.status)
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.r.submitted_at
    }
    /// When it became current for readers outside the steward network.
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.r.published_at
    }
    /// Why it was rejected.
    async fn reject_reason(&self) -> Option<&str> {
        self.r.reject_reason.as_deref()
    }
    async fn basis(&self) -> Option<&str> {
        self.r.basis.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.r.notes.as_deref()
    }
    /// The values the caller may see (its token's metric scopes apply).
    async fn values(&self, ctx: &Context<'_>) -> Result<Vec<MetricValue>> {
        let rows = match &self.values {
            Some(v) => {
                // Known values are the caller's own submission; scopes still narrow what shows.
                let allowed = policy::returns::visible_metric_groups(caller(ctx));
                let catalogue = loaders(ctx)?;
                let mut out = vec![];
                for v in v {
                    let m = catalogue
                        .load_one(MetricCode(v.metric_code.clone()))
                        .await?;
                    let visible = match (&allowed, &m) {
                        (Some(groups), Some(m)) => {
                            groups.iter().any(|g| g.as_str() == m.metric_group)
                        }
                        _ => true,
                    };
                    if visible {
                        out.push(v.clone());
                    }
                }
                out
            }
            None => loaders(ctx)?
                .load_one(ValuesOf(self.r.id))
                .await?
                .unwrap_or_default(),
        };
        Ok(rows
            .into_iter()
            .map(|v| MetricValue { v, scale: None })
            .collect())
    }
}

/// Narrows `returns`; every filter given must hold.
#[derive(InputObject, Default)]
pub struct ReturnFilterInput {
    institution: Option<ID>,
    /// Institutions that belonged to this network on the period's last day.
    network: Option<ID>,
    period: Option<FinancialYear>,
    status: Option<ReturnStatus>,
}

/// The fields `returns` adds beside its edges.
pub struct ReturnCount {
    filter: ReturnFilter,
    at: DateTime<Utc>,
}

#[Object]
impl ReturnCount {
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(svc::count(db(ctx)?, caller(ctx), &self.filter, self.at).await?)
    }
}

#[derive(Default)]
pub struct ReturnsQuery;

#[Object]
impl ReturnsQuery {
    /// The metric catalogue.
    async fn metrics(&self, ctx: &Context<'_>) -> Result<Vec<Metric>> {
        let mut all: Vec<metrics::Model> = crate::catalogue::load(db(ctx)?)
            .await?
            .into_values()
            .collect();
        all.sort_by_key(|m| m.position);
        Ok(all.into_iter().map(Metric).collect())
    }

    /// The returns the caller sees at DETAIL: for each institution and period, the version
    /// current for them at `asOf` (default now).
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn returns(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReturnFilterInput>,
        first: i32,
        after: Option<String>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Connection<IdCursor, Return, ReturnCount>> {
        let page = page_args(first, after.as_deref())?;
        let db = db(ctx)?;
        let f = filter.unwrap_or_default();
        let institution = match &f.institution {
            Some(id) => Some(
                directory::institution(db, &id_or_key("filter.institution", id)?)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "filter.institution: institution {}",
                            id.as_str()
                        ))
                    })?
                    .id,
            ),
            None => None,
        };
        let network = match &f.network {
            Some(id) => Some(
                directory::require_network(db, "filter.network", &id_or_key("filter.network", id)?)
                    .await?
                    .id,
            ),
            None => None,
        };
        let filter = ReturnFilter {
            institution,
            network,
            period: f.period.map(|p| p.0),
            status: f.status.map(ReturnStatus::as_stored),
        };
        let at = as_of.unwrap_or_else(Utc::now);
        let rows = match svc::page(db, caller(ctx), &filter, at, page).await {
            Ok(rows) => rows,
            Err(e) => {
                if matches!(e, ApiError::Forbidden { .. }) {
                    let asked = svc::stewards_asked(db, &filter).await.unwrap_or_default();
                    log_read(ctx, "returns", asked, true).await;
                }
                return Err(e.into());
            }
        };
        let touched = svc::stewards_of(
            db,
            &rows
                .items
                .iter()
                .map(|r| r.institution_id)
                .collect::<Vec<_>>(),
        )
        .await?;
        log_read(ctx, "returns", touched, false).await;
        Ok(connect(rows, page.after, ReturnCount { filter, at }, |r| {
            (r.id, Return::stored(r))
        }))
    }
}

#[derive(InputObject)]
pub struct MetricValueInput {
    metric: String,
    value: Option<Decimal>,
    not_reported: Option<bool>,
    breakdown: Option<String>,
    method: Option<String>,
}

#[derive(InputObject)]
pub struct ReturnInput {
    institution: ID,
    period: FinancialYear,
    /// Default: from the institution's year-end.
    period_start: Option<Date>,
    period_end: Option<Date>,
    /// Full ledger, top 300 suppliers, transactions over £500, …
    basis: Option<String>,
    notes: Option<String>,
    values: Vec<MetricValueInput>,
}

#[derive(InputObject)]
pub struct SubmitReturnsInput {
    network_id: ID,
    /// The same key with the same batch returns the first answer and writes nothing.
    idempotency_key: String,
    returns: Vec<ReturnInput>,
}

/// One problem with a batch.
#[derive(SimpleObject)]
pub struct SubmissionError {
    /// Where: `input.returns[2].values[0].value`.
    path: String,
    code: String,
    reason: String,
}

#[derive(SimpleObject)]
pub struct SubmitReturnsPayload {
    returns: Vec<Return>,
    /// True when this key and batch were accepted before: nothing was written now.
    replayed: bool,
    /// True when nothing was written because it was a dry run.
    dry_run: bool,
    /// A dry run's problems (a real submission with problems is refused with them instead).
    errors: Vec<SubmissionError>,
}

fn items(input: Vec<ReturnInput>) -> Vec<ReturnItem> {
    input
        .into_iter()
        .map(|r| ReturnItem {
            institution: r.institution.to_string(),
            period: r.period.0.to_string(),
            period_start: r.period_start.map(|d| d.0),
            period_end: r.period_end.map(|d| d.0),
            basis: r.basis,
            notes: r.notes,
            values: r
                .values
                .into_iter()
                .map(|v| ValueItem {
                    metric: v.metric,
                    value: v.value.map(|d| d.0),
                    not_reported: v.not_reported.unwrap_or(false),
                    breakdown: v.breakdown,
                    method: v.method,
                })
                .collect(),
        })
        .collect()
}

/// A refused batch: one error carrying every problem in `extensions.problems`.
pub(crate) fn refusal(problems: Vec<(String, &'static str, String)>) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    let n = problems.len();
    let code = if problems.iter().all(|p| p.1 == "FORBIDDEN") {
        "FORBIDDEN"
    } else {
        "BAD_USER_INPUT"
    };
    let first = problems
        .first()
        .map(|p| format!("{}: {}", p.0, p.2))
        .unwrap_or_default();
    let list: Vec<async_graphql::Value> = problems
        .into_iter()
        .map(|(path, code, reason)| {
            let mut m = async_graphql::indexmap::IndexMap::new();
            m.insert(
                async_graphql::Name::new("path"),
                async_graphql::Value::from(path),
            );
            m.insert(
                async_graphql::Name::new("code"),
                async_graphql::Value::from(code),
            );
            m.insert(
                async_graphql::Name::new("reason"),
                async_graphql::Value::from(reason),
            );
            async_graphql::Value::Object(m)
        })
        .collect();
    async_graphql::Error::new(format!(
        "the batch was refused and nothing was written: {n} problem(s); first, {first}"
    ))
    .extend_with(|_, e| {
        e.set("code", code);
        e.set("problems", async_graphql::Value::List(list.clone()));
    })
}

fn prepared_returns(prepared: Vec<ingest::Prepared>) -> Vec<Return> {
    prepared
        .into_iter()
        .map(|p| Return {
            r: returns::Model {
                id: 0,
                institution_id: p.institution.id,
                period: p.period.to_string(),
                period_start: p.start,
                period_end: p.end,
                version: 0,
                status: ingest::SUBMITTED.into(),
                basis: p.basis,
                notes: p.notes,
                batch_id: None,
                submitted_at: Utc::now(),
                submitted_by: String::new(),
                published_at: None,
                decided_at: None,
                decided_by: None,
                reject_reason: None,
            },
            values: Some(
                p.values
                    .into_iter()
                    .map(|v| return_values::Model {
                        id: 0,
                        return_id: 0,
                        metric_code: v.metric,
                        breakdown: v.breakdown,
                        not_reported: v.value.is_none(),
                        value: v.value,
                        method: v.method,
                    })
                    .collect(),
            ),
            institution: Some(p.institution),
        })
        .collect()
}

/// Runs a batch through ingest and shapes the answer; shared by `submitReturns` and file uploads.
pub(crate) async fn run_batch(
    ctx: &Context<'_>,
    network_id: &ID,
    idempotency_key: String,
    batch: Vec<ReturnItem>,
    dry_run: bool,
    locate: &(dyn Fn(&ingest::Problem) -> String + Sync),
) -> Result<SubmitReturnsPayload> {
    let db = db(ctx)?;
    let network = directory::require_network(
        db,
        "input.networkId",
        &id_or_key("input.networkId", network_id)?,
    )
    .await?;
    let p = policy::returns::may_submit_returns(caller(ctx), network.id)?;
    let outcome = ingest::submit(
        db,
        ingest::Batch {
            network,
            idempotency_key,
            items: batch,
            dry_run,
            by: p,
        },
    )
    .await?;
    Ok(match outcome {
        Outcome::Written(rows) => SubmitReturnsPayload {
            returns: rows.into_iter().map(Return::stored).collect(),
            replayed: false,
            dry_run: false,
            errors: vec![],
        },
        Outcome::Replayed(rows) => SubmitReturnsPayload {
            returns: rows.into_iter().map(Return::stored).collect(),
            replayed: true,
            dry_run: false,
            errors: vec![],
        },
        Outcome::DryRun(prepared, problems) => SubmitReturnsPayload {
            returns: prepared_returns(prepared),
            replayed: false,
            dry_run: true,
            errors: problems
                .iter()
                .map(|p| SubmissionError {
                    path: locate(p),
                    code: p.code.into(),
                    reason: p.reason.clone(),
                })
                .collect(),
        },
        Outcome::Rejected(problems) => {
            return Err(refusal(
                problems
                    .iter()
                    .map(|p| (locate(p), p.code, p.reason.clone()))
                    .collect(),
            ));
        }
    })
}

#[derive(Default)]
pub struct ReturnsMutation;

#[Object]
impl ReturnsMutation {
    /// Submits returns for institutions the network stewards, all or nothing. `dryRun`
    /// checks and reports without writing; the same idempotency key with the same batch
    /// returns the first answer and writes nothing, and with another batch is a CONFLICT.
    async fn submit_returns(
        &self,
        ctx: &Context<'_>,
        input: SubmitReturnsInput,
        #[graphql(default_with = "Some(false)")] dry_run: Option<bool>,
    ) -> Result<SubmitReturnsPayload> {
        // An explicit null means the default: a real submission.
        let dry_run = dry_run.unwrap_or(false);
        run_batch(
            ctx,
            &input.network_id,
            input.idempotency_key,
            items(input.returns),
            dry_run,
            &|p| p.path(),
        )
        .await
    }

    /// Submits returns from a CSV file (API.md's layout), uploaded with the GraphQL multipart
    /// request; the request must carry a `GraphQL-Require-Preflight` header. All or nothing;
    /// problems name the row and column. The idempotency key defaults to the file's SHA-256.
    async fn import_returns(
        &self,
        ctx: &Context<'_>,
        network_id: ID,
        file: async_graphql::Upload,
        idempotency_key: Option<String>,
        #[graphql(default_with = "Some(false)")] dry_run: Option<bool>,
    ) -> Result<SubmitReturnsPayload> {
        let upload = file
            .value(ctx)
            .map_err(|e| ApiError::bad_input("file", e))?;
        // The upload is in memory already (bounded by limits.upload_bytes).
        let parsed = match ingest::csv_returns::read(upload.into_read()) {
            Ok(p) => p,
            Err(problems) => {
                return Err(refusal(
                    problems
                        .into_iter()
                        .map(|p| {
                            (
                                format!("file: row {}, column {}", p.row, p.column),
                                p.code,
                                p.reason,
                            )
                        })
                        .collect(),
                ));
            }
        };
        let key = idempotency_key.unwrap_or_else(|| parsed.sha256.clone());
        let items = parsed.items.clone();
        run_batch(
            ctx,
            &network_id,
            key,
            items,
            dry_run.unwrap_or(false),
            &|p| {
                let f = parsed.locate(p);
                format!("file: row {}, column {}", f.row, f.column)
            },
        )
        .await
    }

    /// The steward network's admins approve a submitted return: it becomes current for
    /// readers outside the network.
    async fn approve_return(&self, ctx: &Context<'_>, id: ID) -> Result<Return> {
        let id = id
            .parse::<i64>()
            .map_err(|_| ApiError::bad_input("id", "a return id is a number"))?;
        Ok(Return::stored(
            svc::approve(db(ctx)?, caller(ctx), id).await?,
        ))
    }

    /// The steward network's admins reject a submitted return, saying why.
    async fn reject_return(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Return> {
        let id = id
            .parse::<i64>()
            .map_err(|_| ApiError::bad_input("id", "a return id is a number"))?;
        Ok(Return::stored(
            svc::reject(db(ctx)?, caller(ctx), id, &reason).await?,
        ))
    }
}

/// The standing of a member's return for one period.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SubmissionState {
    Missing,
    Submitted,
    Approved,
}

/// One line of the coordinator's chase list.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Submission {
    state: SubmissionState,
    /// The last day of the institution's period.
    period_end: Date,
    #[graphql(skip)]
    institution: entity::institutions::Model,
    #[graphql(skip)]
    latest: Option<returns::Model>,
}

#[ComplexObject]
impl Submission {
    async fn institution(&self) -> Institution {
        Institution(self.institution.clone())
    }
    /// The current version, when there is one.
    #[graphql(name = "return")]
    async fn current(&self) -> Option<Return> {
        self.latest.clone().map(Return::stored)
    }
}

pub(crate) async fn submissions(
    ctx: &Context<'_>,
    network: &entity::networks::Model,
    period: FinancialYear,
) -> Result<Vec<Submission>> {
    let rows = svc::submissions(db(ctx)?, caller(ctx), network, period.0).await?;
    Ok(rows
        .into_iter()
        .map(|s| Submission {
            state: match s.latest.as_ref().map(|r| r.status.as_str()) {
                None => SubmissionState::Missing,
                Some(ingest::APPROVED) => SubmissionState::Approved,
                Some(_) => SubmissionState::Submitted,
            },
            period_end: Date(s.period_end),
            institution: s.institution,
            latest: s.latest,
        })
        .collect())
}
