use sea_orm::entity::prelude::*;

/// A unit postcode and where it is, from the ONS National Statistics Postcode Lookup.
/// Terminated postcodes stay, with the month they ended: spend of earlier periods still
/// resolves through them.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "postcodes")]
pub struct Model {
    /// Upper case with one space before the inward code (`B69 4HE`), as NSPL's `pcds`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub postcode: String,
    /// The local authority district (NSPL's `laua`); `None` where NSPL has none.
    pub district_code: Option<String>,
    pub lsoa11_code: Option<String>,
    pub lsoa21_code: Option<String>,
    /// The month it was introduced, as yyyymm.
    pub introduced: Option<i32>,
    /// The month it was terminated, as yyyymm; `None` while live.
    pub terminated: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
