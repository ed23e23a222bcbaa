use sea_orm::entity::prelude::*;

use crate::vocab::Sector;

/// An anchor institution.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "institutions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub name: String,
    pub sector: Sector,
    pub home_district_code: String,
    /// The month (1-12) its financial year ends in.
    pub year_end_month: i16,
    pub steward_network_id: i64,
    /// A secret random number (0-255) for cell-key perturbation: the sum over a cell's
    /// contributors picks the cell's adjustment, so the same contributors always get the same.
    pub record_key: i16,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::networks::Entity",
        from = "Column::StewardNetworkId",
        to = "super::networks::Column::Id"
    )]
    StewardNetwork,
}

impl ActiveModelBehavior for ActiveModel {
    /// Every new institution draws its record key here, however it is inserted.
    fn new() -> Self {
        let mut byte = [0u8; 1];
        // Without the OS's randomness the key falls back to 0: perturbation weakens, nothing fails.
        let key = if getrandom::fill(&mut byte).is_ok() {
            i16::from(byte[0])
        } else {
            0
        };
        Self {
            record_key: sea_orm::ActiveValue::Set(key),
            ..<Self as ActiveModelTrait>::default()
        }
    }
}
