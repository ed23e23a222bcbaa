use sea_orm::entity::prelude::*;

/// A way to picture a metric's total: `value / factor` of `unit` (hectares / 0.714 = pitches).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "equivalences")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub metric_code: String,
    pub name: String,
    pub unit: String,
    /// A decimal string: how much of the metric's unit one of `unit` is.
    pub factor: String,
    pub note: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
