//! What `impact`'s and `spendAnalysis`'s cells show alike: their year, network and sector,
//! counts and coverage, from the cell the impact machinery computed.

use async_graphql::{Context, Result};

use super::context::loaders;
use super::enums::SectorGql;
use super::loaders::NetworkId;
use super::objects::Network;
use super::scalars::{Decimal, FinancialYear};
use crate::analytics::impact::{Cell, Value2};
use crate::domain::{self, quantity};
use crate::error::ApiError;

pub(super) fn year(cell: &Cell) -> Result<FinancialYear> {
    Ok(FinancialYear(cell.key.period.parse().map_err(|_| {
        ApiError::Internal(anyhow::anyhow!("cell period {:?}", cell.key))
    })?))
}

/// With a grouping by network.
pub(super) async fn network(ctx: &Context<'_>, cell: &Cell) -> Result<Option<Network>> {
    if cell.key.network == 0 {
        return Ok(None);
    }
    Ok(loaders(ctx)?
        .load_one(NetworkId(cell.key.network))
        .await?
        .map(Network))
}

/// With a grouping by the institutions' sector.
pub(super) fn sector(cell: &Cell) -> Result<Option<SectorGql>> {
    let stored = &cell.key.sector;
    if stored.is_empty() {
        return Ok(None);
    }
    let s: domain::Sector = stored.parse().map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "institutions.sector in cell {:?}: {e}",
            cell.key
        ))
    })?;
    Ok(Some(s.into()))
}

/// The cell's value as a decimal of `scale` places: a sum in minor units, or a ratio of sums.
pub(super) fn value(cell: &Cell, scale: u32) -> Option<Decimal> {
    match &cell.value {
        Some(Value2::Sum(v)) => Some(Decimal(quantity::from_minor_units(*v, scale))),
        Some(Value2::Ratio(n, d)) => quantity::ratio(*n, *d, scale).map(Decimal),
        None => None,
    }
}

/// A count as GraphQL's `Int`.
pub(super) fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// contributors / eligible; `None` when nothing is eligible.
pub(super) fn coverage(cell: &Cell) -> Option<f64> {
    (cell.eligible > 0).then(|| cell.contributors as f64 / cell.eligible as f64)
}
