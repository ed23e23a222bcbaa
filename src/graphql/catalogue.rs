//! The metric catalogue as the API shows it: what each metric measures, how it aggregates,
//! and how disclosure control protects it.

use async_graphql::{Enum, Object, Result};
use entity::metrics;

use super::context::internal;
use crate::domain;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "MetricGroup")]
pub enum MetricGroupGql {
    Spend,
    Employment,
    LandAndAssets,
    Emissions,
}

impl From<domain::MetricGroup> for MetricGroupGql {
    fn from(g: domain::MetricGroup) -> Self {
        match g {
            domain::MetricGroup::Spend => Self::Spend,
            domain::MetricGroup::Employment => Self::Employment,
            domain::MetricGroup::LandAndAssets => Self::LandAndAssets,
            domain::MetricGroup::Emissions => Self::Emissions,
        }
    }
}

impl From<MetricGroupGql> for domain::MetricGroup {
    fn from(g: MetricGroupGql) -> Self {
        match g {
            MetricGroupGql::Spend => Self::Spend,
            MetricGroupGql::Employment => Self::Employment,
            MetricGroupGql::LandAndAssets => Self::LandAndAssets,
            MetricGroupGql::Emissions => Self::Emissions,
        }
    }
}

/// How a metric aggregates across institutions.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Aggregation {
    Sum,
    /// A ratio of two other metrics' sums over the same contributors.
    Ratio,
    None,
}

/// How a metric's aggregates are protected.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DisclosureClass {
    /// An organisation's amount (spend, headcount, land).
    Magnitude,
    /// A count of people in a small group.
    PeopleCount,
}

/// A catalogue entry.
pub struct Metric(pub metrics::Model);

#[Object]
impl Metric {
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn unit(&self) -> &str {
        &self.0.unit
    }
    /// Decimal places stored and shown.
    async fn scale(&self) -> i32 {
        i32::from(self.0.scale)
    }
    async fn group(&self) -> Result<MetricGroupGql> {
        let g: domain::MetricGroup = self
            .0
            .metric_group
            .parse()
            .map_err(|_| internal("stored metric group"))?;
        Ok(g.into())
    }
    async fn definition(&self) -> &str {
        &self.0.definition
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn aggregation(&self) -> Aggregation {
        match self.0.aggregation.as_str() {
            "SUM" => Aggregation::Sum,
            "RATIO" => Aggregation::Ratio,
            _ => Aggregation::None,
        }
    }
    /// For ratios: the metric summed above the line.
    async fn numerator(&self) -> Option<&str> {
        self.0.numerator.as_deref()
    }
    /// For ratios: the metric summed below the line.
    async fn denominator(&self) -> Option<&str> {
        self.0.denominator.as_deref()
    }
    async fn disclosure_class(&self) -> DisclosureClass {
        if self.0.disclosure == "PEOPLE_COUNT" {
            DisclosureClass::PeopleCount
        } else {
            DisclosureClass::Magnitude
        }
    }
    /// A metric this one is part of, and so at most (local spend is part of total spend).
    async fn part_of(&self) -> Option<&str> {
        self.0.part_of.as_deref()
    }
    /// The breakdown kinds its values carry (`district`, `imd_decile`); empty when none.
    async fn breakdowns(&self) -> Vec<String> {
        self.0
            .breakdown
            .as_deref()
            .map(|b| b.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}
