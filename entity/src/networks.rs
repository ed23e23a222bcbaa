use sea_orm::entity::prelude::*;

/// A local anchor network within a region.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "networks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub name: String,
    pub short_name: String,
    pub region_id: i64,
    pub established: i32,
    pub population: i64,
    pub model: String,
    pub membership_rule: String,
    pub governance: String,
    pub imd_rank: Option<i32>,
    pub imd_rank_of: Option<i32>,
    pub requires_approval: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::regions::Entity",
        from = "Column::RegionId",
        to = "super::regions::Column::Id"
    )]
    Region,
}

impl Related<super::regions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Region.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
