use sea_orm::entity::prelude::*;

use crate::vocab::{Aggregation, DisclosureClass, MetricGroup};

/// A catalogue entry: what a metric means, its unit and scale, and how it aggregates.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub name: String,
    pub unit: String,
    /// Decimal places stored: values are integers in units of 10^-scale.
    pub scale: i16,
    pub metric_group: MetricGroup,
    pub definition: String,
    pub source: String,
    /// `SUM`, `RATIO` (numerator over denominator) or `NONE`.
    pub aggregation: Aggregation,
    pub numerator: Option<String>,
    pub denominator: Option<String>,
    /// `MAGNITUDE` or `PEOPLE_COUNT`.
    pub disclosure: DisclosureClass,
    /// A metric this one is part of, and so at most.
    pub part_of: Option<String>,
    /// The breakdown kinds it takes (`district,imd_decile`); `None` for a single value.
    pub breakdown: Option<String>,
    pub position: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
