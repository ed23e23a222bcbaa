//! The regional impact query, in SQL: one statement per request, however many cells it
//! answers ([`statement`]), then disclosure control on each cell ([`crate::policy::disclosure`]).

mod statement;

use std::collections::BTreeMap;

use entity::metrics;
use entity::vocab::DisclosureClass;
use sea_orm::{ConnectionTrait, FromQueryResult};

use self::statement::{Kind, Row};
use crate::auth::Caller;
use crate::domain::FinancialYear;
use crate::error::{ApiError, ApiResult};
use crate::policy::disclosure::{self, Contribution, NoiseKey};

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
    pub as_of: crate::domain::AsOf,
    pub panel: bool,
    /// For the spend analysis: the values are sums over spend lines, not returns' values.
    pub lines: Option<super::spend::Lines>,
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
    pub suppressed: Option<disclosure::Reason>,
    pub contributors: i64,
    /// Contributors whose value here is derived from spend lines (a ratio's: either part).
    pub derived: i64,
    /// Contributors the reader sees only at AGGREGATE: disclosure control applies when any.
    pub aggregate_only: i64,
    pub eligible: i64,
    /// Eligible institutions the reader may see only in aggregate, whether they reported or
    /// not: when any, the counts are protected too.
    pub eligible_aggregate_only: i64,
    /// The aggregate-only contributors' institution ids, ascending: the differencing guard
    /// compares them with released cells'. Never shown.
    pub members: Vec<i64>,
    /// The strictest thresholds among their stewards.
    pub thresholds: disclosure::Thresholds,
    /// When the cell has enough aggregate-only contributors: what the rules that look at
    /// their values said, for [`super::release`] to keep once per contributor set.
    pub pending: Option<Pending>,
    /// The row it was computed from, when it has a pending decision: to recompute it over a
    /// released subset of its contributors ([`over_subset`]).
    pub(crate) source: Option<Box<Row>>,
}

/// A value the rules that look at values decided on ([`disclosure::Outcome::Uneven`]).
#[derive(Debug, Clone)]
pub struct Pending {
    /// Whether they pass it now.
    pub even: bool,
    /// What the cell shows when shown.
    pub value: Value2,
    /// Where the cell sits ([`coordinates`]).
    pub place: String,
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

    /// The aggregate-only contributions, from `agg_members`: for a sum, each one's value;
    /// for a ratio, each one's numerator and (second) denominator.
    fn contributions(&self, ratio: bool) -> ApiResult<(Vec<Contribution>, Vec<Contribution>)> {
        let (mut first, mut second) = (vec![], vec![]);
        let Some(list) = self.agg_members.as_deref().filter(|l| !l.is_empty()) else {
            return Ok((first, second));
        };
        let bad = |item: &str| {
            ApiError::Internal(anyhow::anyhow!(
                "impact row {:?}: aggregate-only contributor `{item}`",
                self.key()
            ))
        };
        for item in list.split(',') {
            let fields: Vec<&str> = item.split(':').map(str::trim).collect();
            let number = |k: usize| fields.get(k).and_then(|f| f.parse::<i64>().ok());
            let values = if ratio { 2 } else { 1 };
            let (Some(institution), Some(steward)) = (number(0), number(1)) else {
                return Err(bad(item));
            };
            let mut known_by = vec![steward];
            for n in fields.get(2 + values).copied().unwrap_or("").split(';') {
                if !n.is_empty() {
                    known_by.push(n.parse().map_err(|_| bad(item))?);
                }
            }
            known_by.sort_unstable();
            known_by.dedup();
            let contribution = |value| Contribution {
                institution,
                known_by: known_by.clone(),
                value,
            };
            first.push(contribution(number(2).ok_or_else(|| bad(item))?));
            if ratio {
                second.push(contribution(number(3).ok_or_else(|| bad(item))?));
            }
        }
        Ok((first, second))
    }
}

impl Row {
    /// The row as it would be with only `keep` (ascending) of its aggregate-only
    /// contributors: what others contribute as it is, the aggregate-only sums and largest
    /// values recomputed.
    fn restricted_to(&self, keep: &[i64]) -> ApiResult<Row> {
        let ratio = self.kind()? == Kind::Ratio;
        let (numerators, denominators) = self.contributions(ratio)?;
        let kept = |cs: &[Contribution]| -> Vec<i64> {
            cs.iter()
                .filter(|c| keep.binary_search(&c.institution).is_ok())
                .map(|c| c.value)
                .collect()
        };
        let top = |mut values: Vec<i64>| {
            values.sort_unstable_by(|a, b| b.cmp(a));
            (
                values.iter().fold(0i64, |a, v| a.saturating_add(*v)),
                values.first().copied(),
                values.get(1).copied(),
                i64::try_from(values.len()).unwrap_or(i64::MAX),
            )
        };
        let mut r = self.clone();
        let (sum, largest, second, n) = top(kept(&numerators));
        r.total = self.total.map(|t| {
            t.saturating_sub(self.agg_sum.unwrap_or(0))
                .saturating_add(sum)
        });
        (r.agg_sum, r.agg_largest, r.agg_second) = (Some(sum), largest, second);
        if ratio {
            let (sum, largest, second, _) = top(kept(&denominators));
            r.denominator = self.denominator.map(|t| {
                t.saturating_sub(self.agg_den_sum.unwrap_or(0))
                    .saturating_add(sum)
            });
            (r.agg_den_sum, r.agg_den_largest, r.agg_den_second) = (Some(sum), largest, second);
        }
        r.contributors = self.contributors - (self.aggregate_only - n);
        // Which of the dropped contributors were derived is not kept: at most all that remain.
        r.derived = self.derived.min(r.contributors);
        r.aggregate_only = n;
        r.agg_members = self.agg_members.as_deref().map(|list| {
            list.split(',')
                .filter(|item| {
                    item.split(':')
                        .next()
                        .and_then(|i| i.trim().parse::<i64>().ok())
                        .is_some_and(|i| keep.binary_search(&i).is_ok())
                })
                .collect::<Vec<_>>()
                .join(",")
        });
        Ok(r)
    }
}

/// Who sees each of `cell`'s aggregate-only contributors in detail (institution to networks),
/// for the differencing guard's view of each network; empty when it keeps no row.
pub fn knowers(cell: &Cell) -> ApiResult<BTreeMap<i64, Vec<i64>>> {
    let Some(row) = &cell.source else {
        return Ok(BTreeMap::new());
    };
    let (contributions, _) = row.contributions(row.kind()? == Kind::Ratio)?;
    Ok(contributions
        .into_iter()
        .map(|c| (c.institution, c.known_by))
        .collect())
}

/// `cell` recomputed over `keep` (ascending), a subset of its aggregate-only contributors
/// already released: what [`super::release`] shows in place of a cell the differencing guard
/// would withhold. `None` when the cell keeps no row to recompute from.
pub fn over_subset(s: &Spec, key: &NoiseKey, cell: &Cell, keep: &[i64]) -> ApiResult<Option<Cell>> {
    let Some(row) = &cell.source else {
        return Ok(None);
    };
    let r = row.restricted_to(keep)?;
    let mut c = match r.kind()? {
        Kind::Ratio => ratio_cell(s, key, r)?,
        _ => sum_cell(s, key, r)?,
    };
    c.eligible = cell.eligible;
    c.eligible_aggregate_only = cell.eligible_aggregate_only;
    Ok(Some(c))
}

/// The institutions of `contributions`, ascending, once each.
fn institutions(contributions: &[Contribution]) -> Vec<i64> {
    let mut ids: Vec<i64> = contributions.iter().map(|c| c.institution).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// How many aggregate statements (`impact`, `spendAnalysis`) may run at once: half the
/// database pool, so that however many are asked for, every other request still finds a
/// connection (a red team's 24 concurrent analyses over a million categories took every
/// connection for four minutes); and at most [`PER_AUDIENCE`] for one audience of token
/// holders (a network's admins and submitters, a region's analysts, an organisation's
/// researchers), so that one network minting tokens cannot take all of them (the next red
/// team did). An audience's further questions wait, up to [`AUDIENCE_QUEUE`] in all (a
/// dashboard asks several at once); past that they are refused. Anonymous callers are held back by their address's rate limit instead. A
/// statement keeps its slots until it has ended, even when the request that asked for it has
/// gone: SQLite does not stop a statement when its request does.
#[derive(Clone)]
pub struct Slots {
    all: std::sync::Arc<tokio::sync::Semaphore>,
    audiences: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, AudienceSlots>>>,
}

/// One audience's questions: admitted (running or waiting) and running.
#[derive(Clone)]
struct AudienceSlots {
    admitted: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Aggregate statements one audience of token holders may have running at once.
pub const PER_AUDIENCE: usize = 2;
/// Aggregate questions one audience may have running or waiting.
pub const AUDIENCE_QUEUE: usize = 8;

/// The slots an audience's question holds while it runs.
type Held = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

impl Slots {
    pub fn for_pool(connections: u32) -> Self {
        let n = usize::try_from(connections / 2).unwrap_or(1).max(1);
        Self {
            all: std::sync::Arc::new(tokio::sync::Semaphore::new(n)),
            audiences: std::sync::Arc::default(),
        }
    }

    /// The caller's audience's own slot, if it is a token holder's: waits while its audience
    /// has [`PER_AUDIENCE`] running, refused at once when [`AUDIENCE_QUEUE`] are running or
    /// waiting.
    async fn audience_slot(&self, caller: &Caller) -> ApiResult<Option<Held>> {
        if caller.principal().is_none() {
            return Ok(None);
        }
        let audience = disclosure::Audience::of(caller).stored();
        let slots = {
            let mut map = self
                .audiences
                .lock()
                .map_err(|_| ApiError::Internal(anyhow::anyhow!("aggregate slots poisoned")))?;
            map.entry(audience)
                .or_insert_with(|| AudienceSlots {
                    admitted: std::sync::Arc::new(tokio::sync::Semaphore::new(AUDIENCE_QUEUE)),
                    running: std::sync::Arc::new(tokio::sync::Semaphore::new(PER_AUDIENCE)),
                })
                .clone()
        };
        let admitted = slots.admitted.try_acquire_owned().map_err(|_| {
            ApiError::Conflict(format!(
                "{AUDIENCE_QUEUE} aggregate questions from your network, region or organisation \
                 are already running or waiting: ask again when one has been answered"
            ))
        })?;
        let running = slots
            .running
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("aggregate slots closed: {e}")))?;
        Ok(Some((admitted, running)))
    }

    /// [`run`] in one of the slots, waiting for one while all are taken.
    pub async fn run(
        &self,
        db: &sea_orm::DatabaseConnection,
        caller: &Caller,
        s: &Spec,
        key: &NoiseKey,
    ) -> ApiResult<Report> {
        let own = self.audience_slot(caller).await?;
        let permit = self
            .all
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("aggregate slots closed: {e}")))?;
        let (db, caller, s, key) = (db.clone(), caller.clone(), s.clone(), key.clone());
        tokio::spawn(async move {
            let _slots = (permit, own);
            run(&db, &caller, &s, &key).await
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("an aggregate statement's task: {e}")))?
    }
}

/// Runs the impact aggregation for `caller`: one statement, whose common table expressions
/// are evaluated once and feed every part of the answer.
pub async fn run<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    s: &Spec,
    key: &NoiseKey,
) -> ApiResult<Report> {
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
    let backend = db.get_database_backend();
    if let Some(cap) = s.lines.as_ref().and_then(|l| l.max_places)
        && let Some(count) = statement::cell_places(backend, caller, s, &value_metrics, cap)?
    {
        let n = Count::find_by_statement(count.statement(backend))
            .one(db)
            .await
            .map_err(overflow)?
            .map_or(0, |c| c.n);
        if usize::try_from(n).unwrap_or(usize::MAX) > cap {
            return Err(too_many_cells());
        }
    }
    let statement = statement::build(backend, caller, s, &sums, &value_metrics)?;
    let rows = Row::find_by_statement(statement.statement(backend))
        .all(db)
        .await
        .map_err(overflow)?;
    report(s, key, rows)
}

/// The cells, withheld and touched networks from the statement's rows.
fn report(s: &Spec, key: &NoiseKey, rows: Vec<Row>) -> ApiResult<Report> {
    // Per cell: eligible institutions, and those of them seen only in aggregate.
    let mut eligible: BTreeMap<(String, Key), (i64, i64)> = BTreeMap::new();
    let mut withheld = vec![];
    let mut touched = vec![];
    let mut values = vec![];
    for r in rows {
        match r.kind()? {
            Kind::Eligible => {
                eligible.insert(
                    (r.metric.clone(), r.key()),
                    (r.contributors, r.aggregate_only),
                );
            }
            Kind::Withheld => withheld.push(r.network),
            Kind::Touched => touched.push(r.network),
            Kind::Sum | Kind::Ratio => values.push(r),
        }
    }
    let eligible_for = |metric: &str, key: &Key| -> (i64, i64) {
        let m = if s.panel { metric } else { "" };
        eligible
            .get(&(m.to_owned(), key.clone()))
            .copied()
            .unwrap_or((0, 0))
    };
    let mut cells = vec![];
    for r in values {
        let (ratio, mut cell) = match r.kind()? {
            Kind::Ratio => (true, ratio_cell(s, key, r)?),
            _ => (false, sum_cell(s, key, r)?),
        };
        // A ratio's panel is the institutions in both its parts' panels: its contributors.
        let (n, aggregate_only) = eligible_for(&cell.metric, &cell.key);
        cell.eligible_aggregate_only = aggregate_only;
        if !(ratio && s.panel) {
            cell.eligible = n;
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

/// Where a cell sits, for its noise: the networks it covers (one when grouped by network,
/// else the request's), its sector and district.
fn coordinates(s: &Spec, key: &Key) -> String {
    let networks = if key.network != 0 {
        key.network.to_string()
    } else {
        let mut ids = s.networks.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    };
    format!(
        "networks:{networks}|sector:{}|district:{}",
        key.sector, key.district
    )
}

/// The contributions as the sensitivity rules see them (each perturbed by its own keyed
/// factor), with their sum and two largest.
fn for_rules(
    key: &NoiseKey,
    place: disclosure::Place<'_>,
    contributions: &[Contribution],
) -> (Vec<Contribution>, disclosure::Side) {
    let perturbed: Vec<Contribution> = contributions
        .iter()
        .map(|c| Contribution {
            value: key.perturbed(place, c.institution, c.value),
            ..c.clone()
        })
        .collect();
    let mut values: Vec<i64> = perturbed.iter().map(|c| c.value).collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    let side = disclosure::Side {
        sum: values.iter().fold(0i64, |a, v| a.saturating_add(*v)),
        largest: values.first().copied().unwrap_or(0),
        second: values.get(1).copied().unwrap_or(0),
    };
    (perturbed, side)
}

/// A sum cell, through disclosure control.
fn sum_cell(s: &Spec, key: &NoiseKey, r: Row) -> ApiResult<Cell> {
    let source = r.clone();
    let class = match s.metrics.iter().find(|m| m.code == r.metric) {
        Some(m) if m.disclosure == DisclosureClass::PeopleCount => disclosure::Class::PeopleCount,
        _ => disclosure::Class::Magnitude,
    };
    let (contributions, _) = r.contributions(false)?;
    let thresholds = r.thresholds();
    let coordinates = coordinates(s, &r.key());
    let members = institutions(&contributions);
    let place = disclosure::Place {
        metric: &r.metric,
        breakdown: &r.breakdown,
        period: &r.period,
        coordinates: &coordinates,
        members: &members,
    };
    let (perturbed, rule_side) = for_rules(key, place, &contributions);
    let raw = side(r.agg_sum, r.agg_largest, r.agg_second);
    let outcome = match r.total {
        Some(_) if !disclosure::each_steward_faces_enough(&contributions, thresholds) => {
            disclosure::Outcome::Suppressed(disclosure::Reason::Protected)
        }
        Some(total) => match disclosure::sum_cell(
            key,
            place,
            class,
            total,
            r.aggregate_only,
            raw,
            disclosure::RuleView {
                total: total.saturating_sub(raw.sum).saturating_add(rule_side.sum),
                side: rule_side,
                independent: disclosure::fewest_unknown(&contributions),
            },
            thresholds,
        ) {
            disclosure::Outcome::Adjusted(v)
                if !disclosure::each_steward_faces_even(&perturbed, class, thresholds) =>
            {
                disclosure::Outcome::Uneven(v)
            }
            o => o,
        },
        None => disclosure::Outcome::Exact,
    };
    let pending = |even, v| {
        Some(Pending {
            even,
            value: Value2::Sum(v),
            place: coordinates.clone(),
        })
    };
    let (value, suppressed, pending) = match outcome {
        disclosure::Outcome::Exact => (r.total.map(Value2::Sum), None, None),
        disclosure::Outcome::Adjusted(v) => (Some(Value2::Sum(v)), None, pending(true, v)),
        disclosure::Outcome::Uneven(v) => {
            (None, Some(disclosure::Reason::Protected), pending(false, v))
        }
        disclosure::Outcome::Suppressed(why) => (None, Some(why), None),
    };
    Ok(Cell {
        key: r.key(),
        breakdown: Some(r.breakdown.clone()).filter(|b| !b.is_empty()),
        value,
        suppressed,
        contributors: r.contributors,
        derived: r.derived,
        aggregate_only: r.aggregate_only,
        eligible: 0,
        eligible_aggregate_only: 0,
        members,
        thresholds,
        source: pending.is_some().then(|| Box::new(source)),
        pending,
        metric: r.metric,
    })
}

/// A ratio cell, through disclosure control: the ratio of its two protected parts, each
/// noised as its own metric's sum cell at the same place would be. `eligible` is its
/// contributors' panel.
fn ratio_cell(s: &Spec, key: &NoiseKey, r: Row) -> ApiResult<Cell> {
    let source = r.clone();
    let (numerators, denominators) = r.contributions(true)?;
    let thresholds = r.thresholds();
    let coordinates = coordinates(s, &r.key());
    let members = institutions(&numerators);
    let place = disclosure::Place {
        metric: &r.metric,
        breakdown: &r.breakdown,
        period: &r.period,
        coordinates: &coordinates,
        members: &members,
    };
    let magnitude = disclosure::Class::Magnitude;
    let (value, suppressed, pending) = match (r.total, r.denominator, s.ratio_parts.get(&r.metric))
    {
        (Some(n), Some(d), Some((num, den))) => {
            let (num_perturbed, num_rule) = for_rules(
                key,
                disclosure::Place {
                    metric: num,
                    ..place
                },
                &numerators,
            );
            let (den_perturbed, den_rule) = for_rules(
                key,
                disclosure::Place {
                    metric: den,
                    ..place
                },
                &denominators,
            );
            let enough = disclosure::each_steward_faces_enough(&numerators, thresholds)
                && disclosure::each_steward_faces_enough(&denominators, thresholds);
            let even = disclosure::each_steward_faces_even(&num_perturbed, magnitude, thresholds)
                && disclosure::each_steward_faces_even(&den_perturbed, magnitude, thresholds);
            let outcome = if enough {
                disclosure::ratio_cell(
                    key,
                    place,
                    r.aggregate_only,
                    disclosure::fewest_unknown(&numerators),
                    disclosure::RatioSide {
                        metric: num,
                        total: n,
                        side: side(r.agg_sum, r.agg_largest, r.agg_second),
                        rule: num_rule,
                    },
                    disclosure::RatioSide {
                        metric: den,
                        total: d,
                        side: side(r.agg_den_sum, r.agg_den_largest, r.agg_den_second),
                        rule: den_rule,
                    },
                    thresholds,
                )
            } else {
                Err(disclosure::Reason::Protected)
            };
            match outcome {
                Ok(parts) if r.aggregate_only == 0 => (
                    Some(Value2::Ratio(
                        i128::from(parts.numerator),
                        i128::from(parts.denominator),
                    )),
                    None,
                    None,
                ),
                Ok(parts) => {
                    let v =
                        Value2::Ratio(i128::from(parts.numerator), i128::from(parts.denominator));
                    let pending = Pending {
                        even: parts.even && even,
                        value: v.clone(),
                        place: coordinates.clone(),
                    };
                    if pending.even {
                        (Some(v), None, Some(pending))
                    } else {
                        (None, Some(disclosure::Reason::Protected), Some(pending))
                    }
                }
                Err(why) => (None, Some(why), None),
            }
        }
        _ => (None, None, None),
    };
    Ok(Cell {
        key: r.key(),
        breakdown: Some(r.breakdown.clone()).filter(|b| !b.is_empty()),
        value,
        suppressed,
        contributors: r.contributors,
        derived: r.derived,
        aggregate_only: r.aggregate_only,
        eligible: r.contributors,
        eligible_aggregate_only: 0,
        members,
        thresholds,
        source: pending.is_some().then(|| Box::new(source)),
        pending,
        metric: r.metric,
    })
}

/// Cells with eligible institutions but no contributors still answer: nothing seen.
fn answer_empty_cells(
    s: &Spec,
    eligible: &BTreeMap<(String, Key), (i64, i64)>,
    cells: &mut Vec<Cell>,
) {
    let answered: std::collections::BTreeSet<(String, Key)> = cells
        .iter()
        .map(|c| (c.metric.clone(), c.key.clone()))
        .collect();
    for m in s.metrics.iter().map(|m| &m.code) {
        for ((em, key), (n, aggregate_only)) in eligible {
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
                    derived: 0,
                    aggregate_only: 0,
                    eligible: *n,
                    eligible_aggregate_only: *aggregate_only,
                    members: vec![],
                    thresholds: disclosure::DEFAULT,
                    pending: None,
                    source: None,
                });
            }
        }
    }
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

/// The most cells one spend analysis answer may hold.
pub const MAX_CELLS: usize = 5000;

/// The refusal of an answer over [`MAX_CELLS`]. It does not say how many: the count would take
/// in cells the reader is not shown (withheld ones split by a line's district, size or
/// category are left out of answers).
pub fn too_many_cells() -> ApiError {
    ApiError::bad_input(
        "input.groupBy",
        format!(
            "the answer would hold more than the {MAX_CELLS} cells one answer may: group by \
             fewer dimensions, or ask for fewer years or measures"
        ),
    )
}

fn overflow(e: sea_orm::DbErr) -> ApiError {
    let text = e.to_string();
    if text.contains("overflow") || text.contains("out of range") {
        ApiError::Conflict("a total is larger than 64 bits can hold".into())
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn aggregates_take_at_most_half_the_pool() {
        assert_eq!(Slots::for_pool(16).all.available_permits(), 8);
        assert_eq!(Slots::for_pool(3).all.available_permits(), 1);
        assert_eq!(Slots::for_pool(1).all.available_permits(), 1, "never none");
    }

    #[tokio::test]
    async fn one_audience_holds_at_most_its_share() {
        use crate::auth::Caller;
        use crate::domain::Role;
        use crate::policy::tests::principal;
        let slots = Slots::for_pool(16);
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        let mut held = vec![];
        for _ in 0..super::PER_AUDIENCE {
            held.push(slots.audience_slot(&admin).await.unwrap());
        }
        // The next waits while two run; once eight are running or waiting, more are refused.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            slots.audience_slot(&admin),
        )
        .await;
        assert!(waiting.is_err(), "a third waits");
        let queue = slots.audiences.lock().unwrap()["network:1"]
            .admitted
            .clone();
        let free = u32::try_from(queue.available_permits()).unwrap();
        let full = queue.acquire_many_owned(free).await.unwrap();
        assert!(matches!(
            slots.audience_slot(&admin).await,
            Err(crate::error::ApiError::Conflict(_))
        ));
        // Another network's admin, and anonymous callers, are not held back by it.
        let other = principal(Role::NetworkAdmin, Some(2), "");
        assert!(slots.audience_slot(&other).await.unwrap().is_some());
        assert!(
            slots
                .audience_slot(&Caller::Anonymous)
                .await
                .unwrap()
                .is_none()
        );
        drop(held);
        drop(full);
        assert!(
            slots.audience_slot(&admin).await.unwrap().is_some(),
            "free again"
        );
    }
}
