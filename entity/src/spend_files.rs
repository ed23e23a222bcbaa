use sea_orm::entity::prelude::*;

/// One version of an institution's spend lines for one period: the file accepted, with its
/// totals. A new file for the same institution and period is a new version; nothing is
/// updated in place, and the version current at an instant is the latest submitted by then.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spend_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub institution_id: i64,
    /// The financial year, `2023/24`.
    pub period: String,
    pub version: i32,
    /// SHA-256 of the file's bytes: the same file again writes nothing.
    pub sha256: String,
    pub lines: i64,
    /// The sum of the lines' amounts, in pence.
    pub total: i64,
    /// Lines whose supplier's place is unknown, and their amount in pence.
    pub place_unknown_lines: i64,
    pub place_unknown_total: i64,
    pub submitted_at: DateTimeUtc,
    pub submitted_by: String,
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
