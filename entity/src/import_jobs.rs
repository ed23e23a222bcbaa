use sea_orm::entity::prelude::*;

use crate::vocab::{ImportKind, ImportState};

/// A file import: what it is for, how far it got, what was wrong with it, and what it wrote.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_jobs")]
pub struct Model {
    /// A random UUID: a job's id tells nothing of others.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: ImportKind,
    pub state: ImportState,
    /// The steward network the file came through.
    pub network_id: i64,
    pub institution_id: Option<i64>,
    pub period: Option<String>,
    pub rows_read: i64,
    pub rows_rejected: i64,
    /// JSON: the first problems, each with its line, column, code and reason.
    pub problems: String,
    /// Why the job failed, when not (only) for its rows: cut short, stopped, internal.
    pub failure: Option<String>,
    /// The version it wrote, or the one written before from the same file.
    pub spend_file_id: Option<i64>,
    /// The same file had been accepted before: nothing was written.
    pub replayed: bool,
    /// JSON: the first lines whose supplier's place is unknown, and why.
    pub place_unknown: String,
    pub sha256: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
