use sea_orm::entity::prelude::*;

/// An accepted batch, by its idempotency key: a retry with the same key and body gets the
/// same returns back and writes nothing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "submission_batches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub network_id: i64,
    pub idempotency_key: String,
    /// SHA-256 of the batch's canonical form.
    pub body_hash: String,
    /// The ids of the returns it wrote, comma-separated, in input order.
    pub return_ids: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::networks::Entity",
        from = "Column::NetworkId",
        to = "super::networks::Column::Id"
    )]
    Network,
}

impl Related<super::networks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Network.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
