//! Aggregates over stored returns, computed in SQL. Sums are of 64-bit integers in minor units:
//! exact on SQLite and PostgreSQL alike, and an overflow is an error (SQLite's `SUM` raises
//! one; PostgreSQL's `numeric` sum refuses the cast back to `bigint`), never a wrap.

pub mod impact;
pub mod release;
pub mod spend;

use sea_orm::{ConnectionTrait, FromQueryResult};

use crate::error::{ApiError, ApiResult};
use crate::sql::Sql;

#[derive(FromQueryResult)]
struct Total {
    total: Option<i64>,
    n: i64,
}

/// The exact sum of a metric's values (no breakdown filter) over the given returns, with how
/// many values were summed. The caller decides which returns (a statement selecting their
/// ids); this only adds them up.
pub async fn exact_sum<C: ConnectionTrait>(
    db: &C,
    metric: &str,
    return_ids: Sql,
) -> ApiResult<(Option<i64>, i64)> {
    let statement = Sql::format(
        "SELECT CAST(SUM(v.value) AS BIGINT) AS total, COUNT(v.value) AS n FROM return_values v \
         WHERE v.metric_code = {} AND v.return_id IN ({})",
        [Sql::value(metric), return_ids],
    );
    let row = Total::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("overflow") || text.contains("out of range") {
                ApiError::Conflict(format!(
                    "the sum of {metric} is larger than 64 bits can hold"
                ))
            } else {
                e.into()
            }
        })?;
    Ok(row.map(|t| (t.total, t.n)).unwrap_or((None, 0)))
}
