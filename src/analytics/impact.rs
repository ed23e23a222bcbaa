//! The regional impact query, in SQL: one statement per request, however many cells it
//! answers ([`statement`]), then disclosure control on each cell ([`crate::policy::disclosure`]).

mod statement;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::metrics;
use sea_orm::{ConnectionTrait, FromQueryResult};

use self::statement::{Kind, Row};
use crate::auth::Caller;
use crate::domain::FinancialYear;
use crate::error::{ApiError, ApiResult};
use crate::policy::disclosure;

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
            min_contributors: self.min_contributors.unwrap_or(d.min_contributors),
            dominance_percent: self.dominance_percent.unwrap_or(d.dominance_percent),
            people_count_min: self.people_count_min.unwrap_or(d.people_count_min),
            people_count_round: self.people_count_round.unwrap_or(d.people_count_round),
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

    fn cell_key(&self) -> i64 {
        disclosure::cell_key(self.key_sum.unwrap_or(0))
    }
}

/// Runs the impact aggregation for `caller`: one statement, whose common table expressions
/// are evaluated once and feed every part of the answer.
pub async fn run<C: ConnectionTrait>(db: &C, caller: &Caller, s: &Spec) -> ApiResult<Report> {
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
    let statement = statement::build(caller, s, &sums, &value_metrics)?;
    let rows = Row::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .map_err(overflow)?;
    report(s, rows)
}

/// The cells, withheld and touched networks from the statement's rows.
fn report(s: &Spec, rows: Vec<Row>) -> ApiResult<Report> {
    let mut eligible: BTreeMap<(String, Key), i64> = BTreeMap::new();
    let mut withheld = vec![];
    let mut touched = vec![];
    let mut values = vec![];
    for r in rows {
        match r.kind()? {
            Kind::Eligible => {
                eligible.insert((r.metric.clone(), r.key()), r.contributors);
            }
            Kind::Withheld => withheld.push(r.network),
            Kind::Touched => touched.push(r.network),
            Kind::Sum | Kind::Ratio => values.push(r),
        }
    }
    let eligible_for = |metric: &str, key: &Key| -> i64 {
        let m = if s.panel { metric } else { "" };
        eligible
            .get(&(m.to_owned(), key.clone()))
            .copied()
            .unwrap_or(0)
    };
    let mut cells = vec![];
    for r in values {
        let (ratio, mut cell) = match r.kind()? {
            Kind::Ratio => (true, ratio_cell(r)),
            _ => (false, sum_cell(s, r)),
        };
        // A ratio's panel is the institutions in both its parts' panels: its contributors.
        if !(ratio && s.panel) {
            cell.eligible = eligible_for(&cell.metric, &cell.key);
        }
        cells.push(cell);
    }
    answer_empty_cells(s, &eligible, &mut cells);
    cells.sort_by(|a, b| (&a.metric, &a.key, &a.breakdown).cmp(&(&b.metric, &b.key, &b.breakdown)));
    withheld.sort_unstable();
    touched.sort_unstable();
    Ok(Report {
        cells,
        withheld,
        touched,
    })
}

/// A sum cell, through disclosure control.
fn sum_cell(s: &Spec, r: Row) -> Cell {
    let class = s
        .metrics
        .iter()
        .find(|m| m.code == r.metric)
        .map_or("MAGNITUDE", |m| m.disclosure.as_str());
    let outcome = match r.total {
        Some(total) => disclosure::sum_cell(
            class,
            total,
            r.aggregate_only,
            side(r.agg_sum, r.agg_largest, r.agg_second),
            r.thresholds(),
            r.cell_key(),
        ),
        None => disclosure::Outcome::Exact,
    };
    let (value, suppressed) = match outcome {
        disclosure::Outcome::Exact => (r.total.map(Value2::Sum), None),
        disclosure::Outcome::Adjusted(v) => (Some(Value2::Sum(v)), None),
        disclosure::Outcome::Suppressed(why) => (None, Some(why)),
    };
    Cell {
        key: r.key(),
        breakdown: Some(r.breakdown).filter(|b| !b.is_empty()),
        value,
        suppressed,
        contributors: r.contributors,
        aggregate_only: r.aggregate_only,
        eligible: 0,
        metric: r.metric,
    }
}

/// A ratio cell, through disclosure control; `eligible` is its contributors' panel.
fn ratio_cell(r: Row) -> Cell {
    let (value, suppressed) = match (r.total, r.denominator) {
        (Some(n), Some(d)) => match disclosure::ratio_cell(
            n,
            r.aggregate_only,
            side(r.agg_sum, r.agg_largest, r.agg_second),
            side(r.agg_den_sum, r.agg_den_largest, r.agg_den_second),
            r.thresholds(),
            r.cell_key(),
        ) {
            disclosure::Outcome::Exact => (Some(Value2::Ratio(i128::from(n), i128::from(d))), None),
            disclosure::Outcome::Adjusted(n) => {
                (Some(Value2::Ratio(i128::from(n), i128::from(d))), None)
            }
            disclosure::Outcome::Suppressed(why) => (None, Some(why)),
        },
        _ => (None, None),
    };
    Cell {
        key: r.key(),
        breakdown: None,
        value,
        suppressed,
        contributors: r.contributors,
        aggregate_only: r.aggregate_only,
        eligible: r.contributors,
        metric: r.metric,
    }
}

/// Cells with eligible institutions but no contributors still answer: nothing seen.
fn answer_empty_cells(s: &Spec, eligible: &BTreeMap<(String, Key), i64>, cells: &mut Vec<Cell>) {
    let answered: std::collections::BTreeSet<(String, Key)> = cells
        .iter()
        .map(|c| (c.metric.clone(), c.key.clone()))
        .collect();
    for m in s.metrics.iter().map(|m| &m.code) {
        for ((em, key), n) in eligible {
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
}

fn overflow(e: sea_orm::DbErr) -> ApiError {
    let text = e.to_string();
    if text.contains("overflow") || text.contains("out of range") {
        ApiError::Conflict("a total is larger than 64 bits can hold".into())
    } else {
        e.into()
    }
}
