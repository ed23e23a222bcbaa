//! Reading returns, approving and rejecting them, and the coordinator's chase list. Every
//! read carries the policy module's predicate inside its SQL.

use std::collections::HashMap;

use anyhow::Context;

use chrono::{NaiveDate, Utc};
use entity::{institutions, memberships, networks, return_values, returns};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
};

use crate::auth::Caller;
use crate::domain::{AsOf, FinancialYear, MetricGroup};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, PageArgs};
use crate::policy;
use crate::sql::Sql;
use entity::vocab::{MembershipStatus, ReturnStatus};

/// Sets which version of the return of `institution_id` for `period` is current now, for the
/// steward network (`current_steward`) and for everyone else (`current_published`), from the
/// versions themselves: every write of a return calls it, in the write's transaction.
pub async fn refresh_current<C: ConnectionTrait>(
    db: &C,
    institution_id: i64,
    period: &str,
) -> ApiResult<()> {
    for sql in migration::m20261130_000009_current_returns::REFRESH_ALL {
        let statement = Sql::format(
            "{} WHERE institution_id = {} AND period = {}",
            [
                Sql::raw(sql),
                Sql::value(institution_id),
                Sql::value(period.to_owned()),
            ],
        );
        db.execute_raw(statement.statement(db.get_database_backend()))
            .await
            .context("Failed to mark a return's current version")?;
    }
    Ok(())
}

/// The filters of `returns(filter: …)`, resolved.
#[derive(Debug, Clone, Default)]
pub struct ReturnFilter {
    pub institution: Option<i64>,
    /// Institutions that belonged to this network on the period's last day.
    pub network: Option<i64>,
    pub period: Option<FinancialYear>,
    pub status: Option<ReturnStatus>,
}

/// The returns the caller sees at DETAIL at `at` that the filter keeps: a statement
/// selecting `columns` (given the statement's `reach` and rows) from them (`r`, with its
/// institution `i`), and any more conditions.
fn visible(
    caller: &Caller,
    f: &ReturnFilter,
    at: AsOf,
    columns: impl FnOnce(&policy::returns::Reach, &policy::returns::ReturnRows) -> Sql,
    join: Option<Sql>,
    more: Option<Sql>,
) -> ApiResult<Sql> {
    let reach = policy::returns::reach(caller);
    let candidates = policy::returns::candidates(caller, &reach);
    let rows = policy::returns::ReturnRows::of_institutions("cand");
    let columns = columns(&reach, &rows);
    let mut conditions = vec![policy::returns::returns_visible(caller, &reach, &rows, at)?];
    if let Some(i) = f.institution {
        conditions.push(Sql::format("r.institution_id = {}", [Sql::value(i)]));
    }
    if let Some(n) = f.network {
        conditions.push(Sql::format(
            "EXISTS (SELECT 1 FROM memberships mf WHERE mf.institution_id = i.id AND mf.network_id = {} \
               AND mf.status = 'ACTIVE' AND mf.from_date <= r.period_end \
               AND (mf.to_date IS NULL OR mf.to_date >= r.period_end))",
            [Sql::value(n)],
        ));
    }
    if let Some(p) = f.period {
        conditions.push(Sql::format("r.period = {}", [Sql::value(p.to_string())]));
    }
    if let Some(s) = f.status {
        conditions.push(Sql::format("r.status = {}", [Sql::value(s)]));
    }
    conditions.extend(more);
    let from = match join {
        Some(j) => Sql::format("{} {}", [rows.from(), j]),
        None => rows.from(),
    };
    Ok(Sql::format(
        "WITH {}, {} SELECT {} FROM {} WHERE {}",
        [
            reach.cte(),
            candidates,
            columns,
            from,
            Sql::join(
                conditions.into_iter().map(|c| Sql::format("({})", [c])),
                " AND ",
            ),
        ],
    ))
}

/// A page of the returns the caller sees at DETAIL, as they stood at `at`.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    f: &ReturnFilter,
    at: AsOf,
    p: PageArgs,
) -> ApiResult<Page<returns::Model>> {
    let page = page_with_institutions(db, caller, f, at, p, false).await?;
    Ok(Page {
        items: page.items.into_iter().map(|row| row.r).collect(),
        has_next: page.has_next,
    })
}

/// A return with its institution, read in the same statement: the access log records whose
/// data a read touched (the steward network), and `institution { … }` needs no statement of
/// its own.
pub struct WithInstitution {
    pub r: returns::Model,
    pub institution: institutions::Model,
    /// The metric groups whose values the caller sees at DETAIL, when the page was read
    /// with them ([`page_with_institutions`]'s `levels`).
    pub detail_groups: Option<Vec<MetricGroup>>,
}

/// The institution's columns in [`page_with_institutions`], prefixed so they do not collide
/// with the return's own (`id`, `created_at`).
const INSTITUTION_PREFIX: &str = "inst_";

/// The columns holding the policy's level for each metric group, in `MetricGroup::ALL`'s order.
const LEVEL_COLUMNS: [&str; 4] = ["level_0", "level_1", "level_2", "level_3"];
const _: () = assert!(LEVEL_COLUMNS.len() == MetricGroup::ALL.len());

impl FromQueryResult for WithInstitution {
    fn from_query_result(row: &sea_orm::QueryResult, pre: &str) -> Result<Self, sea_orm::DbErr> {
        // The level columns are there only when the page was read with them.
        let detail_groups = match row.try_get::<Option<i32>>(pre, LEVEL_COLUMNS[0]) {
            Err(_) => None,
            Ok(_) => {
                let mut groups = vec![];
                for (group, column) in MetricGroup::ALL.into_iter().zip(LEVEL_COLUMNS) {
                    if row.try_get::<Option<i32>>(pre, column)? == Some(2) {
                        groups.push(group);
                    }
                }
                Some(groups)
            }
        };
        Ok(Self {
            r: returns::Model::from_query_result(row, pre)?,
            institution: institutions::Model::from_query_result(
                row,
                &format!("{pre}{INSTITUTION_PREFIX}"),
            )?,
            detail_groups,
        })
    }
}

/// [`page`], each return with its institution and, with `levels`, the metric groups whose
/// values the caller sees at DETAIL: the policy's [`policy::returns::value_level`] for each
/// group, in the page's own statement, so the values need no policy of their own
/// ([`values_at_detail`]).
pub async fn page_with_institutions<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    f: &ReturnFilter,
    at: AsOf,
    p: PageArgs,
    levels: bool,
) -> ApiResult<Page<WithInstitution>> {
    use sea_orm::{IdenStatic, Iterable};
    let after = p.after.map(|a| Sql::format("r.id > {}", [Sql::value(a)]));
    // `i` in the statement is the candidates' relation (id and steward only): the rest of the
    // institution is joined by key, for the page's rows alone.
    let columns = |reach: &policy::returns::Reach, rows: &policy::returns::ReturnRows| {
        let mut columns: Vec<Sql> = vec![Sql::raw("r.*")];
        columns.extend(institutions::Column::iter().map(|c| {
            let name = Sql::raw(IdenStatic::as_str(&c));
            // The alias's prefix is INSTITUTION_PREFIX.
            Sql::format("ii.{} AS inst_{}", [name.clone(), name])
        }));
        if levels {
            for (group, column) in MetricGroup::ALL.into_iter().zip(LEVEL_COLUMNS) {
                let level =
                    policy::returns::value_level(caller, reach, rows, Sql::value(group.as_str()));
                columns.push(Sql::format("({}) AS {}", [level, Sql::raw(column)]));
            }
        }
        Sql::join(columns, ", ")
    };
    let mut statement = visible(
        caller,
        f,
        at,
        columns,
        Some(Sql::raw("JOIN institutions ii ON ii.id = r.institution_id")),
        after,
    )?;
    statement.push(Sql::format(
        " ORDER BY r.id LIMIT {}",
        [Sql::value(i64::try_from(p.first + 1).unwrap_or(101))],
    ));
    let rows = WithInstitution::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read a page of returns")?;
    Ok(Page::from_overfetch(rows, p.first as usize))
}

#[derive(FromQueryResult)]
struct GroupedValue {
    #[sea_orm(nested)]
    v: return_values::Model,
    metric_group: String,
}

/// The values of a page of returns read with `levels` ([`page_with_institutions`]): those of
/// the metric groups the policy gave at DETAIL for each return, by return id.
pub async fn values_at_detail<C: ConnectionTrait>(
    db: &C,
    page: &[WithInstitution],
) -> ApiResult<HashMap<i64, Vec<return_values::Model>>> {
    let detail: HashMap<i64, &[MetricGroup]> = page
        .iter()
        .filter_map(|row| Some((row.r.id, row.detail_groups.as_deref()?)))
        .filter(|(_, groups)| !groups.is_empty())
        .collect();
    if detail.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = Sql::format(
        "SELECT v.*, m.metric_group AS metric_group FROM return_values v \
         JOIN metrics m ON m.code = v.metric_code WHERE v.return_id IN ({}) \
         ORDER BY v.return_id, m.position, v.breakdown",
        [Sql::list(detail.keys().copied())],
    );
    let rows = GroupedValue::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read the returns' values")?;
    let mut out: HashMap<i64, Vec<return_values::Model>> = HashMap::new();
    for row in rows {
        let group: MetricGroup = row.metric_group.parse().map_err(|_| {
            anyhow::anyhow!(
                "metrics row `{}`, column metric_group: `{}` is no metric group",
                row.v.metric_code,
                row.metric_group
            )
        })?;
        if detail
            .get(&row.v.return_id)
            .is_some_and(|groups| groups.contains(&group))
        {
            out.entry(row.v.return_id).or_default().push(row.v);
        }
    }
    Ok(out)
}

#[derive(FromQueryResult)]
struct Steward {
    steward_network_id: i64,
}

/// The steward networks of these institutions, for the access log.
pub async fn stewards_of<C: ConnectionTrait>(
    db: &C,
    institution_ids: &[i64],
) -> ApiResult<Vec<i64>> {
    if institution_ids.is_empty() {
        return Ok(vec![]);
    }
    let statement = Sql::format(
        "SELECT DISTINCT steward_network_id FROM institutions WHERE id IN ({})",
        [Sql::list(institution_ids.iter().copied())],
    );
    Ok(
        Steward::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await
            .context("Failed to read the institutions' stewards")?
            .into_iter()
            .map(|s| s.steward_network_id)
            .collect(),
    )
}

/// The steward networks a refused read of returns asked about: the filter's network or its
/// institution's steward.
pub async fn stewards_asked<C: ConnectionTrait>(db: &C, f: &ReturnFilter) -> ApiResult<Vec<i64>> {
    let mut out: Vec<i64> = f.network.into_iter().collect();
    if let Some(i) = f.institution {
        out.extend(stewards_of(db, &[i]).await?);
    }
    Ok(out)
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

pub async fn count<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    f: &ReturnFilter,
    at: AsOf,
) -> ApiResult<u64> {
    let statement = visible(caller, f, at, |_, _| Sql::raw("COUNT(*) AS n"), None, None)?;
    let row = Count::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .context("Failed to count the visible returns")?;
    Ok(row.map(|c| u64::try_from(c.n).unwrap_or(0)).unwrap_or(0))
}

/// The values of each return that the caller sees at DETAIL: the policy decides value by
/// value, since grants and scopes name metric groups. The caller has already been shown these
/// returns, so which version is current is settled.
pub async fn values_of<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    return_ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<return_values::Model>>> {
    if return_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let reach = policy::returns::reach(caller);
    let rows = policy::returns::ReturnRows::all();
    let level = policy::returns::value_level(caller, &reach, &rows, Sql::raw("m.metric_group"));
    let statement = reach.with(Sql::format(
        "SELECT v.* FROM {} JOIN return_values v ON v.return_id = r.id \
         JOIN metrics m ON m.code = v.metric_code \
         WHERE ({}) = 2 AND v.return_id IN ({}) AND r.id IN ({}) \
         ORDER BY v.return_id, m.position, v.breakdown",
        // The ids twice: on the values and on the returns, so the plan (generic, made once
        // per connection) finds both by key instead of scanning every return (8-40 ms).
        [
            rows.from(),
            level,
            Sql::list(return_ids.iter().copied()),
            Sql::list(return_ids.iter().copied()),
        ],
    ));
    let rows =
        return_values::Model::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await
            .context("Failed to read the returns' values")?;
    let mut out: HashMap<i64, Vec<return_values::Model>> = HashMap::new();
    for r in rows {
        out.entry(r.return_id).or_default().push(r);
    }
    Ok(out)
}

async fn decidable(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ApiResult<(returns::Model, String)> {
    let (r, inst) = returns::Entity::find_by_id(id)
        .find_also_related(institutions::Entity)
        .one(db)
        .await
        .context("Failed to read the return and its institution")?
        .ok_or_else(|| ApiError::NotFound(format!("id: return {id}")))?;
    let inst =
        inst.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("return {id} has no institution")))?;
    let period: FinancialYear = r
        .period
        .parse()
        .map_err(|e| anyhow::anyhow!("return {id} has a stored period {:?}: {e}", r.period))?;
    // Only the steward's admins decide, within their scopes; a refusal shows nothing of it.
    let p = policy::returns::may_administer_returns(caller, inst.steward_network_id, period)?;
    let network = networks::Entity::find_by_id(inst.steward_network_id)
        .one(db)
        .await
        .context("Failed to read the institution's steward network")?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("institution {} has no steward", inst.id))
        })?;
    if !network.requires_approval {
        return Err(ApiError::Conflict(format!(
            "{} does not require approval: its returns count when submitted",
            network.key
        )));
    }
    if r.status != ReturnStatus::Submitted {
        return Err(ApiError::Conflict(format!(
            "return {id} is {} already",
            r.status.as_str().to_lowercase()
        )));
    }
    let newer = returns::Entity::find()
        .filter(returns::Column::InstitutionId.eq(r.institution_id))
        .filter(returns::Column::Period.eq(r.period.clone()))
        .filter(returns::Column::Version.gt(r.version))
        .one(db)
        .await
        .context("Failed to look for a newer version of the return")?;
    if newer.is_some() {
        return Err(ApiError::Conflict(format!(
            "return {id} has been superseded by a newer version"
        )));
    }
    Ok((r, p.subject.clone()))
}

pub async fn approve(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ApiResult<returns::Model> {
    let (r, by) = decidable(db, caller, id).await?;
    let now = Utc::now();
    let mut am: returns::ActiveModel = r.into();
    am.status = Set(ReturnStatus::Approved);
    am.published_at = Set(Some(now));
    am.decided_at = Set(Some(now));
    am.decided_by = Set(Some(by));
    decide(db, am, "approval").await
}

pub async fn reject(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    reason: &str,
) -> ApiResult<returns::Model> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(ApiError::bad_input(
            "reason",
            "say why, in 1 to 2000 characters",
        ));
    }
    let (r, by) = decidable(db, caller, id).await?;
    let mut am: returns::ActiveModel = r.into();
    am.status = Set(ReturnStatus::Rejected);
    am.decided_at = Set(Some(Utc::now()));
    am.decided_by = Set(Some(by));
    am.reject_reason = Set(Some(reason.to_owned()));
    decide(db, am, "rejection").await
}

/// Writes a decision on a return and which version is now current, together.
async fn decide(
    db: &DatabaseConnection,
    am: returns::ActiveModel,
    what: &str,
) -> ApiResult<returns::Model> {
    let txn = crate::db::begin_write(db)
        .await
        .with_context(|| format!("Failed to begin recording the {what}"))?;
    let r = am
        .update(&txn)
        .await
        .with_context(|| format!("Failed to record the {what}"))?;
    refresh_current(&txn, r.institution_id, &r.period).await?;
    txn.commit()
        .await
        .with_context(|| format!("Failed to commit the {what}"))?;
    // The flags moved in the same transaction: read them back as stored.
    Ok(returns::Entity::find_by_id(r.id)
        .one(db)
        .await
        .context("Failed to read the decided return")?
        .unwrap_or(r))
}

/// A member's standing for a period, for the chase list.
pub struct Standing {
    pub institution: institutions::Model,
    pub period_end: NaiveDate,
    /// The latest version, if any (for stewarded members, as the steward sees it).
    pub latest: Option<returns::Model>,
}

/// Every member of the network on the period's last day (by each institution's year-end),
/// with the latest version of its return that the network's admins see.
pub async fn submissions(
    db: &DatabaseConnection,
    caller: &Caller,
    network: &networks::Model,
    period: FinancialYear,
) -> ApiResult<Vec<Standing>> {
    policy::returns::may_administer_returns(caller, network.id, period)?;
    let members = memberships::Entity::find()
        .filter(memberships::Column::NetworkId.eq(network.id))
        .filter(memberships::Column::Status.eq(MembershipStatus::Active))
        .all(db)
        .await
        .context("Failed to read the network's active memberships")?;
    let ids: Vec<i64> = members.iter().map(|m| m.institution_id).collect();
    let insts = institutions::Entity::find()
        .filter(institutions::Column::Id.is_in(ids.clone()))
        .order_by_asc(institutions::Column::Name)
        .all(db)
        .await
        .context("Failed to read the member institutions")?;
    let f = ReturnFilter {
        network: Some(network.id),
        period: Some(period),
        ..Default::default()
    };
    // The latest version as this admin sees it: the policy's own predicate, so the chase
    // list never shows more than `returns` would.
    let statement = visible(caller, &f, AsOf::Now, |_, _| Sql::raw("r.*"), None, None)?;
    let latest = returns::Model::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read the members' current returns")?;
    let latest: HashMap<i64, returns::Model> =
        latest.into_iter().map(|r| (r.institution_id, r)).collect();
    let mut out = vec![];
    for inst in insts {
        let month = crate::directory::year_end_month(&inst)?;
        let Some(end) = period.end_date(month) else {
            continue;
        };
        let member = members.iter().any(|m| {
            m.institution_id == inst.id && m.from_date <= end && m.to_date.is_none_or(|t| t >= end)
        });
        if member {
            out.push(Standing {
                latest: latest.get(&inst.id).cloned(),
                period_end: end,
                institution: inst,
            });
        }
    }
    Ok(out)
}
