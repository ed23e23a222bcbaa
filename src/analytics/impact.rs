//! The regional impact query, in SQL: one statement per request, however many cells it
//! answers. Its parts (eligible counts, sums, one per ratio, withheld networks) are joined by
//! `UNION ALL` and share common table expressions, evaluated once:
//!
//! - `pe`: each requested year's last day for each year-end month;
//! - `elig`: the institutions that were members of the networks in scope on their period's
//!   last day, once per cell (per network only when grouping by network);
//! - `ei`: each eligible institution once, with the columns the policy's predicates read;
//! - `vis`: the versions of returns of eligible institutions current for this reader at
//!   `asOf`, by the policy module's predicate — the only place access is decided;
//! - `vals`: the reported (not "not reported") values of those returns;
//! - `pan`: with `panel`, the institutions that reported a metric in every requested year.
//!
//! The expressions are `MATERIALIZED` (SQLite 3.35+, PostgreSQL 12+): left inline, SQLite
//! re-evaluated `vis` and its correlated version checks once for every eligible row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::metrics;
use sea_orm::{ConnectionTrait, FromQueryResult, Value};

use crate::auth::Caller;
use crate::domain::{FinancialYear, Verb};
use crate::error::{ApiError, ApiResult};
use crate::policy::{self, disclosure};
use crate::sql;

/// What to aggregate, resolved and checked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub networks: Vec<i64>,
    pub years: Vec<FinancialYear>,
    pub metrics: Vec<metrics::Model>,
    /// The numerator and denominator metrics of the requested ratios.
    pub ratio_parts: BTreeMap<String, (String, String)>,
    pub by_network: bool,
    pub by_sector: bool,
    pub by_district: bool,
    pub as_of: DateTime<Utc>,
    pub panel: bool,
}

/// Where a cell sits: its period and the dimensions grouped by (0 / empty when not grouped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub period: String,
    pub network: i64,
    pub sector: String,
    pub district: String,
}

#[derive(Debug, Clone)]
pub enum Value2 {
    Sum(i64),
    Ratio(i128, i128),
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub metric: String,
    pub key: Key,
    pub breakdown: Option<String>,
    pub value: Option<Value2>,
    /// Why disclosure control withheld the value, when it did.
    pub suppressed: Option<String>,
    pub contributors: i64,
    /// Contributors the reader sees only at AGGREGATE: disclosure control applies when any.
    pub aggregate_only: i64,
    pub eligible: i64,
}

pub struct Report {
    pub cells: Vec<Cell>,
    /// Steward networks of eligible institutions this reader was given nothing of.
    pub withheld: Vec<i64>,
    /// Steward networks whose values the answer used.
    pub touched: Vec<i64>,
}

/// One row of the single statement: `E` eligible counts, `S` sums, `R` ratio parts (`metric`
/// is the ratio), `W` withheld steward networks (in `network`).
#[derive(FromQueryResult)]
struct Row {
    kind: String,
    metric: String,
    breakdown: String,
    period: String,
    network: i64,
    sector: String,
    district: String,
    a: Option<i64>,
    b: Option<i64>,
    n: i64,
    /// Contributors the reader sees only at AGGREGATE.
    c: i64,
    /// Over aggregate-only contributors: the sum and two largest values (of a ratio's
    /// numerator; `sd`, `u1`, `u2` its denominator's).
    sa: Option<i64>,
    t1: Option<i64>,
    t2: Option<i64>,
    sd: Option<i64>,
    u1: Option<i64>,
    u2: Option<i64>,
    /// The strictest thresholds among their stewards (null: the defaults).
    mc: Option<i64>,
    dp: Option<i64>,
    pm: Option<i64>,
    pr: Option<i64>,
    /// The sum of all contributors' record keys.
    ck: Option<i64>,
}

fn side(sum: Option<i64>, largest: Option<i64>, second: Option<i64>) -> disclosure::Side {
    disclosure::Side {
        sum: sum.unwrap_or(0),
        largest: largest.unwrap_or(0),
        second: second.unwrap_or(0),
    }
}

impl Row {
    fn thresholds(&self) -> disclosure::Thresholds {
        let d = disclosure::DEFAULT;
        disclosure::Thresholds {
            min_contributors: self.mc.unwrap_or(d.min_contributors),
            dominance_percent: self.dp.unwrap_or(d.dominance_percent),
            people_count_min: self.pm.unwrap_or(d.people_count_min),
            people_count_round: self.pr.unwrap_or(d.people_count_round),
        }
        .at_least_default()
    }

    fn key(&self) -> Key {
        Key {
            period: self.period.clone(),
            network: self.network,
            sector: self.sector.clone(),
            district: self.district.clone(),
        }
    }
}

fn marks(n: usize) -> String {
    sql::placeholders(n.max(1))
}

/// The common table expressions, with their values.
fn prefix(caller: &Caller, s: &Spec, value_metrics: &[String]) -> ApiResult<(String, Vec<Value>)> {
    let reach = policy::returns::reach(caller);
    let mut values: Vec<Value> = reach.values;
    let mut pe_rows = vec![];
    for y in &s.years {
        for month in 1u8..=12 {
            let end = y.end_date(month).ok_or_else(|| {
                ApiError::bad_input("input.years", format!("{y} has no end date"))
            })?;
            pe_rows.push("(?, ?, ?)");
            values.push(y.to_string().into());
            values.push(i32::from(month).into());
            values.push(end.into());
        }
    }
    let network = if s.by_network {
        "m.network_id"
    } else {
        "CAST(0 AS BIGINT)"
    };
    values.extend(s.networks.iter().map(|&n| Value::from(n)));
    let visible = policy::returns::visible_returns(caller, s.as_of, Verb::ReadImpact)?;
    values.extend(visible.values);
    values.extend(s.years.iter().map(|y| Value::from(y.to_string())));
    let level = policy::returns::value_level(caller, "mt.metric_group");
    values.extend(level.values);
    values.extend(value_metrics.iter().map(|m| Value::from(m.clone())));
    let by_residence = value_metrics.iter().any(|m| m == "employees_by_residence");
    let mut text = format!(
        "WITH {reach}, pe(period, month, end_date) AS (VALUES {pe}), \
         elig AS MATERIALIZED (SELECT DISTINCT i.id AS inst, pe.period AS period, pe.end_date AS pend, {network} AS network, \
             i.sector AS sector, i.home_district_code AS district, i.steward_network_id AS steward, \
             i.record_key AS rkey \
           FROM institutions i JOIN pe ON pe.month = i.year_end_month \
           JOIN memberships m ON m.institution_id = i.id \
           WHERE m.network_id IN ({nets}) AND m.status = 'ACTIVE' AND m.from_date <= pe.end_date \
             AND (m.to_date IS NULL OR m.to_date >= pe.end_date)), \
         ei AS MATERIALIZED (SELECT DISTINCT inst AS id, steward AS steward_network_id FROM elig), \
         vis AS MATERIALIZED (SELECT r.id AS rid, r.institution_id AS inst, r.period AS period, \
             r.period_end AS period_end \
           FROM ei i JOIN returns r ON r.institution_id = i.id \
           WHERE ({visible}) AND r.period IN ({years})), \
         {lv} AS MATERIALIZED (SELECT inst, period, metric, breakdown, value, lvl FROM ( \
           SELECT r.inst AS inst, r.period AS period, v.metric_code AS metric, v.breakdown AS breakdown, \
             v.value AS value, {level} AS lvl \
           FROM vis r JOIN ei i ON i.id = r.inst \
           JOIN return_values v ON v.return_id = r.rid JOIN metrics mt ON mt.code = v.metric_code \
           WHERE v.metric_code IN ({vm}) AND v.value IS NOT NULL) x WHERE x.lvl > 0)",
        reach = reach.sql,
        pe = pe_rows.join(", "),
        nets = marks(s.networks.len()),
        visible = visible.sql,
        years = marks(s.years.len()),
        level = level.sql,
        vm = marks(value_metrics.len()),
        lv = if by_residence { "lv" } else { "vals" },
    );
    if by_residence {
        // The share in the two most deprived deciles, as its own breakdown.
        text.push_str(
            ", vals AS MATERIALIZED (SELECT inst, period, metric, breakdown, value, lvl FROM lv \
               UNION ALL SELECT inst, period, metric, 'imd_decile:1-2', SUM(value), MIN(lvl) FROM lv \
               WHERE metric = 'employees_by_residence' AND breakdown IN ('imd_decile:1', 'imd_decile:2') \
               GROUP BY inst, period, metric)",
        );
    }
    if s.panel {
        text.push_str(", pan AS MATERIALIZED (SELECT inst, metric FROM vals GROUP BY inst, metric HAVING COUNT(DISTINCT period) = ?)");
        values.push(i64::try_from(s.years.len()).unwrap_or(0).into());
    }
    Ok((text, values))
}

fn dims() -> &'static str {
    "e.period AS period, e.network AS network"
}

/// Sector and district columns, constant when not grouped by them.
fn more_dims(s: &Spec) -> String {
    let (sector, district) = dim_exprs(s);
    format!("{sector} AS sector, {district} AS district")
}

fn dim_exprs(s: &Spec) -> (&'static str, &'static str) {
    (
        if s.by_sector { "e.sector" } else { "''" },
        if s.by_district { "e.district" } else { "''" },
    )
}

/// Runs the impact aggregation for `caller`: one statement, whose common table expressions
/// are evaluated once and feed every part of the answer.
pub async fn run<C: ConnectionTrait>(db: &C, caller: &Caller, s: &Spec) -> ApiResult<Report> {
    let backend = db.get_database_backend();
    let sums: Vec<String> = s
        .metrics
        .iter()
        .filter(|m| m.aggregation == entity::vocab::Aggregation::Sum)
        .map(|m| m.code.clone())
        .collect();
    let mut value_metrics = sums.clone();
    for (num, den) in s.ratio_parts.values() {
        value_metrics.push(num.clone());
        value_metrics.push(den.clone());
    }
    value_metrics.sort();
    value_metrics.dedup();
    let (cte, mut values) = prefix(caller, s, &value_metrics)?;
    let null = "CAST(NULL AS BIGINT)";
    let mut parts: Vec<String> = vec![];

    // The disclosure columns (see `disclosure`), null where they do not apply.
    let no_disclosure = [null; 11].join(", ");

    // Eligible institutions per cell (per metric only under `panel`).
    let disclosure_names = "CAST(NULL AS BIGINT) AS sa, CAST(NULL AS BIGINT) AS t1, CAST(NULL AS BIGINT) AS t2, \
         CAST(NULL AS BIGINT) AS sd, CAST(NULL AS BIGINT) AS u1, CAST(NULL AS BIGINT) AS u2, \
         CAST(NULL AS BIGINT) AS mc, CAST(NULL AS BIGINT) AS dp, CAST(NULL AS BIGINT) AS pm, \
         CAST(NULL AS BIGINT) AS pr, CAST(NULL AS BIGINT) AS ck";
    parts.push(if s.panel {
        format!(
            "SELECT 'E' AS kind, pan.metric AS metric, '' AS breakdown, {}, {}, {null} AS a, {null} AS b, \
               COUNT(DISTINCT e.inst) AS n, 0 AS c, {disclosure_names} \
             FROM elig e JOIN pan ON pan.inst = e.inst GROUP BY 2, 3, 4, 5, 6, 7",
            dims(),
            more_dims(s)
        )
    } else {
        format!(
            "SELECT 'E' AS kind, '' AS metric, '' AS breakdown, {}, {}, {null} AS a, {null} AS b, \
               COUNT(DISTINCT e.inst) AS n, 0 AS c, {disclosure_names} FROM elig e GROUP BY 2, 3, 4, 5, 6, 7",
            dims(),
            more_dims(s)
        )
    });
    let (sector, district) = dim_exprs(s);
    let cell_partition = format!("e.period, e.network, {sector}, {district}");
    // Per cell: the strictest thresholds among the stewards of aggregate-only contributors,
    // and the sum of all contributors' record keys.
    let thresholds = "CAST(MAX(CASE WHEN x.agg = 1 THEN x.mc END) AS BIGINT), \
         CAST(MAX(CASE WHEN x.agg = 1 THEN x.dp END) AS BIGINT), \
         CAST(MAX(CASE WHEN x.agg = 1 THEN x.pm END) AS BIGINT), \
         CAST(MAX(CASE WHEN x.agg = 1 THEN x.pr END) AS BIGINT), CAST(SUM(x.rkey) AS BIGINT)";
    let th_columns = "e.rkey AS rkey, th.min_contributors AS mc, th.dominance_percent AS dp, \
         th.people_count_min AS pm, th.people_count_round AS pr";
    let th_join = "LEFT JOIN disclosure_thresholds th ON th.network_id = e.steward";
    if !sums.is_empty() {
        parts.push(format!(
            "SELECT 'S', x.metric, x.breakdown, x.period, x.network, x.sector, x.district, \
               CAST(SUM(x.value) AS BIGINT), {null}, COUNT(DISTINCT x.inst), \
               COUNT(DISTINCT CASE WHEN x.agg = 1 THEN x.inst END), \
               CAST(SUM(CASE WHEN x.agg = 1 THEN x.value END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rk = 1 THEN x.value END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rk = 2 THEN x.value END) AS BIGINT), \
               {null}, {null}, {null}, {thresholds} \
             FROM (SELECT v.metric AS metric, v.breakdown AS breakdown, {}, {}, e.inst AS inst, \
                 v.value AS value, CASE WHEN v.lvl = 1 THEN 1 ELSE 0 END AS agg, {th_columns}, \
                 ROW_NUMBER() OVER (PARTITION BY v.metric, v.breakdown, {cell_partition}, v.lvl \
                   ORDER BY v.value DESC) AS rk \
               FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period {} {th_join} \
               WHERE v.metric IN ({})) x \
             GROUP BY 2, 3, 4, 5, 6, 7",
            dims(),
            more_dims(s),
            if s.panel {
                "JOIN pan p ON p.inst = e.inst AND p.metric = v.metric"
            } else {
                ""
            },
            marks(sums.len())
        ));
        values.extend(sums.iter().map(|m| Value::from(m.clone())));
    }
    for (ratio, (num, den)) in &s.ratio_parts {
        // Each institution's two parts side by side in one pass over `vals` (a self-join of
        // the materialized CTE, whose size the planner cannot see, went quadratic).
        let panel_join = if s.panel {
            "JOIN pan p ON p.inst = e.inst AND p.metric = v.metric"
        } else {
            ""
        };
        parts.push(format!(
            "SELECT 'R', ?, '', x.period, x.network, x.sector, x.district, \
               CAST(SUM(x.nv) AS BIGINT), CAST(SUM(x.dv) AS BIGINT), COUNT(DISTINCT x.inst), \
               COUNT(DISTINCT CASE WHEN x.agg = 1 THEN x.inst END), \
               CAST(SUM(CASE WHEN x.agg = 1 THEN x.nv END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rn = 1 THEN x.nv END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rn = 2 THEN x.nv END) AS BIGINT), \
               CAST(SUM(CASE WHEN x.agg = 1 THEN x.dv END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rd = 1 THEN x.dv END) AS BIGINT), \
               CAST(MAX(CASE WHEN x.agg = 1 AND x.rd = 2 THEN x.dv END) AS BIGINT), {thresholds} \
             FROM (SELECT y.*, \
                 ROW_NUMBER() OVER (PARTITION BY y.period, y.network, y.sector, y.district, y.agg \
                   ORDER BY y.nv DESC) AS rn, \
                 ROW_NUMBER() OVER (PARTITION BY y.period, y.network, y.sector, y.district, y.agg \
                   ORDER BY y.dv DESC) AS rd \
               FROM (SELECT {}, {}, e.inst AS inst, {th_columns}, \
                   MAX(CASE WHEN v.metric = ? THEN v.value END) AS nv, \
                   MAX(CASE WHEN v.metric = ? THEN v.value END) AS dv, \
                   CASE WHEN MIN(v.lvl) = 1 THEN 1 ELSE 0 END AS agg \
                 FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period \
                   AND v.breakdown = '' AND v.metric IN (?, ?) {panel_join} {th_join} \
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 \
                 HAVING COUNT(DISTINCT v.metric) = 2) y) x \
             GROUP BY 2, 3, 4, 5, 6, 7",
            dims(),
            more_dims(s)
        ));
        values.extend(
            [
                ratio.clone(),
                num.clone(),
                den.clone(),
                num.clone(),
                den.clone(),
            ]
            .map(Value::from),
        );
    }
    // Steward networks of eligible institutions that no rule lets this reader see.
    let access = policy::returns::has_access(caller, "e.period", "e.pend");
    parts.push(format!(
        "SELECT DISTINCT 'W', '', '', '', e.steward, '', '', {null}, {null}, 0, 0, {no_disclosure} \
         FROM elig e JOIN ei i ON i.id = e.inst WHERE NOT ({})",
        access.sql
    ));
    values.extend(access.values);
    // Steward networks whose values this answer used: for the access log.
    parts.push(format!(
        "SELECT DISTINCT 'T', '', '', '', e.steward, '', '', {null}, {null}, 0, 0, {no_disclosure} \
         FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period"
    ));

    let q = format!("{cte} {}", parts.join(" UNION ALL "));
    let rows = Row::find_by_statement(sql::stmt(backend, &q, values))
        .all(db)
        .await
        .map_err(overflow)?;

    let mut eligible: BTreeMap<(String, Key), i64> = BTreeMap::new();
    let mut cells: Vec<Cell> = vec![];
    let mut withheld = vec![];
    let mut touched = vec![];
    for r in &rows {
        match r.kind.as_str() {
            "E" => {
                eligible.insert((r.metric.clone(), r.key()), r.n);
            }
            "W" => withheld.push(r.network),
            "T" => touched.push(r.network),
            _ => {}
        }
    }
    let eligible_for = |metric: &str, key: &Key| -> i64 {
        let m = if s.panel { metric } else { "" };
        eligible
            .get(&(m.to_owned(), key.clone()))
            .copied()
            .unwrap_or(0)
    };
    for r in rows {
        let key = r.key();
        match r.kind.as_str() {
            "S" => {
                let class = s
                    .metrics
                    .iter()
                    .find(|m| m.code == r.metric)
                    .map_or("MAGNITUDE", |m| m.disclosure.as_str());
                let outcome = match r.a {
                    Some(total) => disclosure::sum_cell(
                        class,
                        total,
                        r.c,
                        side(r.sa, r.t1, r.t2),
                        r.thresholds(),
                        disclosure::cell_key(r.ck.unwrap_or(0)),
                    ),
                    None => disclosure::Outcome::Exact,
                };
                let (value, suppressed) = match outcome {
                    disclosure::Outcome::Exact => (r.a.map(Value2::Sum), None),
                    disclosure::Outcome::Adjusted(v) => (Some(Value2::Sum(v)), None),
                    disclosure::Outcome::Suppressed(why) => (None, Some(why)),
                };
                cells.push(Cell {
                    eligible: eligible_for(&r.metric, &key),
                    breakdown: Some(r.breakdown).filter(|b| !b.is_empty()),
                    value,
                    suppressed,
                    contributors: r.n,
                    aggregate_only: r.c,
                    metric: r.metric,
                    key,
                })
            }
            "R" => {
                let (value, suppressed) = match (r.a, r.b) {
                    (Some(n), Some(d)) => match disclosure::ratio_cell(
                        n,
                        r.c,
                        side(r.sa, r.t1, r.t2),
                        side(r.sd, r.u1, r.u2),
                        r.thresholds(),
                        disclosure::cell_key(r.ck.unwrap_or(0)),
                    ) {
                        disclosure::Outcome::Exact => {
                            (Some(Value2::Ratio(i128::from(n), i128::from(d))), None)
                        }
                        disclosure::Outcome::Adjusted(n) => {
                            (Some(Value2::Ratio(i128::from(n), i128::from(d))), None)
                        }
                        disclosure::Outcome::Suppressed(why) => (None, Some(why)),
                    },
                    _ => (None, None),
                };
                cells.push(Cell {
                    // A ratio's panel is the institutions in both its parts' panels: counted here.
                    eligible: if s.panel {
                        r.n
                    } else {
                        eligible_for(&r.metric, &key)
                    },
                    breakdown: None,
                    value,
                    suppressed,
                    contributors: r.n,
                    aggregate_only: r.c,
                    metric: r.metric,
                    key,
                })
            }
            _ => {}
        }
    }
    // Cells with eligible institutions but no contributors still answer: nothing seen.
    let metric_names: Vec<String> = s.metrics.iter().map(|m| m.code.clone()).collect();
    let answered: std::collections::BTreeSet<(String, Key)> = cells
        .iter()
        .map(|c| (c.metric.clone(), c.key.clone()))
        .collect();
    for m in &metric_names {
        for ((em, key), n) in &eligible {
            if s.panel && em != m {
                continue;
            }
            if !answered.contains(&(m.clone(), key.clone())) {
                cells.push(Cell {
                    metric: m.clone(),
                    key: key.clone(),
                    breakdown: None,
                    value: None,
                    suppressed: None,
                    contributors: 0,
                    aggregate_only: 0,
                    eligible: *n,
                });
            }
        }
    }
    cells.sort_by(|a, b| (&a.metric, &a.key, &a.breakdown).cmp(&(&b.metric, &b.key, &b.breakdown)));
    withheld.sort_unstable();
    touched.sort_unstable();
    Ok(Report {
        cells,
        withheld,
        touched,
    })
}

fn overflow(e: sea_orm::DbErr) -> ApiError {
    let text = e.to_string();
    if text.contains("overflow") || text.contains("out of range") {
        ApiError::Conflict("a total is larger than 64 bits can hold".into())
    } else {
        e.into()
    }
}
