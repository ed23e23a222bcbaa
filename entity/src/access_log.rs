use sea_orm::entity::prelude::*;

use crate::vocab::Role;

/// One read of returns or aggregates, or one refused read.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// `None` for anonymous readers.
    pub subject: Option<String>,
    pub role: Option<Role>,
    pub organisation_id: Option<i64>,
    pub operation: String,
    pub refused: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
