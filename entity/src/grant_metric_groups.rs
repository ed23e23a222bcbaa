use sea_orm::entity::prelude::*;

use crate::vocab::MetricGroup;

/// A metric group a grant covers: one row per group.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grant_metric_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub grant_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub metric_group: MetricGroup,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::grants::Entity",
        from = "Column::GrantId",
        to = "super::grants::Column::Id"
    )]
    Grant,
}

impl Related<super::grants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Grant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
