//! `impact`: regional aggregates with eligibility, coverage and withheld networks.

use std::collections::BTreeMap;

use anyhow::Context as _;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{equivalences, metrics, networks};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::catalogue::Metric;
use super::cells;
use super::context::{caller, db, id_or_key, loaders, log_read, noise_key};
use super::enums::SectorGql;
use super::loaders::{GeoCode, NetworkId};
use super::objects::{District, Network};
use super::scalars::{Decimal, FinancialYear, GssCode};
use crate::analytics::impact::{self, Cell, Value2};
use crate::analytics::release;
use crate::catalogue;
use crate::directory;
use crate::domain::{self, MetricGroup, quantity};
use crate::error::ApiError;
use crate::policy;

/// The most networks one request may name: every network of a national federation, with room.
const MAX_NETWORKS: usize = 1000;

/// What cells are grouped by; each cell is always one period.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Dimension {
    Network,
    Sector,
    /// The institution's home district.
    District,
    /// Accepted for clarity: years are never summed, so every cell is one year anyway.
    Year,
}

#[derive(InputObject)]
pub struct ImpactInput {
    /// Every network of this combined authority.
    region: Option<GssCode>,
    /// These networks (ids or keys); with `region`, they must belong to it.
    network_ids: Option<Vec<ID>>,
    years: Vec<FinancialYear>,
    /// Metric codes, such as `procurement_spend_total` or `local_spend_share`.
    metrics: Vec<String>,
    group_by: Option<Vec<Dimension>>,
    /// Read the returns as they stood at this instant.
    as_of: Option<DateTime<Utc>>,
    /// Keep only institutions that reported the metric in every requested year.
    panel: Option<bool>,
}

/// A way to picture a total.
#[derive(SimpleObject)]
pub struct Equivalence {
    name: String,
    value: Decimal,
    unit: String,
    /// How much of the metric's unit one `unit` is (0.714 hectares a football pitch).
    factor: Decimal,
}

pub struct ImpactCell {
    cell: Cell,
    metric: catalogue::Metric,
    /// The cell's value as a share of its breakdown kind's total (breakdown cells only).
    share: Option<f64>,
    equivalences: Vec<Equivalence>,
}

#[Object]
impl ImpactCell {
    async fn metric(&self) -> Metric {
        Metric(std::sync::Arc::new(self.metric.clone()))
    }
    async fn year(&self) -> Result<FinancialYear> {
        cells::year(&self.cell)
    }
    /// With `groupBy: NETWORK`.
    async fn network(&self, ctx: &Context<'_>) -> Result<Option<Network>> {
        cells::network(ctx, &self.cell).await
    }
    /// With `groupBy: SECTOR`.
    async fn sector(&self) -> Result<Option<SectorGql>> {
        cells::sector(&self.cell)
    }
    /// With `groupBy: DISTRICT`: the institutions' home district.
    async fn district(&self, ctx: &Context<'_>) -> Result<Option<District>> {
        if self.cell.key.district.is_empty() {
            return Ok(None);
        }
        Ok(loaders(ctx)?
            .load_one(GeoCode(self.cell.key.district.clone()))
            .await?
            .map(District))
    }
    /// For breakdown metrics: `district:CODE`, `imd_decile:N`, or `imd_decile:1-2` for the two
    /// most deprived deciles together.
    async fn breakdown(&self) -> Option<&str> {
        self.cell.breakdown.as_deref()
    }
    /// The total over the contributors (a ratio of sums for ratio metrics); null when none.
    async fn value(&self) -> Option<Decimal> {
        cells::value(&self.cell, self.metric.scale)
    }
    /// For breakdown cells: the value over its breakdown kind's total in the same cell.
    async fn share(&self) -> Option<f64> {
        self.share
    }
    /// Withheld by disclosure control (the reader sees some contributors only in aggregate).
    async fn suppressed(&self) -> bool {
        self.cell.suppressed.is_some()
    }
    /// Why the value was withheld.
    async fn suppression_reason(&self) -> Option<&str> {
        self.cell.suppressed.map(|r| r.message())
    }
    /// Eligible institutions with a reported value this reader may count.
    async fn contributors(&self) -> i32 {
        cells::count(self.cell.contributors)
    }
    /// Contributors whose value here was derived from their spend lines (imported, not typed;
    /// for a ratio, either part): rounded as `contributors` is when disclosure control applies.
    async fn derived_contributors(&self) -> i32 {
        cells::count(self.cell.derived)
    }
    /// Institutions that were members of the networks in scope on the period's last day,
    /// each once.
    async fn eligible(&self) -> i32 {
        cells::count(self.cell.eligible)
    }
    /// contributors / eligible; null when nothing is eligible.
    async fn coverage(&self) -> Option<f64> {
        cells::coverage(&self.cell)
    }
    async fn equivalences(&self) -> &[Equivalence] {
        &self.equivalences
    }
}

#[derive(SimpleObject)]
pub struct ImpactReport {
    cells: Vec<ImpactCell>,
    /// Steward networks of eligible institutions that gave this reader nothing: their
    /// institutions count as eligible, never as contributors.
    withheld_networks: Vec<Network>,
}

#[derive(Default)]
pub struct ImpactQuery;

#[Object]
impl ImpactQuery {
    /// Aggregates across networks: each institution counted once per cell, every cell saying
    /// how much of the eligible institutions it covers.
    #[graphql(
        complexity = "super::cost::impact(input.years.len(), input.metrics.len(), input.network_ids.as_ref().map(Vec::len), input.group_by.as_deref().unwrap_or_default(), child_complexity)"
    )]
    async fn impact(&self, ctx: &Context<'_>, input: ImpactInput) -> Result<ImpactReport> {
        let db = db(ctx)?;
        let caller = caller(ctx);
        let years = years_of(&input.years)?;
        let metrics = catalogue::metrics(db).await?;
        let asked_metrics = metrics_of(&input, &metrics)?;
        let in_scope =
            networks_in_scope(db, input.region.as_ref(), input.network_ids.as_deref()).await?;
        let asked: Vec<i64> = in_scope.iter().map(|n| n.id).collect();
        if let Err(e) = policy::returns::may_read_impact(caller, &years, &asked_metrics.groups) {
            log_read(ctx, "impact", asked, true).await;
            return Err(e.into());
        }
        let whole = in_scope.len();
        let networks = policy::returns::scoped_networks(
            caller,
            in_scope.into_iter().map(|n| (n.id, n.key)).collect(),
        );
        let now = Utc::now();
        let release_rules = release::Asked {
            published_scope: networks.len() == 1
                || (input.network_ids.is_none() && networks.len() == whole),
            past_as_of: input.as_of.is_some_and(|t| t < now),
        };
        let dims = input.group_by.unwrap_or_default();
        let spec = impact::Spec {
            networks,
            years,
            metrics: asked_metrics.wanted,
            ratio_parts: asked_metrics.ratio_parts,
            by_network: dims.contains(&Dimension::Network),
            by_sector: dims.contains(&Dimension::Sector),
            by_district: dims.contains(&Dimension::District),
            as_of: domain::AsOf::given(input.as_of, now),
            panel: input.panel.unwrap_or(false),
            lines: None,
        };
        if spec.networks.is_empty() {
            return Ok(ImpactReport {
                cells: vec![],
                withheld_networks: vec![],
            });
        }
        let mut report = match ctx
            .data::<impact::Slots>()?
            .run(db, caller, &spec, noise_key(ctx)?)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, ApiError::Forbidden { .. }) {
                    log_read(ctx, "impact", asked, true).await;
                }
                return Err(e.into());
            }
        };
        release::release(
            db,
            caller,
            &spec,
            noise_key(ctx)?,
            release_rules,
            &mut report.cells,
        )
        .await?;
        log_read(ctx, "impact", report.touched.clone(), false).await;
        let cells = shape_cells(db, &metrics, report.cells).await?;
        let mut withheld: Vec<Network> = loaders(ctx)?
            .load_many(report.withheld.into_iter().map(NetworkId))
            .await?
            .into_values()
            .map(Network)
            .collect();
        withheld.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(ImpactReport {
            cells,
            withheld_networks: withheld,
        })
    }
}

/// The years asked for, checked, sorted and once each.
pub(super) fn years_of(asked: &[FinancialYear]) -> Result<Vec<domain::FinancialYear>, ApiError> {
    if asked.is_empty() || asked.len() > 20 {
        return Err(ApiError::bad_input("input.years", "give 1 to 20 years"));
    }
    let mut years: Vec<domain::FinancialYear> = asked.iter().map(|y| y.0).collect();
    years.sort();
    years.dedup();
    Ok(years)
}

/// The metrics asked for, resolved against the catalogue.
struct AskedMetrics {
    wanted: Vec<metrics::Model>,
    /// Each ratio's numerator and denominator.
    ratio_parts: BTreeMap<String, (String, String)>,
    groups: Vec<MetricGroup>,
}

fn metrics_of(
    input: &ImpactInput,
    metrics: &BTreeMap<String, catalogue::Metric>,
) -> Result<AskedMetrics, ApiError> {
    if input.metrics.is_empty() || input.metrics.len() > 20 {
        return Err(ApiError::bad_input(
            "input.metrics",
            "give 1 to 20 metric codes",
        ));
    }
    let mut asked = AskedMetrics {
        wanted: vec![],
        ratio_parts: BTreeMap::new(),
        groups: vec![],
    };
    for (i, code) in input.metrics.iter().enumerate() {
        let m = metrics.get(code.trim()).ok_or_else(|| {
            ApiError::bad_input(
                format!("input.metrics[{i}]"),
                format!("`{code}` is not a metric code"),
            )
        })?;
        if m.aggregation == catalogue::Aggregation::None {
            return Err(ApiError::bad_input(
                format!("input.metrics[{i}]"),
                format!("{code} does not aggregate"),
            ));
        }
        if let catalogue::Aggregation::Ratio {
            numerator,
            denominator,
        } = &m.aggregation
        {
            asked
                .ratio_parts
                .insert(m.code.clone(), (numerator.clone(), denominator.clone()));
        }
        asked.groups.push(m.group);
        if !asked.wanted.iter().any(|w| w.code == m.code) {
            asked.wanted.push(m.stored().clone());
        }
    }
    Ok(asked)
}

/// The networks in scope: the region's, or those named (within the region if given), once
/// each, by id.
pub(super) async fn networks_in_scope(
    db: &DatabaseConnection,
    region: Option<&GssCode>,
    network_ids: Option<&[ID]>,
) -> Result<Vec<networks::Model>, ApiError> {
    let region = match region {
        Some(code) => Some(
            directory::region_by_code(db, &code.0)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("input.region: region {}", code.0)))?,
        ),
        None => None,
    };
    let mut in_scope: Vec<networks::Model> = match (network_ids, &region) {
        (Some(ids), _) => {
            if ids.len() > MAX_NETWORKS {
                return Err(ApiError::bad_input(
                    "input.networkIds",
                    format!("give at most {MAX_NETWORKS} networks"),
                ));
            }
            let parsed = ids
                .iter()
                .enumerate()
                .map(|(i, id)| id_or_key(&format!("input.networkIds[{i}]"), id))
                .collect::<Result<Vec<_>, _>>()?;
            directory::require_networks(db, "input.networkIds", &parsed).await?
        }
        (None, Some(r)) => networks::Entity::find()
            .filter(networks::Column::RegionId.eq(r.id))
            .all(db)
            .await
            .context("Failed to read the region's networks")?,
        (None, None) => return Err(ApiError::bad_input("input", "give a region or networkIds")),
    };
    if let Some(r) = &region
        && let Some(n) = in_scope.iter().find(|n| n.region_id != r.id)
    {
        return Err(ApiError::bad_input(
            "input.networkIds",
            format!("{} is not in region {}", n.key, r.code),
        ));
    }
    in_scope.sort_by_key(|n| n.id);
    in_scope.dedup_by_key(|n| n.id);
    Ok(in_scope)
}

/// Each cell as the API shows it: with its metric, its share of its breakdown kind's total
/// in the same cell, and its equivalences.
async fn shape_cells(
    db: &DatabaseConnection,
    metrics: &BTreeMap<String, catalogue::Metric>,
    cells: Vec<impact::Cell>,
) -> Result<Vec<ImpactCell>, ApiError> {
    let eq = equivalences::Entity::find()
        .all(db)
        .await
        .context("Failed to read the equivalences")?;
    let kind_totals = breakdown_totals(&cells);
    let mut out = vec![];
    for c in cells {
        let Some(metric) = metrics.get(&c.metric).cloned() else {
            continue;
        };
        let share = match (&c.breakdown, &c.value) {
            (Some(b), Some(Value2::Sum(v))) => {
                let kind = b.split(':').next().unwrap_or("").to_owned();
                kind_totals
                    .get(&(c.metric.clone(), c.key.clone(), kind))
                    .filter(|t| **t > 0)
                    .map(|t| *v as f64 / *t as f64)
            }
            _ => None,
        };
        let equivalences = match (&c.value, c.breakdown.is_none()) {
            (Some(Value2::Sum(v)), true) => eq
                .iter()
                .filter(|e| e.metric_code == metric.code)
                .filter_map(|e| {
                    quantity::divide(*v, metric.scale, &e.factor, 1).map(|value| Equivalence {
                        name: e.name.clone(),
                        value: Decimal(value),
                        unit: e.unit.clone(),
                        factor: Decimal(e.factor.clone()),
                    })
                })
                .collect(),
            _ => vec![],
        };
        out.push(ImpactCell {
            cell: c,
            metric,
            share,
            equivalences,
        });
    }
    Ok(out)
}

/// Each breakdown kind's total in each cell, for shares (the combined 1-2 decile cell is
/// left out of the total it is measured against).
fn breakdown_totals(cells: &[impact::Cell]) -> BTreeMap<(String, impact::Key, String), i128> {
    let mut totals: BTreeMap<(String, impact::Key, String), i128> = BTreeMap::new();
    for c in cells {
        if let (Some(b), Some(Value2::Sum(v))) = (&c.breakdown, &c.value) {
            if b.contains('-') {
                continue;
            }
            let kind = b.split(':').next().unwrap_or("").to_owned();
            *totals
                .entry((c.metric.clone(), c.key.clone(), kind))
                .or_default() += i128::from(*v);
        }
    }
    totals
}
