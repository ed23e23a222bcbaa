use sea_orm::entity::prelude::*;

use crate::vocab::PlaceSource;

/// One supplier line of a spend file (API.md's layout), as given, with the place it resolved
/// to. Written only when its file is switched in; never updated.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spend_lines")]
pub struct Model {
    /// The `spend_files` version it belongs to; with `line`, the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub file_id: i64,
    /// Its line in the file (the header is line 1).
    #[sea_orm(primary_key, auto_increment = false)]
    pub line: i32,
    /// The supplier's name, as given. A sole trader's name is personal data.
    pub supplier: String,
    /// Companies House number, charity number, or the institution's own id.
    pub supplier_id: String,
    /// The postcode given, in its one spelling.
    pub postcode: Option<String>,
    /// The district given, used only when no postcode is.
    pub given_district: Option<String>,
    /// Pence.
    pub amount: i64,
    pub category: Option<String>,
    pub sme: bool,
    pub vcse: bool,
    pub sole_trader: bool,
    /// The supplier is another anchor institution.
    pub anchor: bool,
    /// The district the supplier is in; `None` when its place is unknown.
    pub district_code: Option<String>,
    /// The LSOA the postcode is in (2021 boundaries where NSPL gives them, else 2011).
    pub lsoa_code: Option<String>,
    /// Where the place came from: the postcode, the district given, or nowhere.
    pub place: PlaceSource,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::spend_files::Entity",
        from = "Column::FileId",
        to = "super::spend_files::Column::Id"
    )]
    File,
}

impl Related<super::spend_files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::File.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
