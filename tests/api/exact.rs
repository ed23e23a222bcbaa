//! Numbers are exact: a sum over a million values is right to the penny on both databases,
//! and a sum past 64 bits is an error, never a wrap.

use anchorfed::sql::Sql;
use sea_orm::{ConnectionTrait, Statement};

use crate::both_databases;
use crate::helpers::{Backend, spawn_with};

const N: i64 = 1_000_000;

fn value(x: i64) -> i64 {
    // Amounts up to about £1m with every penny digit in play.
    (x * 7919) % 100_000_007 + 1
}

async fn a_million_values_sum_exactly(backend: Backend) {
    // Loading a million rows is setup, not a request: no request's statement timeout on it
    // (on a loaded machine PostgreSQL's foreign-key checks took longer than one).
    let app = spawn_with(backend, true, |s| s.limits.request_timeout_seconds = 600).await;
    let db = &app.db;
    let b = db.get_database_backend();
    db.execute_raw(Statement::from_string(
        b,
        "INSERT INTO returns (institution_id, period, period_start, period_end, version, status, submitted_at, submitted_by) \
         SELECT id, '2022/23', '2022-04-01', '2023-03-31', 1, 'SUBMITTED', '2023-06-01T00:00:00Z', 'test' FROM institutions WHERE key = 'bham-council'",
    ))
    .await
    .unwrap();
    db.execute_raw(Statement::from_string(
        b,
        format!(
            "WITH RECURSIVE n(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM n WHERE x < {N}) \
             INSERT INTO return_values (return_id, metric_code, breakdown, value, not_reported) \
             SELECT (SELECT MAX(id) FROM returns), 'procurement_spend_total', 'row' || x, (x * 7919) % 100000007 + 1, false FROM n"
        ),
    ))
    .await
    .unwrap();
    let expected: i64 = (1..=N).map(value).sum();
    let (total, n) = anchorfed::analytics::exact_sum(
        db,
        "procurement_spend_total",
        Sql::raw("SELECT id FROM returns"),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.message()));
    assert_eq!(n, N);
    assert_eq!(total, Some(expected), "exact to the penny");
    assert_eq!(
        anchorfed::domain::quantity::from_minor_units(expected, 2),
        format!("{}.{:02}", expected / 100, expected % 100)
    );

    // Two values that together pass i64::MAX: an error, not a wrapped negative.
    db.execute_raw(Statement::from_string(
        b,
        format!(
            "INSERT INTO return_values (return_id, metric_code, breakdown, value, not_reported) VALUES \
             ((SELECT MAX(id) FROM returns), 'land_owned', 'a', {max}, false), \
             ((SELECT MAX(id) FROM returns), 'land_owned', 'b', {max}, false)",
            max = i64::MAX
        ),
    ))
    .await
    .unwrap();
    let r =
        anchorfed::analytics::exact_sum(db, "land_owned", Sql::raw("SELECT id FROM returns")).await;
    assert!(
        matches!(r, Err(anchorfed::error::ApiError::Conflict(_))),
        "overflow must be an error"
    );
}

both_databases!(a_million_values_sum_exactly);
