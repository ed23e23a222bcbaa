//! Validation and all-or-nothing, idempotent writes of returns: from GraphQL batches and from
//! CSV files alike. A batch is checked whole (every problem listed), then written in one
//! transaction or not at all.

pub mod csv_returns;
pub mod demo;
pub mod jobs;
pub mod spend;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use entity::vocab::{MembershipStatus, ReturnStatus};
use entity::{institutions, memberships, networks, return_values, returns, submission_batches};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, SqlErr,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::catalogue::{Aggregation, Metric};
use crate::domain::{FinancialYear, GssCode, IdOrKey, Invalid, quantity};
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

/// Which return of a batch, and which of its values, a check is looking at; it turns a reason
/// into a `Problem` there, so the checks below each state their reason once.
#[derive(Debug, Clone, Copy)]
struct At {
    item: usize,
    value: Option<usize>,
}

impl At {
    fn item(item: usize) -> Self {
        At { item, value: None }
    }

    fn value(self, value: usize) -> Self {
        At {
            value: Some(value),
            ..self
        }
    }

    fn problem(
        self,
        field: &'static str,
        code: &'static str,
        reason: impl Into<String>,
    ) -> Problem {
        Problem {
            loc: Loc {
                item: self.item,
                value: self.value,
                field,
            },
            code,
            reason: reason.into(),
        }
    }

    /// The common case: the input itself is wrong.
    fn bad(self, field: &'static str, reason: impl Into<String>) -> Problem {
        self.problem(field, "BAD_USER_INPUT", reason)
    }
}

/// Checks a batch without writing: every problem, and what would be written.
///
/// The checks run as a pipeline: the batch's size; then each return's header (institution and
/// period), its other header fields, each of its values against the catalogue and the token,
/// and the totals across its values. A return is prepared only if none of them found anything.
pub async fn validate<C: ConnectionTrait>(
    db: &C,
    network: &networks::Model,
    by: &Principal,
    items: &[ReturnItem],
) -> ApiResult<(Vec<Prepared>, Vec<Problem>)> {
    if let Some(p) = check_batch_size(items) {
        return Ok((vec![], vec![p]));
    }
    let known = Known::read(db, network, by, items).await?;
    let mut seen = HashSet::new();
    let (mut prepared, mut problems) = (vec![], vec![]);
    for (n, it) in items.iter().enumerate() {
        match known.check_return(At::item(n), it, &mut seen)? {
            Ok(p) => prepared.push(p),
            Err(found) => problems.extend(found),
        }
    }
    Ok((prepared, problems))
}

/// An empty batch has nothing to check; an oversized one is refused unread, so that its size
/// cannot make the checks themselves expensive.
fn check_batch_size(items: &[ReturnItem]) -> Option<Problem> {
    if items.is_empty() {
        return Some(At::item(0).bad("", "the batch has no returns"));
    }
    (items.len() > MAX_RETURNS).then(|| {
        At::item(MAX_RETURNS).bad(
            "",
            format!(
                "a batch takes at most {MAX_RETURNS} returns; split it (this one has {})",
                items.len()
            ),
        )
    })
}

/// A value that passed its checks, with its position in the return for later problems to
/// point at.
type Numbered = (usize, PreparedValue);

/// A return that passed its checks, or every problem found with it.
type CheckedReturn = Result<Prepared, Vec<Problem>>;

/// What the checks of one batch consult, read up front in one statement each, rather than a
/// few statements for each of up to a thousand returns.
struct Known<'a> {
    network: &'a networks::Model,
    by: &'a Principal,
    catalogue: BTreeMap<String, Metric>,
    by_id: HashMap<i64, institutions::Model>,
    by_key: HashMap<String, institutions::Model>,
    /// The active memberships of this network of the institutions the batch names.
    memberships: Vec<memberships::Model>,
}

/// A return's institution and period, once both are known to be good.
struct Header<'k> {
    institution: &'k institutions::Model,
    period: FinancialYear,
    /// The month the institution's year ends in.
    month: u8,
    start: NaiveDate,
    end: NaiveDate,
}

impl<'a> Known<'a> {
    /// Reads the catalogue and, in one statement each, the institutions the batch names and
    /// their active memberships of this network.
    async fn read<C: ConnectionTrait>(
        db: &C,
        network: &'a networks::Model,
        by: &'a Principal,
        items: &[ReturnItem],
    ) -> ApiResult<Self> {
        let catalogue = crate::catalogue::metrics(db).await?;
        let (mut ids, mut keys) = (vec![], vec![]);
        for it in items {
            // A name that does not parse is reported when its return is checked.
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
            .await
            .context("Failed to read the institutions a batch names")?;
        let by_id: HashMap<i64, institutions::Model> =
            found.iter().map(|i| (i.id, i.clone())).collect();
        let by_key: HashMap<String, institutions::Model> =
            found.into_iter().map(|i| (i.key.clone(), i)).collect();
        let memberships = memberships::Entity::find()
            .filter(memberships::Column::NetworkId.eq(network.id))
            .filter(memberships::Column::Status.eq(MembershipStatus::Active))
            .filter(memberships::Column::InstitutionId.is_in(by_id.keys().copied()))
            .all(db)
            .await
            .context("Failed to read the memberships of a batch's institutions")?;
        Ok(Known {
            network,
            by,
            catalogue,
            by_id,
            by_key,
            memberships,
        })
    }

    /// Checks one return. Nothing else about it can be judged without its institution and
    /// period, so a problem with those stops it; past them, every problem is listed.
    /// `seen` holds the returns met earlier in the batch.
    fn check_return(
        &self,
        at: At,
        it: &ReturnItem,
        seen: &mut HashSet<(i64, FinancialYear)>,
    ) -> ApiResult<CheckedReturn> {
        let h = match self.check_header(at, it, seen)? {
            Ok(h) => h,
            Err(p) => return Ok(Err(vec![p])),
        };
        let mut problems = self.header_problems(at, it, &h);
        if it.values.len() > MAX_VALUES {
            problems.push(at.bad(
                "values",
                format!("a return takes at most {MAX_VALUES} values"),
            ));
            return Ok(Err(problems));
        }
        let (values, found) = self.check_values(at, &it.values, h.period)?;
        problems.extend(found);
        problems.extend(parts_within_wholes(at, &values, &self.catalogue));
        problems.extend(residence_within_headcount(at, &values));
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        Ok(Ok(Prepared {
            institution: h.institution.clone(),
            period: h.period,
            start: h.start,
            end: h.end,
            basis: it.basis.clone().filter(|b| !b.trim().is_empty()),
            notes: it.notes.clone().filter(|b| !b.trim().is_empty()),
            values: values.into_iter().map(|(_, p)| p).collect(),
        }))
    }

    /// Whose return, for which period and dates: the checks that must pass before anything
    /// else about the return can be judged.
    fn check_header(
        &self,
        at: At,
        it: &ReturnItem,
        seen: &mut HashSet<(i64, FinancialYear)>,
    ) -> ApiResult<Result<Header<'_>, Problem>> {
        let institution = match self.institution(at, &it.institution) {
            Ok(i) => i,
            Err(p) => return Ok(Err(p)),
        };
        let period: FinancialYear = match it.period.parse() {
            Ok(p) => p,
            Err(Invalid(e)) => return Ok(Err(at.bad("period", e))),
        };
        if !seen.insert((institution.id, period)) {
            return Ok(Err(at.bad(
                "period",
                format!("{} {period} appears twice in this batch", institution.key),
            )));
        }
        let month = crate::directory::year_end_month(institution)?;
        let start = it.period_start.or_else(|| period.start_date(month));
        let end = it.period_end.or_else(|| period.end_date(month));
        let (Some(start), Some(end)) = (start, end) else {
            return Ok(Err(
                at.bad("period", "the period's dates cannot be worked out")
            ));
        };
        Ok(Ok(Header {
            institution,
            period,
            month,
            start,
            end,
        }))
    }

    /// The institution a return names, if this network is its steward: only the steward
    /// submits an institution's returns.
    fn institution(&self, at: At, named: &str) -> Result<&institutions::Model, Problem> {
        let found = match IdOrKey::parse(named).map_err(|e| at.bad("institution", e.0))? {
            IdOrKey::Id(i) => self.by_id.get(&i),
            IdOrKey::Key(k) => self.by_key.get(k.as_str()),
        };
        let Some(inst) = found else {
            return Err(at.problem(
                "institution",
                "NOT_FOUND",
                format!("no institution `{named}`"),
            ));
        };
        if inst.steward_network_id != self.network.id {
            return Err(at.problem(
                "institution",
                "FORBIDDEN",
                format!("{} reports through another network; only its steward network submits its returns", inst.key),
            ));
        }
        Ok(inst)
    }

    /// The rest of a return's header: none of these stops the checks of its values.
    fn header_problems(&self, at: At, it: &ReturnItem, h: &Header) -> Vec<Problem> {
        let mut problems = period_problems(at, h);
        let member = self.memberships.iter().any(|m| {
            m.institution_id == h.institution.id
                && m.from_date <= h.end
                && m.to_date.is_none_or(|t| t >= h.start)
        });
        if !member {
            problems.push(at.bad(
                "period",
                format!(
                    "{} was not a member of {} during {}",
                    h.institution.key, self.network.key, h.period
                ),
            ));
        }
        for (field, text, max) in [("basis", &it.basis, 500), ("notes", &it.notes, 5000)] {
            if text.as_ref().is_some_and(|t| t.chars().count() > max) {
                problems.push(at.bad(field, format!("at most {max} characters")));
            }
        }
        if it.values.is_empty() {
            problems.push(at.bad("values", "a return needs at least one value"));
        }
        problems
    }

    /// Checks each value of a return, whatever the others hold: the values that pass, with
    /// their positions for later problems to point at, and the problems of the rest.
    fn check_values(
        &self,
        at: At,
        values: &[ValueItem],
        period: FinancialYear,
    ) -> ApiResult<(Vec<Numbered>, Vec<Problem>)> {
        let (mut checked, mut problems) = (vec![], vec![]);
        let mut seen = HashSet::new();
        for (v, val) in values.iter().enumerate() {
            let at = at.value(v);
            let value = self
                .submittable_metric(at, val, period)?
                .and_then(|metric| check_value(at, metric, val, &mut seen));
            match value {
                Ok(pv) => checked.push((v, pv)),
                Err(p) => problems.push(p),
            }
        }
        Ok((checked, problems))
    }

    /// The catalogue entry a value names, if it is submitted at all (ratios are derived) and
    /// this token's scopes cover it for the period.
    fn submittable_metric(
        &self,
        at: At,
        val: &ValueItem,
        period: FinancialYear,
    ) -> ApiResult<Result<&Metric, Problem>> {
        let Some(metric) = self.catalogue.get(val.metric.trim()) else {
            return Ok(Err(at.bad(
                "metric",
                format!(
                    "`{}` is not a metric code; see the `metrics` query",
                    val.metric
                ),
            )));
        };
        if matches!(metric.aggregation, Aggregation::Ratio { .. }) {
            return Ok(Err(at.bad(
                "metric",
                format!(
                    "{} is derived from other metrics; submit those instead",
                    metric.code
                ),
            )));
        }
        if !policy::returns::may_submit_value(self.by, metric.group, period) {
            return Ok(Err(at.problem(
                "metric",
                "FORBIDDEN",
                format!(
                    "this token's scopes do not cover {} for {period}",
                    metric.code
                ),
            )));
        }
        Ok(Ok(metric))
    }
}

/// A reporting period lasts at most about a year and ends within half a year of the end of
/// the year it is labelled with.
fn period_problems(at: At, h: &Header) -> Vec<Problem> {
    let (start, end, period) = (h.start, h.end, h.period);
    let mut problems = vec![];
    if start >= end || (end - start).num_days() > 371 {
        problems.push(at.bad(
            "periodEnd",
            format!("{start} to {end} is not a reporting year"),
        ));
    }
    let nominal_end = period.end_date(h.month).unwrap_or(end);
    if (end - nominal_end).num_days().abs() > 183 {
        problems.push(at.bad("periodEnd", format!("{end} does not end the year {period}")));
    }
    problems
}

/// One value's own checks, in order: breakdown, repetition, amount, method note. The first
/// problem stops the value, as the later checks would only repeat it. `seen` holds the
/// metric and breakdown of the values met earlier in the return.
fn check_value(
    at: At,
    metric: &Metric,
    val: &ValueItem,
    seen: &mut HashSet<(String, String)>,
) -> Result<PreparedValue, Problem> {
    let breakdown =
        breakdown_of(metric, val.breakdown.as_deref()).map_err(|e| at.bad("breakdown", e))?;
    if !seen.insert((metric.code.clone(), breakdown.clone())) {
        return Err(at.bad(
            "metric",
            format!("{} {breakdown} appears twice in this return", metric.code),
        ));
    }
    let value = amount_of(at, metric, val)?;
    let method =
        method_of(&metric.code, value, val.method.as_deref()).map_err(|e| at.bad("method", e))?;
    Ok(PreparedValue {
        metric: metric.code.clone(),
        breakdown,
        value,
        method,
    })
}

/// The breakdown key in its one spelling (empty for none): a metric with breakdown kinds
/// needs one, any other takes none.
fn breakdown_of(metric: &Metric, raw: Option<&str>) -> Result<String, String> {
    match (
        &metric.breakdown_list(),
        raw.map(str::trim).filter(|b| !b.is_empty()),
    ) {
        (Some(kinds), Some(b)) => check_breakdown(b, kinds),
        (Some(kinds), None) => Err(format!("{} needs a breakdown ({kinds})", metric.code)),
        (None, Some(_)) => Err(format!("{} takes no breakdown", metric.code)),
        (None, None) => Ok(String::new()),
    }
}

/// The value in the metric's minor units, or `None` for "not reported", which must be said
/// outright: not reported is not zero, and an omitted value is neither.
fn amount_of(at: At, metric: &Metric, val: &ValueItem) -> Result<Option<i64>, Problem> {
    match (&val.value, val.not_reported) {
        (Some(_), true) => Err(at.bad(
            "notReported",
            "a value cannot be both given and not reported",
        )),
        (None, false) => Err(at.bad(
            "value",
            "give a value, or notReported: true (not reported is not zero)",
        )),
        (None, true) => Ok(None),
        (Some(raw), false) => {
            let scale = metric.scale;
            match quantity::to_minor_units(raw, scale) {
                Ok(x) if x < 0 => {
                    Err(at.bad("value", format!("{} cannot be negative", metric.code)))
                }
                Ok(x) => Ok(Some(x)),
                Err(e) => Err(at.bad("value", e.0)),
            }
        }
    }
}

/// The method note, trimmed (`None` when blank); a reported emissions value needs one that
/// says how it was worked out.
fn method_of(
    metric: &str,
    value: Option<i64>,
    raw: Option<&str>,
) -> Result<Option<String>, String> {
    let method = raw
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    if method.as_ref().is_some_and(|m| m.chars().count() > 500) {
        return Err("at most 500 characters".into());
    }
    // `impact` counts values with this note as derived from spend lines: only the import
    // writes it.
    if method.as_ref().is_some_and(|m| {
        m.to_lowercase()
            .starts_with(spend::derive::METHOD_PREFIX.trim_end())
    }) {
        return Err(format!(
            "a note beginning `{}` is written by the spend-line import only: import the lines \
             (POST /imports/spend) to derive spend from them",
            spend::derive::METHOD_PREFIX.trim_end()
        ));
    }
    if value.is_some() {
        check_method(metric, method.as_deref())?;
    }
    Ok(method)
}

/// The return's value of a metric that has no breakdown, if it was reported.
fn single(values: &[Numbered], code: &str) -> Option<i64> {
    values
        .iter()
        .find(|(_, p)| p.metric == code && p.breakdown.is_empty())
        .and_then(|(_, p)| p.value)
}

/// A part is at most its whole (the catalogue's `part_of`: local spend at most total spend).
fn parts_within_wholes(
    at: At,
    values: &[Numbered],
    catalogue: &BTreeMap<String, Metric>,
) -> Vec<Problem> {
    let mut problems = vec![];
    for (v, pv) in values {
        let whole = catalogue.get(&pv.metric).and_then(|m| m.part_of.clone());
        if let (Some(whole), Some(part)) = (whole, pv.value)
            && let Some(total) = single(values, &whole)
            && part > total
        {
            problems.push(
                at.value(*v)
                    .bad("value", format!("{} is more than {whole}", pv.metric)),
            );
        }
    }
    problems
}

/// Each way of breaking down employees by residence counts each employee at most once, so
/// it adds up to at most the headcount.
fn residence_within_headcount(at: At, values: &[Numbered]) -> Vec<Problem> {
    let Some(headcount) = single(values, "headcount") else {
        return vec![];
    };
    let mut problems = vec![];
    for kind in ["district:", "imd_decile:"] {
        let sum: i128 = values
            .iter()
            .filter(|(_, p)| p.metric == "employees_by_residence" && p.breakdown.starts_with(kind))
            .filter_map(|(_, p)| p.value)
            .map(i128::from)
            .sum();
        if sum > i128::from(headcount) {
            problems.push(at.bad(
                "values",
                format!(
                    "employees_by_residence by {} adds up to more than headcount",
                    kind.trim_end_matches(':')
                ),
            ));
        }
    }
    problems
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
        .await
        .context("Failed to read the returns of an earlier batch")?;
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
        .await
        .context("Failed to look up a batch by its idempotency key")?)
}

/// Validates and, unless a dry run, writes a batch in one transaction.
///
/// A key seen before answers with the returns it wrote (or a conflict, for a different body)
/// without validating again; a dry run and a batch with problems write nothing.
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
    write(db, &b, &key, &hash, &prepared).await
}

/// Writes a validated batch: its batch row, then each return with its values, all in one
/// transaction, so a failure anywhere leaves nothing behind.
async fn write(
    db: &DatabaseConnection,
    b: &Batch<'_>,
    key: &str,
    hash: &str,
    prepared: &[Prepared],
) -> ApiResult<Outcome> {
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start the batch's transaction")?;
    let now = Utc::now();
    let Some(batch) = insert_batch(&txn, b, key, hash, now).await? else {
        // A concurrent request with the same key got in first: answer as its retry would.
        txn.rollback()
            .await
            .context("Failed to roll back a batch written concurrently")?;
        let prev = find_batch(db, b.network.id, key).await?.ok_or_else(|| {
            ApiError::Conflict("a batch with this key is being written; retry".into())
        })?;
        return replay_or_conflict(db, &prev, hash).await;
    };
    lock_institutions(&txn, prepared).await?;
    let stamp = Stamp {
        batch: batch.id,
        by: &b.by.subject,
        at: now,
        published: (!b.network.requires_approval).then_some(now),
    };
    let mut written = Vec::with_capacity(prepared.len());
    for p in prepared {
        written.push(insert_return(&txn, p, &stamp).await?);
    }
    let ids = written
        .iter()
        .map(|r| r.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut am: submission_batches::ActiveModel = batch.into();
    am.return_ids = Set(ids);
    am.update(&txn)
        .await
        .context("Failed to record the batch's returns")?;
    txn.commit().await.context("Failed to commit the batch")?;
    Ok(Outcome::Written(written))
}

/// Inserts the batch row, or `None` when the key is taken. It goes first so that a concurrent
/// retry with the same key stops on its unique index before writing any return.
async fn insert_batch(
    txn: &DatabaseTransaction,
    b: &Batch<'_>,
    key: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<submission_batches::Model>> {
    let inserted = submission_batches::ActiveModel {
        network_id: Set(b.network.id),
        idempotency_key: Set(key.to_owned()),
        body_hash: Set(hash.to_owned()),
        return_ids: Set(String::new()),
        created_by: Set(b.by.subject.clone()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await;
    match inserted {
        Ok(row) => Ok(Some(row)),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e)
            .context("Failed to insert the batch row")
            .into()),
    }
}

/// Versions are numbered from the latest one, so two batches restating the same return at
/// once must take turns: this locks the institutions in id order (no deadlock) for the rest
/// of the transaction. SQLite runs one writer at a time already.
async fn lock_institutions(txn: &DatabaseTransaction, prepared: &[Prepared]) -> ApiResult<()> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let mut ids: Vec<i64> = prepared.iter().map(|p| p.institution.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let statement = crate::sql::Sql::format(
        "SELECT id FROM institutions WHERE id IN ({}) ORDER BY id FOR UPDATE",
        [crate::sql::Sql::list(ids)],
    );
    txn.execute_raw(statement.statement(DatabaseBackend::Postgres))
        .await
        .context("Failed to lock the batch's institutions")?;
    Ok(())
}

/// What every return of one batch is written with.
struct Stamp<'a> {
    batch: i64,
    by: &'a str,
    at: DateTime<Utc>,
    /// When readers outside the steward network see it: now, unless the network approves
    /// returns first.
    published: Option<DateTime<Utc>>,
}

/// Writes one return as the next version of its institution and period, with its values.
async fn insert_return(
    txn: &DatabaseTransaction,
    p: &Prepared,
    stamp: &Stamp<'_>,
) -> ApiResult<returns::Model> {
    let latest: Option<i32> = returns::Entity::find()
        .select_only()
        .column_as(returns::Column::Version.max(), "v")
        .filter(returns::Column::InstitutionId.eq(p.institution.id))
        .filter(returns::Column::Period.eq(p.period.to_string()))
        .into_tuple::<Option<i32>>()
        .one(txn)
        .await
        .context("Failed to read a return's latest version")?
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
        batch_id: Set(Some(stamp.batch)),
        submitted_at: Set(stamp.at),
        submitted_by: Set(stamp.by.to_owned()),
        published_at: Set(stamp.published),
        decided_at: Set(None),
        decided_by: Set(None),
        reject_reason: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await
    .context("Failed to insert a return")?;
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
        .exec_without_returning(txn)
        .await
        .context("Failed to insert a return's values")?;
    }
    crate::returns::refresh_current(txn, row.institution_id, &row.period).await?;
    Ok(row)
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

#[cfg(test)]
mod method_tests {
    use super::method_of;

    #[test]
    fn only_the_import_may_say_a_value_is_derived_from_spend_lines() {
        let typed = method_of(
            "procurement_spend_local",
            Some(1),
            Some("  Derived from spend lines version 3 (10 lines)"),
        );
        assert!(typed.unwrap_err().contains("spend-line import only"));
        assert_eq!(
            method_of(
                "procurement_spend_local",
                Some(1),
                Some(" from our ledger ")
            ),
            Ok(Some("from our ledger".to_owned()))
        );
    }
}
