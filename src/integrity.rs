//! Checks of what is stored that the schema cannot enforce on every database. A value
//! outside its vocabulary fails the read of its row (sea-orm's `DbErr::Type`, naming the
//! enum and the value, not the row); this scan names the rows, so an operator can mend them.
//! `anchorfed check` prints them. It scans whole tables (the access log among them), so it
//! runs when an operator asks, not at every start.

use anyhow::Context;
use entity::vocab::{
    AccessLevel, Aggregation, DisclosureClass, GrantAction, GranteeKind, ImportKind, ImportState,
    MembershipStatus, MetricGroup, PlaceSource, ReturnStatus, Role, Sector,
};
use sea_orm::{ConnectionTrait, FromQueryResult, Iterable};

use crate::error::{ApiError, ApiResult};
use crate::sql::Sql;

/// A stored value outside its column's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    pub table: &'static str,
    /// The row's key (its id, or a metric's code).
    pub row: String,
    pub column: &'static str,
    pub value: String,
}

impl std::fmt::Display for Stray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {}, column {}: `{}` is not in its vocabulary",
            self.table, self.row, self.column, self.value
        )
    }
}

/// One vocabulary column (`table.column`), the key that names a row, and its values.
struct Column {
    at: &'static str,
    key: &'static str,
    values: Vec<&'static str>,
}

fn names<E: Iterable>(as_str: fn(E) -> &'static str) -> Vec<&'static str> {
    E::iter().map(as_str).collect()
}

fn columns() -> Vec<Column> {
    let col = |at, key, values| Column { at, key, values };
    vec![
        // Sharing: grants, their groups and their history.
        col("grants.level", "id", names(AccessLevel::as_str)),
        col("grants.grantee_kind", "id", names(GranteeKind::as_str)),
        col(
            "grant_metric_groups.metric_group",
            "grant_id",
            names(MetricGroup::as_str),
        ),
        col("grant_events.action", "id", names(GrantAction::as_str)),
        // Returns and the directory.
        col("returns.status", "id", names(ReturnStatus::as_str)),
        col("memberships.status", "id", names(MembershipStatus::as_str)),
        col("institutions.sector", "id", names(Sector::as_str)),
        // The catalogue, keyed by code.
        col("metrics.aggregation", "code", names(Aggregation::as_str)),
        col("metrics.disclosure", "code", names(DisclosureClass::as_str)),
        col("metrics.metric_group", "code", names(MetricGroup::as_str)),
        // Tokens and who used them.
        col("tokens.role", "id", names(Role::as_str)),
        col("access_log.role", "id", names(Role::as_str)),
        // File imports and what they wrote (spend lines: the large table, scanned whole).
        col("import_jobs.kind", "id", names(ImportKind::as_str)),
        col("import_jobs.state", "id", names(ImportState::as_str)),
        col(
            "spend_lines.place",
            "file_id || ':' || line",
            names(PlaceSource::as_str),
        ),
    ]
}

#[derive(FromQueryResult)]
struct Found {
    row_key: String,
    value: String,
}

/// Every stored value outside its column's vocabulary, with its row.
pub async fn stray_vocabulary<C: ConnectionTrait>(db: &C) -> ApiResult<Vec<Stray>> {
    let mut out = vec![];
    for c in columns() {
        let (table, column) = c.at.split_once('.').ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "integrity check `{}` names no column",
                c.at
            ))
        })?;
        let statement = Sql::format(
            "SELECT row_key, value FROM (SELECT CAST({} AS TEXT) AS row_key, \
               CAST({} AS TEXT) AS value FROM {}) x \
             WHERE value IS NOT NULL AND value NOT IN ({}) ORDER BY 1",
            [
                Sql::raw(c.key),
                Sql::raw(column),
                Sql::raw(table),
                Sql::list(c.values.iter().copied()),
            ],
        );
        let found = Found::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await
            .with_context(|| format!("Failed to check {}", c.at))?;
        out.extend(found.into_iter().map(|f| Stray {
            table,
            row: f.row_key,
            column,
            value: f.value,
        }));
    }
    Ok(out)
}
