use sea_orm::entity::prelude::*;

/// A decision of the rules that look at values, made once for a cell's aggregate-only
/// contributors at one place and kept (docs/access.md, "Disclosure control").
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cell_decisions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub metric: String,
    /// The breakdown key, empty for a total.
    pub breakdown: String,
    pub period: String,
    /// Where the cell sits: the networks it covers, its sector and district.
    pub place: String,
    /// SHA-256 of the aggregate-only contributors' ids, ascending and comma-separated, hex.
    pub digest: String,
    /// Whether the cell passed, and so is shown.
    pub shown: bool,
    pub decided_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
