use sea_orm::entity::prelude::*;

/// An ONS geography (combined authority, county, district, ward, LSOA) by GSS code.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "geographies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub name: String,
    /// The GSS entity code: the first three characters (E47, E10, E08, ...).
    pub kind: String,
    /// The boundary vintage year.
    pub vintage: i32,
    pub parent_code: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
