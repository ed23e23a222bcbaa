use sea_orm::entity::prelude::*;

use crate::vocab::Role;

/// An issued token's id (`jti`) and metadata; the token itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub subject: String,
    pub role: Role,
    pub network_id: Option<i64>,
    pub region_code: Option<String>,
    pub organisation_id: Option<i64>,
    /// The canonical scope string; `None` for the role's full reach.
    pub scopes: Option<String>,
    pub issued_by: String,
    pub issued_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
