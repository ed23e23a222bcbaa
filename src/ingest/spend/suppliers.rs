//! An institution's suppliers for a period (`topSuppliers`), from its current spend file (the
//! latest version): one row per supplier id with the lines' total and count, largest total
//! first, ties by the supplier's first line in the file. Sole traders are never named: all
//! their lines make one row with no name, id or district.
//!
//! Who may read it is the policy's (`policy::spend::suppliers_readable`); this module only
//! reads.

use anyhow::Context;
use sea_orm::{ConnectionTrait, FromQueryResult};

use crate::auth::Caller;
use crate::domain::FinancialYear;
use crate::error::{ApiError, ApiResult};
use crate::pagination::Page;
use crate::policy;
use crate::sql::Sql;

/// One row of `topSuppliers`.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct SupplierRow {
    /// Whether this is the row of all sole traders' lines (nothing named).
    pub sole_traders: bool,
    /// `None` for the sole traders' row.
    pub supplier: Option<String>,
    pub supplier_id: Option<String>,
    pub district_code: Option<String>,
    /// Pence.
    pub total: i64,
    pub lines: i64,
    /// The row's first line in the file: with `total`, its place in the order.
    pub first_line: i32,
    pub sme: bool,
    pub vcse: bool,
    pub anchor: bool,
}

/// Where a page starts: after the row with this total and first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub total: i64,
    pub first_line: i32,
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

#[derive(FromQueryResult)]
struct FileId {
    id: i64,
}

/// Whether the caller may read the institution's suppliers for the period: refused with
/// FORBIDDEN otherwise.
pub async fn check<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    institution: &entity::institutions::Model,
    period: FinancialYear,
) -> ApiResult<()> {
    let statement = policy::spend::suppliers_readable(caller, institution.id, period)?;
    let row = Count::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .context("Failed to weigh a read of suppliers")?;
    if row.is_some_and(|c| c.n > 0) {
        Ok(())
    } else {
        Err(policy::spend::suppliers_refused(
            caller,
            &institution.key,
            period,
        ))
    }
}

/// The institution's current spend file for the period: its latest version.
pub async fn current_file<C: ConnectionTrait>(
    db: &C,
    institution: i64,
    period: FinancialYear,
) -> ApiResult<Option<i64>> {
    let statement = Sql::format(
        "SELECT f.id AS id FROM spend_files f WHERE f.institution_id = {} AND f.period = {} \
         ORDER BY f.version DESC LIMIT 1",
        [Sql::value(institution), Sql::value(period.to_string())],
    );
    Ok(
        FileId::find_by_statement(statement.statement(db.get_database_backend()))
            .one(db)
            .await
            .context("Failed to read the current spend file")?
            .map(|f| f.id),
    )
}

/// The suppliers of a file, grouped: a named supplier by its id, every sole trader together.
fn grouped(file: i64) -> Sql {
    Sql::format(
        "SELECT CASE WHEN l.sole_trader THEN 1 ELSE 0 END AS st, \
           CASE WHEN l.sole_trader THEN NULL ELSE l.supplier_id END AS sid, \
           MIN(CASE WHEN l.sole_trader THEN NULL ELSE l.supplier END) AS supplier, \
           MIN(CASE WHEN l.sole_trader THEN NULL ELSE l.district_code END) AS district_code, \
           CAST(SUM(l.amount) AS BIGINT) AS total, CAST(COUNT(*) AS BIGINT) AS lines, \
           MIN(l.line) AS first_line, \
           MAX(CASE WHEN l.sme THEN 1 ELSE 0 END) AS sme, \
           MAX(CASE WHEN l.vcse THEN 1 ELSE 0 END) AS vcse, \
           MAX(CASE WHEN l.anchor THEN 1 ELSE 0 END) AS anchor \
         FROM spend_lines l WHERE l.file_id = {} \
         GROUP BY CASE WHEN l.sole_trader THEN 1 ELSE 0 END, \
           CASE WHEN l.sole_trader THEN NULL ELSE l.supplier_id END",
        [Sql::value(file)],
    )
}

#[derive(FromQueryResult)]
struct Raw {
    st: i32,
    sid: Option<String>,
    supplier: Option<String>,
    district_code: Option<String>,
    total: i64,
    lines: i64,
    first_line: i32,
    sme: i32,
    vcse: i32,
    anchor: i32,
}

/// A page of the file's suppliers, largest total first, ties by first line.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    file: i64,
    first: u64,
    after: Option<After>,
) -> ApiResult<Page<SupplierRow>> {
    let condition = match after {
        Some(a) => Sql::format(
            "WHERE g.total < {} OR (g.total = {} AND g.first_line > {})",
            [
                Sql::value(a.total),
                Sql::value(a.total),
                Sql::value(a.first_line),
            ],
        ),
        None => Sql::raw(""),
    };
    let limit = i64::try_from(first.saturating_add(1)).unwrap_or(i64::MAX);
    let statement = Sql::format(
        "SELECT g.st, g.sid, g.supplier, g.district_code, g.total, g.lines, g.first_line, \
           g.sme, g.vcse, g.anchor FROM ({}) g {} \
         ORDER BY g.total DESC, g.first_line ASC LIMIT {}",
        [grouped(file), condition, Sql::value(limit)],
    );
    let rows = Raw::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read a file's suppliers")?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let sole = r.st != 0;
            SupplierRow {
                sole_traders: sole,
                supplier: if sole { None } else { r.supplier },
                supplier_id: if sole { None } else { r.sid },
                district_code: if sole { None } else { r.district_code },
                total: r.total,
                lines: r.lines,
                first_line: r.first_line,
                sme: r.sme != 0,
                vcse: r.vcse != 0,
                anchor: r.anchor != 0,
            }
        })
        .collect();
    Ok(Page::from_overfetch(
        rows,
        usize::try_from(first).unwrap_or(usize::MAX),
    ))
}

/// How many supplier rows the file has (the sole traders' one row included).
pub async fn count<C: ConnectionTrait>(db: &C, file: i64) -> ApiResult<u64> {
    let statement = Sql::format(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ({}) g",
        [grouped(file)],
    );
    let row = Count::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .context("Failed to count a file's suppliers")?;
    Ok(row.map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
}

/// An unknown institution, as `topSuppliers` reports it.
pub fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("institution: institution {id}"))
}
