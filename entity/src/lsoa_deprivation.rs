use sea_orm::entity::prelude::*;

/// An LSOA's Index of Multiple Deprivation rank and decile (decile 1 is the most deprived
/// tenth), in one edition of the English Indices of Deprivation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "lsoa_deprivation")]
pub struct Model {
    /// The year of the Indices: 2019, 2025.
    #[sea_orm(primary_key, auto_increment = false)]
    pub edition: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lsoa_code: String,
    /// The LSOA boundaries the edition uses: 2011 or 2021.
    pub lsoa_vintage: i32,
    pub imd_rank: i32,
    pub imd_decile: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
