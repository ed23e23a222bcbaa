//! The metric catalogue as the API shows it: what each metric measures, how it aggregates,
//! and how disclosure control protects it.

use std::sync::Arc;

use async_graphql::Object;

use super::enums::{Aggregation, DisclosureClass, MetricGroupGql};

use crate::catalogue;

/// A catalogue entry; shared, since every value of a page names one of a dozen.
pub struct Metric(pub Arc<catalogue::Metric>);

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
        i32::from(self.0.stored().scale)
    }
    async fn group(&self) -> MetricGroupGql {
        self.0.group.into()
    }
    async fn definition(&self) -> &str {
        &self.0.definition
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn aggregation(&self) -> Aggregation {
        self.0.stored().aggregation.into()
    }
    /// For ratios: the metric summed above the line.
    async fn numerator(&self) -> Option<&str> {
        match &self.0.aggregation {
            catalogue::Aggregation::Ratio { numerator, .. } => Some(numerator),
            catalogue::Aggregation::Sum | catalogue::Aggregation::None => None,
        }
    }
    /// For ratios: the metric summed below the line.
    async fn denominator(&self) -> Option<&str> {
        match &self.0.aggregation {
            catalogue::Aggregation::Ratio { denominator, .. } => Some(denominator),
            catalogue::Aggregation::Sum | catalogue::Aggregation::None => None,
        }
    }
    async fn disclosure_class(&self) -> DisclosureClass {
        self.0.disclosure.into()
    }
    /// A metric this one is part of, and so at most (local spend is part of total spend).
    async fn part_of(&self) -> Option<&str> {
        self.0.part_of.as_deref()
    }
    /// The breakdown kinds its values carry (`district`, `imd_decile`); empty when none.
    async fn breakdowns(&self) -> Vec<String> {
        self.0
            .breakdowns
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    }
}
