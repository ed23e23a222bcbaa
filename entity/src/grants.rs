use sea_orm::entity::prelude::*;

use crate::vocab::{AccessLevel, GranteeKind};

/// A steward network's grant of its institutions' returns to a grantee (DESIGN.md rule 3),
/// with the data-sharing agreement it rests on. The metric groups it covers are rows of
/// `grant_metric_groups`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub network_id: i64,
    /// `REGION`, `ORGANISATION` or `PUBLIC`.
    pub grantee_kind: GranteeKind,
    pub grantee_region: Option<String>,
    pub grantee_organisation_id: Option<i64>,
    /// `AGGREGATE` or `DETAIL`.
    pub level: AccessLevel,
    pub from_year: String,
    pub to_year: String,
    pub expires_at: DateTimeUtc,
    pub agreement_reference: String,
    pub lawful_basis: String,
    pub purpose: String,
    pub review_date: Date,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::networks::Entity",
        from = "Column::NetworkId",
        to = "super::networks::Column::Id"
    )]
    Network,
}

impl Related<super::networks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Network.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
