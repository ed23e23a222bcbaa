use sea_orm::entity::prelude::*;

/// One value of a return, in the metric's minor units. `value` is `None` exactly when
/// `not_reported`: not reported is not zero.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "return_values")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub return_id: i64,
    pub metric_code: String,
    /// `district:CODE`, `imd_decile:N`, or empty for no breakdown.
    pub breakdown: String,
    pub value: Option<i64>,
    pub not_reported: bool,
    pub method: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::returns::Entity",
        from = "Column::ReturnId",
        to = "super::returns::Column::Id"
    )]
    Return,
}

impl Related<super::returns::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Return.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
