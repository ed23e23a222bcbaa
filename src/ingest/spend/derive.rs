//! A return's spend derived from its institution's spend lines.
//!
//! When a new version of an institution's spend lines for a period is switched in, the same
//! transaction writes a new version of the institution's return for that period, restating
//! its spend from the lines:
//!
//! - `procurement_spend_total`: every line's amount, the place-unknown ones included;
//! - `procurement_spend_local`: the lines whose supplier's district is in the steward
//!   network's place (`network_districts`);
//! - `procurement_spend_region`: the lines whose supplier's district is one of the network's
//!   region's (`region_districts`).
//!
//! A line's district is the one resolved at the switch (its postcode through the lookup, or
//! the district given); a line whose place is unknown counts in the total only. The other
//! values of the return are carried over from the version current for the steward network
//! (none, if the institution had no return for the period). The new version's `basis` says
//! "derived from N spend lines" and each derived value's `method` names the file's version.
//!
//! Deriving at the switch rather than at read time keeps returns what they are: exact,
//! versioned (`asOf` reads the spend as it was derived then), written all or nothing with the
//! lines they rest on, and read through the same policy as every other return. The same file
//! twice writes nothing, so derives nothing twice.

use anyhow::Context;
use chrono::Utc;
use entity::vocab::{PlaceSource, ReturnStatus};
use entity::{return_values, returns, spend_files};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect,
};

use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::sql::Sql;

/// The metrics a return's spend lines restate.
pub const DERIVED: [&str; 3] = [
    "procurement_spend_total",
    "procurement_spend_local",
    "procurement_spend_region",
];

/// The sums of one file's lines, in pence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct Sums {
    pub total: i64,
    pub local: i64,
    pub region: i64,
}

/// The sums of `file`'s lines: all of them, those in the network's place, those in its region.
pub async fn sums<C: ConnectionTrait>(
    db: &C,
    file: &spend_files::Model,
    network: &entity::networks::Model,
) -> ApiResult<Sums> {
    let known = Sql::value(PlaceSource::Unknown.as_str());
    let statement = Sql::format(
        "SELECT CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) AS total, \
           CAST(COALESCE(SUM(CASE WHEN l.place <> {} AND l.district_code IN \
             (SELECT nd.district_code FROM network_districts nd WHERE nd.network_id = {}) \
             THEN l.amount ELSE 0 END), 0) AS BIGINT) AS local, \
           CAST(COALESCE(SUM(CASE WHEN l.place <> {} AND l.district_code IN \
             (SELECT rd.district_code FROM region_districts rd WHERE rd.region_id = {}) \
             THEN l.amount ELSE 0 END), 0) AS BIGINT) AS region \
         FROM spend_lines l WHERE l.file_id = {}",
        [
            known.clone(),
            Sql::value(network.id),
            known,
            Sql::value(network.region_id),
            Sql::value(file.id),
        ],
    );
    Sums::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .context("Failed to sum an import's lines")?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no sums of spend file {}", file.id)))
}

/// Writes the institution's return for the file's period again, as its next version, with its
/// spend derived from `file`'s lines. Runs in the switch's transaction.
// Long because it is the steps of one write in the switch's transaction, in order: the sums,
// the version it restates, the new return, its values, the current-version flags.
/// `sums` are the file's ([`sums`], or kept as its lines were copied).
pub async fn restate<C: ConnectionTrait>(
    txn: &C,
    target: &Target,
    file: &spend_files::Model,
    sums: Sums,
) -> ApiResult<returns::Model> {
    let institution = target.institution.id;
    let period = file.period.as_str();
    let base = returns::Entity::find()
        .filter(returns::Column::InstitutionId.eq(institution))
        .filter(returns::Column::Period.eq(period))
        .filter(returns::Column::CurrentSteward.eq(true))
        .one(txn)
        .await
        .context("Failed to read the return spend lines restate")?;
    let latest: Option<i32> = returns::Entity::find()
        .select_only()
        .column_as(returns::Column::Version.max(), "v")
        .filter(returns::Column::InstitutionId.eq(institution))
        .filter(returns::Column::Period.eq(period))
        .into_tuple::<Option<i32>>()
        .one(txn)
        .await
        .context("Failed to read a return's latest version")?
        .flatten();
    let (start, end) = match &base {
        Some(b) => (b.period_start, b.period_end),
        None => {
            let month = crate::directory::year_end_month(&target.institution)?;
            let none = || ApiError::bad_input("period", "the period's days cannot be worked out");
            (
                target.period.start_date(month).ok_or_else(none)?,
                target.period.end_date(month).ok_or_else(none)?,
            )
        }
    };
    let kept = match &base {
        Some(b) => return_values::Entity::find()
            .filter(return_values::Column::ReturnId.eq(b.id))
            .filter(return_values::Column::MetricCode.is_not_in(DERIVED))
            .all(txn)
            .await
            .context("Failed to read the values of the return spend lines restate")?,
        None => vec![],
    };
    let now = Utc::now();
    let row = returns::ActiveModel {
        institution_id: Set(institution),
        period: Set(period.to_owned()),
        period_start: Set(start),
        period_end: Set(end),
        version: Set(latest.unwrap_or(0) + 1),
        status: Set(ReturnStatus::Submitted),
        basis: Set(Some(basis(file))),
        notes: Set(base.as_ref().and_then(|b| b.notes.clone())),
        batch_id: Set(None),
        submitted_at: Set(now),
        submitted_by: Set(target.by.clone()),
        published_at: Set((!target.network.requires_approval).then_some(now)),
        decided_at: Set(None),
        decided_by: Set(None),
        reject_reason: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await
    .context("Failed to insert a return derived from spend lines")?;
    let method = method(file);
    let derived = [sums.total, sums.local, sums.region]
        .into_iter()
        .zip(DERIVED)
        .map(|(value, metric)| return_values::ActiveModel {
            return_id: Set(row.id),
            metric_code: Set(metric.to_owned()),
            breakdown: Set(String::new()),
            value: Set(Some(value)),
            not_reported: Set(false),
            method: Set(Some(method.clone())),
            ..Default::default()
        });
    let carried = kept.into_iter().map(|v| return_values::ActiveModel {
        return_id: Set(row.id),
        metric_code: Set(v.metric_code),
        breakdown: Set(v.breakdown),
        value: Set(v.value),
        not_reported: Set(v.not_reported),
        method: Set(v.method),
        ..Default::default()
    });
    let all: Vec<_> = derived.chain(carried).collect();
    for chunk in all.chunks(500) {
        return_values::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(txn)
            .await
            .context("Failed to insert the values of a return derived from spend lines")?;
    }
    crate::returns::refresh_current(txn, institution, period).await?;
    Ok(row)
}

/// The basis of a return whose spend is derived from `file`.
pub fn basis(file: &spend_files::Model) -> String {
    format!("derived from {} spend lines", file.lines)
}

/// How every derived value's method note begins: `impact` counts the contributors whose
/// values carry it.
pub const METHOD_PREFIX: &str = "derived from spend lines version ";

/// The method note of a value derived from `file`.
pub fn method(file: &spend_files::Model) -> String {
    format!(
        "{METHOD_PREFIX}{} ({} lines, {} of them place unknown)",
        file.version, file.lines, file.place_unknown_lines
    )
}
