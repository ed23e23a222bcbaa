//! Returns' root fields: reading returns and the catalogue, submitting and deciding on returns.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::catalogue::Metric;
use super::connection::{IdCursor, connect, page_args};
use super::context::{caller, db, id_or_key, log_read};
use super::enums::ReturnStatus;
use super::objects::Return;
use super::scalars::{Date, Decimal, FinancialYear};
use crate::directory;
use crate::error::ApiError;
use crate::ingest::{self, Outcome, ReturnItem, ValueItem};
use crate::policy;
use crate::returns::{self as svc, ReturnFilter};

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
    at: crate::domain::AsOf,
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
        let mut all: Vec<crate::catalogue::Metric> = crate::catalogue::metrics(db(ctx)?)
            .await?
            .into_values()
            .collect();
        all.sort_by_key(|m| m.position);
        Ok(all
            .into_iter()
            .map(|m| Metric(std::sync::Arc::new(m)))
            .collect())
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
            status: f.status.map(Into::into),
        };
        let at = crate::domain::AsOf::given(as_of, Utc::now());
        // The page's values in one statement when the query asks for them (look-ahead), so
        // each return's `values` is a field read, not a loader's key, future and batch; the
        // page statement then says which metric groups the caller sees of each return.
        let look = ctx.look_ahead();
        let wants_values = look.field("nodes").field("values").exists()
            || look.field("edges").field("node").field("values").exists();
        let read = svc::page_with_institutions(db, caller(ctx), &filter, at, page, wants_values);
        let rows = match read.await {
            Ok(rows) => rows,
            Err(e) => {
                if matches!(e, ApiError::Forbidden { .. }) {
                    let asked = svc::stewards_asked(db, &filter).await.unwrap_or_default();
                    log_read(ctx, "returns", asked, true).await;
                }
                return Err(e.into());
            }
        };
        let touched = rows
            .items
            .iter()
            .map(|row| row.institution.steward_network_id)
            .collect();
        log_read(ctx, "returns", touched, false).await;
        let mut values = if wants_values {
            svc::values_at_detail(db, &rows.items).await?
        } else {
            Default::default()
        };
        Ok(connect(
            rows,
            page.after,
            ReturnCount { filter, at },
            |row| {
                let seen = wants_values.then(|| values.remove(&row.r.id).unwrap_or_default());
                (row.r.id, Return::read(row.r, row.institution, seen))
            },
        ))
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
    prepared.into_iter().map(Return::prepared).collect()
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
        // Whose file it is is settled before a byte of it is parsed: a caller who may not
        // submit for this network learns nothing from the file's problems.
        let network = directory::require_network(
            db(ctx)?,
            "networkId",
            &id_or_key("networkId", &network_id)?,
        )
        .await?;
        policy::returns::may_submit_returns(caller(ctx), network.id)?;
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
