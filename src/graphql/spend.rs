//! `spendAnalysis`: the guide's local-spend analysis from spend lines, as cells shaped like
//! `impact`'s and computed by the same statement, policy, disclosure control and release rules
//! ([`crate::analytics::spend`]).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::Utc;

use super::cells;
use super::context::{caller, db, id_or_key, internal, loaders, log_read, noise_key};
use super::enums::SectorGql;
use super::impact::{networks_in_scope, years_of};
use super::loaders::{GeoCode, NetworkId};
use super::objects::{District, Network};
use super::scalars::{Decimal, FinancialYear, GssCode};
use crate::analytics::impact::{self, Cell};
use crate::analytics::release;
use crate::analytics::spend::{self as analysis, Bucket, Lines, Measure};
use crate::directory;
use crate::domain::{self, MetricGroup};
use crate::error::ApiError;
use crate::policy;

/// The most districts a chosen geography may name.
const MAX_DISTRICTS: usize = 500;
pub use crate::analytics::impact::MAX_CELLS;

/// What spend cells are grouped by, beyond the year.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SpendDimension {
    /// The supplier's district (from its postcode, or the district given); `null` in a cell
    /// for lines whose place is unknown.
    SupplierDistrict,
    /// Sole trader, SME or large, from the lines' flags.
    Size,
    /// The category as each line gives it; `null` in a cell for lines that give none.
    Category,
    /// The buying institution's sector.
    InstitutionSector,
    Network,
}

/// A figure of the analysis.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::analytics::spend::Measure")]
pub enum SpendMeasure {
    /// Every line's amount, in pounds, place unknown included.
    Total,
    /// Spend with suppliers whose district is in the chosen geography.
    InGeography,
    /// `IN_GEOGRAPHY` over `TOTAL`, from 0 to 1.
    ShareInGeography,
    /// Spend with suppliers flagged SME (sole traders too, when so flagged).
    Sme,
    /// Spend with voluntary, community and social enterprise suppliers.
    Vcse,
    /// Spend with other anchor institutions.
    Anchor,
    /// Each institution's distinct suppliers, summed over institutions: a supplier of two
    /// anchors counts twice.
    Suppliers,
    /// Spend with suppliers whose place is unknown (a postcode the lookup does not know, or
    /// neither postcode nor district): counted, never guessed.
    PlaceUnknown,
}

/// A supplier's size, from the line's flags.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::analytics::spend::Size")]
pub enum SupplierSize {
    SoleTrader,
    /// Flagged SME, not a sole trader.
    Sme,
    /// Neither.
    Large,
}

/// Where "in the geography" is: exactly one of the three.
#[derive(InputObject)]
pub struct SpendGeographyInput {
    /// These districts. With contributors you see only in aggregate, spend in the
    /// geography is published for one district, not a chosen set.
    districts: Option<Vec<GssCode>>,
    /// This network's area (its districts).
    network: Option<ID>,
    /// This combined authority's districts.
    region: Option<GssCode>,
}

#[derive(InputObject)]
pub struct SpendAnalysisInput {
    /// Every network of this combined authority.
    region: Option<GssCode>,
    /// These networks (ids or keys); with `region`, they must belong to it.
    network_ids: Option<Vec<ID>>,
    years: Vec<FinancialYear>,
    /// Default: the request's region (given, or the one every network named belongs to).
    geography: Option<SpendGeographyInput>,
    group_by: Option<Vec<SpendDimension>>,
    /// Default: every measure.
    measures: Option<Vec<SpendMeasure>>,
}

pub struct SpendCell {
    cell: Cell,
    measure: Measure,
    bucket: Bucket,
}

#[Object]
impl SpendCell {
    async fn measure(&self) -> SpendMeasure {
        self.measure.into()
    }
    async fn year(&self) -> Result<FinancialYear> {
        cells::year(&self.cell)
    }
    /// With `groupBy: NETWORK`.
    async fn network(&self, ctx: &Context<'_>) -> Result<Option<Network>> {
        cells::network(ctx, &self.cell).await
    }
    /// With `groupBy: INSTITUTION_SECTOR`: the buying institutions' sector.
    async fn sector(&self) -> Result<Option<SectorGql>> {
        cells::sector(&self.cell)
    }
    /// With `groupBy: SUPPLIER_DISTRICT`: the suppliers' district; `null` for lines whose
    /// place is unknown (`supplierPlaceKnown` false).
    async fn supplier_district(&self, ctx: &Context<'_>) -> Result<Option<District>> {
        let Some(Some(code)) = &self.bucket.supplier_district else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(GeoCode(code.clone()))
            .await?
            .map(District))
    }
    /// With `groupBy: SUPPLIER_DISTRICT`: whether the suppliers' place is known.
    async fn supplier_place_known(&self) -> Option<bool> {
        self.bucket.supplier_district.as_ref().map(Option::is_some)
    }
    /// With `groupBy: SIZE`.
    async fn size(&self) -> Option<SupplierSize> {
        self.bucket.size.map(Into::into)
    }
    /// With `groupBy: CATEGORY`: the category as the lines give it; `null` for lines that
    /// give none.
    async fn category(&self) -> Option<&str> {
        self.bucket.category.as_deref().filter(|c| !c.is_empty())
    }
    /// Pounds, a number of suppliers, or a share from 0 to 1; null when nothing contributes
    /// or disclosure control withheld it.
    async fn value(&self) -> Option<Decimal> {
        cells::value(&self.cell, self.measure.scale())
    }
    /// Withheld by disclosure control (the reader sees some contributors only in aggregate).
    async fn suppressed(&self) -> bool {
        self.cell.suppressed.is_some()
    }
    /// Why the value was withheld.
    async fn suppression_reason(&self) -> Option<&str> {
        self.cell.suppressed.map(|r| r.message())
    }
    /// Eligible institutions with spend lines this reader may count.
    async fn contributors(&self) -> i32 {
        cells::count(self.cell.contributors)
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
}

#[derive(SimpleObject)]
pub struct SpendAnalysis {
    cells: Vec<SpendCell>,
    /// Steward networks of eligible institutions that gave this reader nothing: their
    /// institutions count as eligible, never as contributors.
    withheld_networks: Vec<Network>,
    /// The districts "in the geography" means, in code order.
    geography: Vec<District>,
}

#[derive(Default)]
pub struct SpendQuery;

#[Object]
impl SpendQuery {
    /// Spend lines analysed across networks: each institution counted once per cell, every
    /// cell saying how much of the eligible institutions it covers, under the same rules and
    /// disclosure control as `impact`. Nobody reads another institution's lines one by one.
    #[graphql(
        complexity = "super::cost::spend_analysis(input.years.len(), input.measures.as_ref().map_or(Measure::ALL.len(), Vec::len), input.network_ids.as_ref().map(Vec::len), input.group_by.as_deref().unwrap_or_default(), child_complexity)"
    )]
    async fn spend_analysis(
        &self,
        ctx: &Context<'_>,
        input: SpendAnalysisInput,
    ) -> Result<SpendAnalysis> {
        let db = db(ctx)?;
        let caller = caller(ctx);
        let years = years_of(&input.years)?;
        let by_supplier_district = input
            .group_by
            .as_deref()
            .is_some_and(|d| d.contains(&SpendDimension::SupplierDistrict));
        let measures = measures_of(input.measures.as_deref(), by_supplier_district)?;
        let in_scope =
            networks_in_scope(db, input.region.as_ref(), input.network_ids.as_deref()).await?;
        let asked: Vec<i64> = in_scope.iter().map(|n| n.id).collect();
        if let Err(e) = policy::returns::may_read_impact(caller, &years, &[MetricGroup::Spend]) {
            log_read(ctx, "spendAnalysis", asked, true).await;
            return Err(e.into());
        }
        let (geography, published_geography) = geography_of(db, &input, &in_scope).await?;
        let dims = input.group_by.unwrap_or_default();
        let mut lines = Lines::new(
            geography.iter().map(|g| g.code.clone()).collect(),
            published_geography,
            [
                dims.contains(&SpendDimension::SupplierDistrict),
                dims.contains(&SpendDimension::Size),
                dims.contains(&SpendDimension::Category),
            ],
            &measures,
        );
        lines.max_places = Some(MAX_CELLS / measures.len().max(1));
        let (metrics, ratio_parts) = analysis::metrics(&lines, &measures);
        let whole = in_scope.len();
        let networks = policy::returns::scoped_networks(
            caller,
            in_scope.into_iter().map(|n| (n.id, n.key)).collect(),
        );
        let release_rules = release::Asked {
            published_scope: networks.len() == 1
                || (input.network_ids.is_none() && networks.len() == whole),
            past_as_of: false,
        };
        let geography: Vec<District> = geography.into_iter().map(District).collect();
        let spec = impact::Spec {
            networks,
            years,
            metrics,
            ratio_parts,
            by_network: dims.contains(&SpendDimension::Network),
            by_sector: dims.contains(&SpendDimension::InstitutionSector),
            by_district: false,
            as_of: domain::AsOf::given(None, Utc::now()),
            panel: false,
            lines: Some(lines),
        };
        if spec.networks.is_empty() {
            return Ok(SpendAnalysis {
                cells: vec![],
                withheld_networks: vec![],
                geography,
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
                    log_read(ctx, "spendAnalysis", asked, true).await;
                }
                return Err(e.into());
            }
        };
        if report.cells.len() > MAX_CELLS {
            return Err(impact::too_many_cells().into());
        }
        release::release(
            db,
            caller,
            &spec,
            noise_key(ctx)?,
            release_rules,
            &mut report.cells,
        )
        .await?;
        log_read(ctx, "spendAnalysis", report.touched.clone(), false).await;
        let Some(lines) = &spec.lines else {
            return Err(internal("spend analysis without lines"));
        };
        let cells = shape(lines, &measures, report.cells)?;
        let mut withheld: Vec<Network> = loaders(ctx)?
            .load_many(report.withheld.into_iter().map(NetworkId))
            .await?
            .into_values()
            .map(Network)
            .collect();
        withheld.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(SpendAnalysis {
            cells,
            withheld_networks: withheld,
            geography,
        })
    }
}

/// The measures asked for, once each, in the order of [`Measure::ALL`]. Grouped by supplier
/// district, spend in the geography is each district's total (or nothing): asked for, it is
/// refused, and left out of the default, so that the same spend is not published under two
/// names with two draws of noise to average.
fn measures_of(
    asked: Option<&[SpendMeasure]>,
    by_supplier_district: bool,
) -> Result<Vec<Measure>, ApiError> {
    let Some(asked) = asked else {
        return Ok(Measure::ALL
            .into_iter()
            .filter(|m| !(by_supplier_district && m.geographic()))
            .collect());
    };
    if asked.is_empty() {
        return Err(ApiError::bad_input(
            "input.measures",
            "give at least one measure, or leave it out for all",
        ));
    }
    if by_supplier_district && let Some(m) = asked.iter().find(|m| Measure::from(**m).geographic())
    {
        return Err(ApiError::bad_input(
            "input.measures",
            format!(
                "{m:?} with groupBy SUPPLIER_DISTRICT: each district's spend in the geography \
                 is its TOTAL when the district is in it and nothing otherwise; ask for TOTAL"
            ),
        ));
    }
    Ok(Measure::ALL
        .into_iter()
        .filter(|m| asked.iter().any(|a| Measure::from(*a) == *m))
        .collect())
}

/// The districts "in the geography" means, and whether aggregate-only figures may be
/// published for it (a region, a network's area, one district).
async fn geography_of(
    db: &sea_orm::DatabaseConnection,
    input: &SpendAnalysisInput,
    in_scope: &[entity::networks::Model],
) -> Result<(Vec<entity::geographies::Model>, bool), ApiError> {
    let region_districts = |id: i64| async move {
        Ok::<_, ApiError>(
            directory::region_districts(db, &[id])
                .await?
                .remove(&id)
                .unwrap_or_default(),
        )
    };
    let Some(g) = &input.geography else {
        let region = match &input.region {
            Some(code) => {
                directory::region_by_code(db, &code.0)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("input.region: region {}", code.0)))?
                    .id
            }
            None => {
                let mut regions: Vec<i64> = in_scope.iter().map(|n| n.region_id).collect();
                regions.sort_unstable();
                regions.dedup();
                match regions.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(ApiError::bad_input(
                            "input.geography",
                            "the networks are in more than one region: say which geography",
                        ));
                    }
                }
            }
        };
        return Ok((region_districts(region).await?, true));
    };
    match (&g.districts, &g.network, &g.region) {
        (Some(codes), None, None) => {
            if codes.is_empty() || codes.len() > MAX_DISTRICTS {
                return Err(ApiError::bad_input(
                    "input.geography.districts",
                    format!("give 1 to {MAX_DISTRICTS} district codes"),
                ));
            }
            let mut wanted: Vec<String> = vec![];
            for (i, c) in codes.iter().enumerate() {
                if !c.0.is_district() {
                    return Err(ApiError::bad_input(
                        format!("input.geography.districts[{i}]"),
                        format!("{} is not a district code", c.0),
                    ));
                }
                wanted.push(c.0.as_str().to_owned());
            }
            wanted.sort();
            wanted.dedup();
            let known = directory::geographies_by_code(db, &wanted).await?;
            let mut out = vec![];
            for code in &wanted {
                out.push(known.get(code).cloned().ok_or_else(|| {
                    ApiError::NotFound(format!("input.geography.districts: district {code}"))
                })?);
            }
            let one = out.len() == 1;
            Ok((out, one))
        }
        (None, Some(id), None) => {
            let field = "input.geography.network";
            let network = directory::require_network(db, field, &id_or_key(field, id)?).await?;
            let districts = directory::network_districts(db, &[network.id])
                .await?
                .remove(&network.id)
                .unwrap_or_default();
            if districts.is_empty() {
                return Err(ApiError::bad_input(
                    "input.geography.network",
                    format!("{} has no districts recorded as its place", network.key),
                ));
            }
            Ok((districts, true))
        }
        (None, None, Some(code)) => {
            let region = directory::region_by_code(db, &code.0)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("input.geography.region: region {}", code.0))
                })?;
            Ok((region_districts(region.id).await?, true))
        }
        _ => Err(ApiError::bad_input(
            "input.geography",
            "give exactly one of districts, network and region",
        )),
    }
}

/// Each cell as the API shows it, in the order of the measures. Cells split by a line's
/// supplier district, size or category that disclosure control withheld are left out, not
/// shown as withheld: that a cell exists at all says some contributor bought there, and a
/// category is text the buyer wrote (a red team read one institution's supplier districts off
/// the labels of withheld cells).
fn shape(lines: &Lines, measures: &[Measure], cells: Vec<Cell>) -> Result<Vec<SpendCell>> {
    let mut out = vec![];
    for c in cells {
        let Some(measure) = measures.iter().copied().find(|m| m.code(lines) == c.metric) else {
            continue;
        };
        let bucket = match &c.breakdown {
            Some(b) => {
                Bucket::parse(b).ok_or_else(|| internal(&format!("spend cell bucket `{b}`")))?
            }
            None => Bucket::default(),
        };
        if bucket != Bucket::default() && c.value.is_none() && c.suppressed.is_some() {
            continue;
        }
        out.push(SpendCell {
            cell: c,
            measure,
            bucket,
        });
    }
    out.sort_by(|a, b| {
        (a.measure, &a.cell.key, &a.cell.breakdown).cmp(&(
            b.measure,
            &b.cell.key,
            &b.cell.breakdown,
        ))
    });
    Ok(out)
}
