//! Checks of what is stored that the schema cannot enforce on every database. A value
//! outside its vocabulary fails the read of its row (sea-orm's `DbErr::Type`, naming the
//! enum and the value, not the row); this scan names the rows, so an operator can mend them.
//! `serve` runs it at start and logs each stray row; `anchorfed check` prints them.

use anyhow::Context;
use entity::vocab;
use sea_orm::{ConnectionTrait, FromQueryResult, Iterable};

use crate::error::ApiResult;
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

/// One vocabulary column: its table, the key that names a row, the column, its values.
struct Column {
    table: &'static str,
    key: &'static str,
    column: &'static str,
    values: Vec<&'static str>,
}

fn names<E: Iterable>(as_str: fn(E) -> &'static str) -> Vec<&'static str> {
    E::iter().map(as_str).collect()
}

fn columns() -> Vec<Column> {
    let col = |table, key, column, values| Column {
        table,
        key,
        column,
        values,
    };
    vec![
        col("grants", "id", "level", names(vocab::AccessLevel::as_str)),
        col(
            "grants",
            "id",
            "grantee_kind",
            names(vocab::GranteeKind::as_str),
        ),
        col(
            "returns",
            "id",
            "status",
            names(vocab::ReturnStatus::as_str),
        ),
        col(
            "memberships",
            "id",
            "status",
            names(vocab::MembershipStatus::as_str),
        ),
        col(
            "metrics",
            "code",
            "aggregation",
            names(vocab::Aggregation::as_str),
        ),
        col(
            "metrics",
            "code",
            "disclosure",
            names(vocab::DisclosureClass::as_str),
        ),
        col(
            "metrics",
            "code",
            "metric_group",
            names(vocab::MetricGroup::as_str),
        ),
        col("institutions", "id", "sector", names(vocab::Sector::as_str)),
        col("tokens", "id", "role", names(vocab::Role::as_str)),
        col("access_log", "id", "role", names(vocab::Role::as_str)),
        col(
            "grant_events",
            "id",
            "action",
            names(vocab::GrantAction::as_str),
        ),
        col(
            "grant_metric_groups",
            "grant_id",
            "metric_group",
            names(vocab::MetricGroup::as_str),
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
        let statement = Sql::format(
            "SELECT CAST({} AS TEXT) AS row_key, CAST({} AS TEXT) AS value FROM {} \
             WHERE {} IS NOT NULL AND {} NOT IN ({}) ORDER BY 1",
            [
                Sql::raw(c.key),
                Sql::raw(c.column),
                Sql::raw(c.table),
                Sql::raw(c.column),
                Sql::raw(c.column),
                Sql::list(c.values.iter().copied()),
            ],
        );
        let found = Found::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await
            .with_context(|| format!("Failed to check {}.{}", c.table, c.column))?;
        out.extend(found.into_iter().map(|f| Stray {
            table: c.table,
            row: f.row_key,
            column: c.column,
            value: f.value,
        }));
    }
    Ok(out)
}
