use sea_orm::entity::prelude::*;

use crate::vocab::ReturnStatus;

/// One version of an institution's return for one period. Never updated in place but for
/// its approval status.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "returns")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub institution_id: i64,
    /// The financial year, `2023/24`.
    pub period: String,
    pub period_start: Date,
    pub period_end: Date,
    pub version: i32,
    /// `SUBMITTED`, `APPROVED` or `REJECTED`.
    pub status: ReturnStatus,
    pub basis: Option<String>,
    pub notes: Option<String>,
    pub batch_id: Option<i64>,
    pub submitted_at: DateTimeUtc,
    pub submitted_by: String,
    /// When it became current for readers outside the steward network; `None` until then.
    pub published_at: Option<DateTimeUtc>,
    pub decided_at: Option<DateTimeUtc>,
    pub decided_by: Option<String>,
    pub reject_reason: Option<String>,
    /// The version readers in the steward network see now: the latest not rejected.
    pub current_steward: bool,
    /// The version everyone else sees now: the latest published.
    pub current_published: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::institutions::Entity",
        from = "Column::InstitutionId",
        to = "super::institutions::Column::Id"
    )]
    Institution,
}

impl Related<super::institutions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Institution.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
