//! What an operation costs: async-graphql's complexity (every field 1 plus its children,
//! connections `first` times their contents), with `impact` priced by the cells it can
//! answer; and the extension that enforces the limit with the figure in the message and can
//! price an operation without running it, so a batch is priced whole before any of it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

use super::impact::Dimension;
use super::spend::SpendDimension;
use crate::domain::Sector;

/// What one `impact` costs before its cells: one aggregate statement, however small.
const IMPACT_STATEMENT: usize = 50;
/// Networks a region is priced at when the request does not name them (the West Midlands
/// has 7; room for the larger combined authorities).
const REGION_NETWORKS: usize = 20;
/// Home districts a `DISTRICT` grouping is priced at (a region's districts and their
/// neighbours where members live outside it).
const DISTRICTS: usize = 20;
/// The most cells a crossing of groupings is priced at, for one year and metric: a cell is
/// answered only where an institution falls, and a region's anchors number in the tens to
/// low hundreds, so NETWORK x SECTOR x DISTRICT is sparse, never its full product.
const CROSSING_CELLS: usize = 100;

/// The price of an `impact` field: its statement plus, for every cell it may answer (years x
/// metrics x each grouping's values, a crossing at most `CROSSING_CELLS`), the selection
/// under it. Breakdown metrics answer one
/// cell per breakdown key; the catalogue that knows them is not at hand here, so they are
/// priced as one and bounded by the answer size limit instead.
pub fn impact(
    years: usize,
    metrics: usize,
    networks: Option<usize>,
    group_by: &[Dimension],
    per_cell: usize,
) -> usize {
    let mut groups: usize = 1;
    let mut seen: Vec<Dimension> = Vec::with_capacity(4);
    for d in group_by {
        if seen.contains(d) {
            continue;
        }
        seen.push(*d);
        let values = match d {
            Dimension::Network => networks.unwrap_or(REGION_NETWORKS).max(1),
            Dimension::Sector => Sector::ALL.len(),
            Dimension::District => DISTRICTS,
            Dimension::Year => 1,
        };
        groups = groups.saturating_mul(values);
    }
    let cells = years
        .max(1)
        .saturating_mul(metrics.max(1))
        .saturating_mul(groups.min(CROSSING_CELLS));
    IMPACT_STATEMENT.saturating_add(cells.saturating_mul(per_cell.max(1)))
}

/// Supplier districts a `SUPPLIER_DISTRICT` grouping is priced at (suppliers are national).
const SUPPLIER_DISTRICTS: usize = 60;
/// Categories a `CATEGORY` grouping is priced at (each institution's own words).
const CATEGORIES: usize = 40;

/// The price of a `spendAnalysis` field, as [`impact`]'s: its statement plus, for every cell
/// it may answer (years x measures x each grouping's values, a crossing at most
/// [`super::spend::MAX_CELLS`] in all), the selection under it. The answer itself is refused
/// past that many cells.
pub fn spend_analysis(
    years: usize,
    measures: usize,
    networks: Option<usize>,
    group_by: &[SpendDimension],
    per_cell: usize,
) -> usize {
    let mut groups: usize = 1;
    let mut seen: Vec<SpendDimension> = Vec::with_capacity(5);
    for d in group_by {
        if seen.contains(d) {
            continue;
        }
        seen.push(*d);
        let values = match d {
            SpendDimension::Network => networks.unwrap_or(REGION_NETWORKS).max(1),
            SpendDimension::InstitutionSector => Sector::ALL.len(),
            SpendDimension::SupplierDistrict => SUPPLIER_DISTRICTS,
            SpendDimension::Size => 3,
            SpendDimension::Category => CATEGORIES,
        };
        groups = groups.saturating_mul(values);
    }
    let cells = years
        .max(1)
        .saturating_mul(measures.max(1))
        .saturating_mul(groups.min(CROSSING_CELLS.saturating_mul(10)))
        .min(super::spend::MAX_CELLS);
    IMPACT_STATEMENT
        .saturating_mul(2)
        .saturating_add(cells.saturating_mul(per_cell.max(1)))
}

/// Put into a request's data, it makes execution stop after validation and record the
/// operation's cost here instead of running it.
#[derive(Clone, Default)]
pub struct PriceOnly(Arc<AtomicUsize>);

impl PriceOnly {
    /// The cost validation found, or `None` when validation failed (execution will report why).
    pub fn cost(&self) -> Option<usize> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }
}

/// The message a priced-only operation stops with; never shown to a client.
pub const PRICED: &str = "priced, not run";

/// Enforces the complexity limit (in place of async-graphql's, whose message has no figures)
/// and serves `PriceOnly`.
pub struct Pricing {
    limit: usize,
}

impl Pricing {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl ExtensionFactory for Pricing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PricingExtension { limit: self.limit })
    }
}

struct PricingExtension {
    limit: usize,
}

/// The refusal of an operation over the limit, as a client sees it.
pub fn too_complex(cost: usize, limit: usize) -> ServerError {
    let mut e = ServerError::new(
        format!(
            "the operation costs {cost}; the limit is {limit} (ask for fewer years, metrics, \
             groupings or smaller pages, or split the request)"
        ),
        None,
    );
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", "QUERY_TOO_COMPLEX");
    e
}

#[async_trait::async_trait]
impl Extension for PricingExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let r = next.run(ctx).await?;
        if let Some(p) = ctx.data_opt::<PriceOnly>() {
            p.0.store(r.complexity.saturating_add(1), Ordering::Release);
            return Err(vec![ServerError::new(PRICED, None)]);
        }
        if r.complexity > self.limit {
            return Err(vec![too_complex(r.complexity, self.limit)]);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impact_is_priced_by_its_cells() {
        assert_eq!(impact(1, 1, None, &[], 10), 60);
        assert_eq!(impact(3, 4, None, &[], 10), 50 + 120);
        // Named networks price a NETWORK grouping; a region is priced at its default.
        assert_eq!(impact(1, 1, Some(3), &[Dimension::Network], 10), 80);
        assert_eq!(impact(1, 1, None, &[Dimension::Network], 10), 250);
        // A crossing is priced at the cells institutions can fill, not its full product.
        assert_eq!(
            impact(1, 1, None, &[Dimension::Sector, Dimension::District], 10),
            1050
        );
        // Repeating a dimension does not multiply it again; YEAR adds nothing.
        assert_eq!(
            impact(
                1,
                1,
                Some(3),
                &[Dimension::Network, Dimension::Network, Dimension::Year],
                10
            ),
            80
        );
        // The issue's request: 20 years x 15 metrics by NETWORK, SECTOR and DISTRICT.
        let issue = impact(
            20,
            15,
            None,
            &[Dimension::Network, Dimension::Sector, Dimension::District],
            12,
        );
        assert!(issue > 10 * 20_000, "{issue}");
        assert_eq!(
            impact(usize::MAX, usize::MAX, None, &[], usize::MAX),
            usize::MAX
        );
    }
}
