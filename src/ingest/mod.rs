//! Validation and all-or-nothing, idempotent writes of returns: from GraphQL batches and from
//! CSV files alike. A batch is checked whole (every problem listed), then written in one
//! transaction or not at all.

pub mod csv_returns;
pub mod demo;

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, Utc};
use entity::vocab::{MembershipStatus, ReturnStatus};
use entity::{institutions, memberships, networks, return_values, returns, submission_batches};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::catalogue::Aggregation;
use crate::domain::{FinancialYear, GssCode, IdOrKey, quantity};
use crate::error::{ApiError, ApiResult};
use crate::policy;

/// The most returns one batch may carry, and values one return may carry.
pub const MAX_RETURNS: usize = 1000;
pub const MAX_VALUES: usize = 2000;

/// One value as submitted, before checking.
#[derive(Debug, Clone, Serialize)]
pub struct ValueItem {
    pub metric: String,
    pub value: Option<String>,
    pub not_reported: bool,
    pub breakdown: Option<String>,
    pub method: Option<String>,
}

/// One return as submitted, before checking.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnItem {
    pub institution: String,
    pub period: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub basis: Option<String>,
    pub notes: Option<String>,
    pub values: Vec<ValueItem>,
}

/// Where a problem is: which return, which value, which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub item: usize,
    pub value: Option<usize>,
    pub field: &'static str,
}

/// One problem with a batch.
#[derive(Debug, Clone)]
pub struct Problem {
    pub loc: Loc,
    pub code: &'static str,
    pub reason: String,
}

impl Problem {
    /// The GraphQL path of the problem, such as `input.returns[2].values[0].value`.
    pub fn path(&self) -> String {
        let mut p = format!("input.returns[{}]", self.loc.item);
        if let Some(v) = self.loc.value {
            p.push_str(&format!(".values[{v}]"));
        }
        if !self.loc.field.is_empty() {
            p.push('.');
            p.push_str(self.loc.field);
        }
        p
    }
}

/// A return ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub institution: institutions::Model,
    pub period: FinancialYear,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub basis: Option<String>,
    pub notes: Option<String>,
    pub values: Vec<PreparedValue>,
}

#[derive(Debug, Clone)]
pub struct PreparedValue {
    pub metric: String,
    pub breakdown: String,
    pub value: Option<i64>,
    pub method: Option<String>,
}

/// What became of a batch.
pub enum Outcome {
    /// Written now: the new returns, in input order.
    Written(Vec<returns::Model>),
    /// The same key and body were accepted before: the returns written then.
    Replayed(Vec<returns::Model>),
    /// A dry run: what would be written, and every problem found.
    DryRun(Vec<Prepared>, Vec<Problem>),
    /// Refused: nothing written.
    Rejected(Vec<Problem>),
}

pub struct Batch<'a> {
    pub network: networks::Model,
    pub idempotency_key: String,
    pub items: Vec<ReturnItem>,
    pub dry_run: bool,
    pub by: &'a Principal,
}

fn problem(
    item: usize,
    value: Option<usize>,
    field: &'static str,
    code: &'static str,
    reason: impl Into<String>,
) -> Problem {
    Problem {
        loc: Loc { item, value, field },
        code,
        reason: reason.into(),
    }
}

fn body_hash(network: i64, items: &[ReturnItem]) -> String {
    let canonical = serde_json::to_string(&(network, items)).unwrap_or_default();
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

fn check_breakdown(raw: &str, kinds: &str) -> Result<String, String> {
    let (kind, rest) = raw.split_once(':').ok_or_else(|| {
        format!("`{raw}` is not a breakdown: write district:E08000025 or imd_decile:1")
    })?;
    if !kinds.split(',').any(|k| k == kind) {
        return Err(format!(
            "`{kind}` is not a breakdown this metric takes ({kinds})"
        ));
    }
    match kind {
        "district" => {
            let code = GssCode::parse(rest).map_err(|e| e.0)?;
            if !code.is_district() {
                return Err(format!("{code} is not a local authority district"));
            }
            Ok(format!("district:{code}"))
        }
        "imd_decile" => {
            let d: u8 = rest
                .parse()
                .map_err(|_| format!("`{rest}` is not a decile: use 1 to 10"))?;
            if !(1..=10).contains(&d) {
                return Err(format!("decile {d} is outside 1 to 10"));
            }
            Ok(format!("imd_decile:{d}"))
        }
        other => Err(format!("unknown breakdown `{other}`")),
    }
}

fn check_method(metric: &str, method: Option<&str>) -> Result<(), String> {
    if !metric.starts_with("emissions_") {
        return Ok(());
    }
    let m = method.unwrap_or("").to_lowercase();
    let has_year = m
        .split(|c: char| !c.is_ascii_digit())
        .any(|w| w.len() == 4 && w.parse::<u16>().is_ok_and(|y| (1990..=2100).contains(&y)));
    if !has_year {
        return Err("emissions need a method note naming the conversion factors' year, such as `DESNZ 2022 factors`".into());
    }
    if metric == "emissions_scope2" && !(m.contains("location") || m.contains("market")) {
        return Err(
            "scope 2 emissions need a method note saying location-based or market-based".into(),
        );
    }
    Ok(())
}

/// Checks a batch without writing: every problem, and what would be written.
pub async fn validate<C: ConnectionTrait>(
    db: &C,
    network: &networks::Model,
    by: &Principal,
    items: &[ReturnItem],
) -> ApiResult<(Vec<Prepared>, Vec<Problem>)> {
    let mut problems = vec![];
    if items.is_empty() {
        problems.push(problem(
            0,
            None,
            "",
            "BAD_USER_INPUT",
            "the batch has no returns",
        ));
    }
    if items.len() > MAX_RETURNS {
        problems.push(problem(
            MAX_RETURNS,
            None,
            "",
            "BAD_USER_INPUT",
            format!(
                "a batch takes at most {MAX_RETURNS} returns; split it (this one has {})",
                items.len()
            ),
        ));
        return Ok((vec![], problems));
    }
    let catalogue = crate::catalogue::metrics(db).await?;

    // One statement for every institution the batch names, and one for their memberships.
    let mut ids = vec![];
    let mut keys = vec![];
    for it in items {
        match IdOrKey::parse(&it.institution) {
            Ok(IdOrKey::Id(i)) => ids.push(i),
            Ok(IdOrKey::Key(k)) => keys.push(k.to_string()),
            Err(_) => {}
        }
    }
    let found = institutions::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(institutions::Column::Id.is_in(ids))
                .add(institutions::Column::Key.is_in(keys)),
        )
        .all(db)
        .await?;
    let by_id: HashMap<i64, institutions::Model> =
        found.iter().map(|i| (i.id, i.clone())).collect();
    let by_key: HashMap<String, institutions::Model> =
        found.into_iter().map(|i| (i.key.clone(), i)).collect();
    let member_rows = memberships::Entity::find()
        .filter(memberships::Column::NetworkId.eq(network.id))
        .filter(memberships::Column::Status.eq(MembershipStatus::Active))
        .filter(memberships::Column::InstitutionId.is_in(by_id.keys().copied()))
        .all(db)
        .await?;

    let mut prepared = vec![];
    let mut seen_returns = HashSet::new();
    for (n, it) in items.iter().enumerate() {
        let before = problems.len();
        let inst = match IdOrKey::parse(&it.institution) {
            Ok(IdOrKey::Id(i)) => by_id.get(&i),
            Ok(IdOrKey::Key(k)) => by_key.get(k.as_str()),
            Err(e) => {
                problems.push(problem(n, None, "institution", "BAD_USER_INPUT", e.0));
                continue;
            }
        };
        let Some(inst) = inst else {
            problems.push(problem(
                n,
                None,
                "institution",
                "NOT_FOUND",
                format!("no institution `{}`", it.institution),
            ));
            continue;
        };
        if inst.steward_network_id != network.id {
            problems.push(problem(
                n,
                None,
                "institution",
                "FORBIDDEN",
                format!("{} reports through another network; only its steward network submits its returns", inst.key),
            ));
            continue;
        }
        let period: FinancialYear = match it.period.parse() {
            Ok(p) => p,
            Err(e) => {
                problems.push(problem(n, None, "period", "BAD_USER_INPUT", e.0));
                continue;
            }
        };
        if !seen_returns.insert((inst.id, period)) {
            problems.push(problem(
                n,
                None,
                "period",
                "BAD_USER_INPUT",
                format!("{} {period} appears twice in this batch", inst.key),
            ));
            continue;
        }
        let month = crate::directory::year_end_month(inst)?;
        let start = it.period_start.or_else(|| period.start_date(month));
        let end = it.period_end.or_else(|| period.end_date(month));
        let (Some(start), Some(end)) = (start, end) else {
            problems.push(problem(
                n,
                None,
                "period",
                "BAD_USER_INPUT",
                "the period's dates cannot be worked out",
            ));
            continue;
        };
        if start >= end || (end - start).num_days() > 371 {
            problems.push(problem(
                n,
                None,
                "periodEnd",
                "BAD_USER_INPUT",
                format!("{start} to {end} is not a reporting year"),
            ));
        }
        let nominal_end = period.end_date(month).unwrap_or(end);
        if (end - nominal_end).num_days().abs() > 183 {
            problems.push(problem(
                n,
                None,
                "periodEnd",
                "BAD_USER_INPUT",
                format!("{end} does not end the year {period}"),
            ));
        }
        let member = member_rows.iter().any(|m| {
            m.institution_id == inst.id
                && m.from_date <= end
                && m.to_date.is_none_or(|t| t >= start)
        });
        if !member {
            problems.push(problem(
                n,
                None,
                "period",
                "BAD_USER_INPUT",
                format!(
                    "{} was not a member of {} during {period}",
                    inst.key, network.key
                ),
            ));
        }
        for (field, text, max) in [("basis", &it.basis, 500), ("notes", &it.notes, 5000)] {
            if text.as_ref().is_some_and(|t| t.chars().count() > max) {
                problems.push(problem(
                    n,
                    None,
                    field,
                    "BAD_USER_INPUT",
                    format!("at most {max} characters"),
                ));
            }
        }
        if it.values.is_empty() {
            problems.push(problem(
                n,
                None,
                "values",
                "BAD_USER_INPUT",
                "a return needs at least one value",
            ));
        }
        if it.values.len() > MAX_VALUES {
            problems.push(problem(
                n,
                None,
                "values",
                "BAD_USER_INPUT",
                format!("a return takes at most {MAX_VALUES} values"),
            ));
            continue;
        }

        let mut values = vec![];
        let mut seen_values = HashSet::new();
        for (v, val) in it.values.iter().enumerate() {
            let Some(metric) = catalogue.get(val.metric.trim()) else {
                problems.push(problem(
                    n,
                    Some(v),
                    "metric",
                    "BAD_USER_INPUT",
                    format!(
                        "`{}` is not a metric code; see the `metrics` query",
                        val.metric
                    ),
                ));
                continue;
            };
            if matches!(metric.aggregation, Aggregation::Ratio { .. }) {
                problems.push(problem(
                    n,
                    Some(v),
                    "metric",
                    "BAD_USER_INPUT",
                    format!(
                        "{} is derived from other metrics; submit those instead",
                        metric.code
                    ),
                ));
                continue;
            }
            let group = metric.group;
            if !policy::returns::may_submit_value(by, group, period) {
                problems.push(problem(
                    n,
                    Some(v),
                    "metric",
                    "FORBIDDEN",
                    format!(
                        "this token's scopes do not cover {} for {period}",
                        metric.code
                    ),
                ));
                continue;
            }
            let breakdown = match (
                metric.breakdown_list().as_deref(),
                val.breakdown
                    .as_deref()
                    .map(str::trim)
                    .filter(|b| !b.is_empty()),
            ) {
                (Some(kinds), Some(b)) => match check_breakdown(b, kinds) {
                    Ok(b) => b,
                    Err(e) => {
                        problems.push(problem(n, Some(v), "breakdown", "BAD_USER_INPUT", e));
                        continue;
                    }
                },
                (Some(kinds), None) => {
                    problems.push(problem(
                        n,
                        Some(v),
                        "breakdown",
                        "BAD_USER_INPUT",
                        format!("{} needs a breakdown ({kinds})", metric.code),
                    ));
                    continue;
                }
                (None, Some(_)) => {
                    problems.push(problem(
                        n,
                        Some(v),
                        "breakdown",
                        "BAD_USER_INPUT",
                        format!("{} takes no breakdown", metric.code),
                    ));
                    continue;
                }
                (None, None) => String::new(),
            };
            if !seen_values.insert((metric.code.clone(), breakdown.clone())) {
                problems.push(problem(
                    n,
                    Some(v),
                    "metric",
                    "BAD_USER_INPUT",
                    format!("{} {breakdown} appears twice in this return", metric.code),
                ));
                continue;
            }
            let value = match (&val.value, val.not_reported) {
                (Some(_), true) => {
                    problems.push(problem(
                        n,
                        Some(v),
                        "notReported",
                        "BAD_USER_INPUT",
                        "a value cannot be both given and not reported",
                    ));
                    continue;
                }
                (None, false) => {
                    problems.push(problem(
                        n,
                        Some(v),
                        "value",
                        "BAD_USER_INPUT",
                        "give a value, or notReported: true (not reported is not zero)",
                    ));
                    continue;
                }
                (None, true) => None,
                (Some(raw), false) => {
                    let scale = metric.scale;
                    match quantity::to_minor_units(raw, scale) {
                        Ok(x) if x < 0 => {
                            problems.push(problem(
                                n,
                                Some(v),
                                "value",
                                "BAD_USER_INPUT",
                                format!("{} cannot be negative", metric.code),
                            ));
                            continue;
                        }
                        Ok(x) => Some(x),
                        Err(e) => {
                            problems.push(problem(n, Some(v), "value", "BAD_USER_INPUT", e.0));
                            continue;
                        }
                    }
                }
            };
            let method = val
                .method
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if method.as_ref().is_some_and(|m| m.chars().count() > 500) {
                problems.push(problem(
                    n,
                    Some(v),
                    "method",
                    "BAD_USER_INPUT",
                    "at most 500 characters",
                ));
                continue;
            }
            if value.is_some()
                && let Err(e) = check_method(&metric.code, method.as_deref())
            {
                problems.push(problem(n, Some(v), "method", "BAD_USER_INPUT", e));
                continue;
            }
            values.push((
                v,
                PreparedValue {
                    metric: metric.code.clone(),
                    breakdown,
                    value,
                    method,
                },
            ));
        }

        // Parts are at most their whole; breakdowns at most the headcount.
        let single = |code: &str| {
            values
                .iter()
                .find(|(_, p)| p.metric == code && p.breakdown.is_empty())
                .and_then(|(_, p)| p.value)
        };
        for (v, pv) in &values {
            let whole = catalogue.get(&pv.metric).and_then(|m| m.part_of.clone());
            if let (Some(whole), Some(part)) = (whole, pv.value)
                && let Some(total) = single(&whole)
                && part > total
            {
                problems.push(problem(
                    n,
                    Some(*v),
                    "value",
                    "BAD_USER_INPUT",
                    format!("{} is more than {whole}", pv.metric),
                ));
            }
        }
        if let Some(headcount) = single("headcount") {
            for kind in ["district:", "imd_decile:"] {
                let sum: i128 = values
                    .iter()
                    .filter(|(_, p)| {
                        p.metric == "employees_by_residence" && p.breakdown.starts_with(kind)
                    })
                    .filter_map(|(_, p)| p.value)
                    .map(i128::from)
                    .sum();
                if sum > i128::from(headcount) {
                    problems.push(problem(
                        n,
                        None,
                        "values",
                        "BAD_USER_INPUT",
                        format!(
                            "employees_by_residence by {} adds up to more than headcount",
                            kind.trim_end_matches(':')
                        ),
                    ));
                }
            }
        }
        if problems.len() == before {
            prepared.push(Prepared {
                institution: inst.clone(),
                period,
                start,
                end,
                basis: it.basis.clone().filter(|b| !b.trim().is_empty()),
                notes: it.notes.clone().filter(|b| !b.trim().is_empty()),
                values: values.into_iter().map(|(_, p)| p).collect(),
            });
        }
    }
    Ok((prepared, problems))
}

async fn replay<C: ConnectionTrait>(
    db: &C,
    batch: &submission_batches::Model,
) -> ApiResult<Vec<returns::Model>> {
    let ids: Vec<i64> = batch
        .return_ids
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let rows = returns::Entity::find()
        .filter(returns::Column::Id.is_in(ids.clone()))
        .all(db)
        .await?;
    let by_id: HashMap<i64, returns::Model> = rows.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids
        .into_iter()
        .filter_map(|i| by_id.get(&i).cloned())
        .collect())
}

async fn find_batch<C: ConnectionTrait>(
    db: &C,
    network: i64,
    key: &str,
) -> ApiResult<Option<submission_batches::Model>> {
    Ok(submission_batches::Entity::find()
        .filter(submission_batches::Column::NetworkId.eq(network))
        .filter(submission_batches::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// Validates and, unless a dry run, writes a batch in one transaction.
pub async fn submit(db: &DatabaseConnection, b: Batch<'_>) -> ApiResult<Outcome> {
    let key = b.idempotency_key.trim().to_owned();
    if key.is_empty() || key.len() > 200 {
        return Err(ApiError::bad_input(
            "input.idempotencyKey",
            "must be 1 to 200 characters",
        ));
    }
    let hash = body_hash(b.network.id, &b.items);
    if !b.dry_run
        && let Some(prev) = find_batch(db, b.network.id, &key).await?
    {
        return replay_or_conflict(db, &prev, &hash).await;
    }
    let (prepared, problems) = validate(db, &b.network, b.by, &b.items).await?;
    if b.dry_run {
        return Ok(Outcome::DryRun(prepared, problems));
    }
    if !problems.is_empty() {
        return Ok(Outcome::Rejected(problems));
    }

    let txn = db.begin().await?;
    let now = Utc::now();
    // The batch row goes first: a concurrent retry with the same key stops on its unique index.
    let batch = match (submission_batches::ActiveModel {
        network_id: Set(b.network.id),
        idempotency_key: Set(key.clone()),
        body_hash: Set(hash.clone()),
        return_ids: Set(String::new()),
        created_by: Set(b.by.subject.clone()),
        created_at: Set(now),
        ..Default::default()
    })
    .insert(&txn)
    .await
    {
        Ok(row) => row,
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            txn.rollback().await?;
            let prev = find_batch(db, b.network.id, &key).await?.ok_or_else(|| {
                ApiError::Conflict("a batch with this key is being written; retry".into())
            })?;
            return replay_or_conflict(db, &prev, &hash).await;
        }
        Err(e) => return Err(e.into()),
    };
    // Versions are numbered from the latest one, so two batches restating the same return at
    // once must take turns: lock the institutions in id order (no deadlock) for the rest of
    // this transaction. SQLite runs one writer at a time already.
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        let mut ids: Vec<i64> = prepared.iter().map(|p| p.institution.id).collect();
        ids.sort_unstable();
        ids.dedup();
        txn.execute_raw(crate::sql::stmt(
            sea_orm::DatabaseBackend::Postgres,
            &format!(
                "SELECT id FROM institutions WHERE id IN ({}) ORDER BY id FOR UPDATE",
                crate::sql::placeholders(ids.len())
            ),
            ids.into_iter().map(sea_orm::Value::from).collect(),
        ))
        .await?;
    }
    let published = (!b.network.requires_approval).then_some(now);
    let mut written = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let latest: Option<i32> = returns::Entity::find()
            .select_only()
            .column_as(returns::Column::Version.max(), "v")
            .filter(returns::Column::InstitutionId.eq(p.institution.id))
            .filter(returns::Column::Period.eq(p.period.to_string()))
            .into_tuple::<Option<i32>>()
            .one(&txn)
            .await?
            .flatten();
        let row = returns::ActiveModel {
            institution_id: Set(p.institution.id),
            period: Set(p.period.to_string()),
            period_start: Set(p.start),
            period_end: Set(p.end),
            version: Set(latest.unwrap_or(0) + 1),
            status: Set(ReturnStatus::Submitted),
            basis: Set(p.basis.clone()),
            notes: Set(p.notes.clone()),
            batch_id: Set(Some(batch.id)),
            submitted_at: Set(now),
            submitted_by: Set(b.by.subject.clone()),
            published_at: Set(published),
            decided_at: Set(None),
            decided_by: Set(None),
            reject_reason: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        // Values go in chunks, well under SQLite's and PostgreSQL's bound-parameter limits.
        for chunk in p.values.chunks(500) {
            return_values::Entity::insert_many(chunk.iter().map(|v| return_values::ActiveModel {
                return_id: Set(row.id),
                metric_code: Set(v.metric.clone()),
                breakdown: Set(v.breakdown.clone()),
                value: Set(v.value),
                not_reported: Set(v.value.is_none()),
                method: Set(v.method.clone()),
                ..Default::default()
            }))
            .exec_without_returning(&txn)
            .await?;
        }
        written.push(row);
    }
    let ids = written
        .iter()
        .map(|r| r.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut am: submission_batches::ActiveModel = batch.into();
    am.return_ids = Set(ids);
    am.update(&txn).await?;
    txn.commit().await?;
    Ok(Outcome::Written(written))
}

async fn replay_or_conflict(
    db: &DatabaseConnection,
    prev: &submission_batches::Model,
    hash: &str,
) -> ApiResult<Outcome> {
    if prev.body_hash != hash {
        return Err(ApiError::Conflict(format!(
            "input.idempotencyKey: `{}` was used for a different batch on {}; use a new key for new data",
            prev.idempotency_key,
            prev.created_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    Ok(Outcome::Replayed(replay(db, prev).await?))
}
