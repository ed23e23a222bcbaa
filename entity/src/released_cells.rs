use sea_orm::entity::prelude::*;

/// An aggregate-only cell released to an audience: its contributors seen only in aggregate,
/// for the differencing guard.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "released_cells")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `public`, `region:ID`, `organisation:ID` or `network:ID`.
    pub audience: String,
    pub metric: String,
    /// The breakdown key, empty for a total.
    pub breakdown: String,
    pub period: String,
    /// How many members.
    pub size: i32,
    /// SHA-256 of `members`, hex.
    pub digest: String,
    /// The institutions' ids, ascending, comma-separated.
    pub members: String,
    pub released_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
