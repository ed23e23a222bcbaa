use sea_orm::entity::prelude::*;

use crate::vocab::GrantAction;

/// One change to a grant: who, when, and the grant as it stood after.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grant_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub grant_id: i64,
    /// `GRANTED` or `REVOKED`.
    pub action: GrantAction,
    pub at: DateTimeUtc,
    pub by: String,
    pub detail: String,
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
