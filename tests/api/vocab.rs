//! A stored value outside its vocabulary is an internal error, never a silent default.

use anchorfed::error::ApiError;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::both_databases;
use crate::helpers::{Backend, spawn_app};

async fn corrupt(app: &crate::helpers::TestApp, sql: &str) {
    let db = &app.db;
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
}

fn internal_message(r: Result<impl std::fmt::Debug, ApiError>) -> String {
    match r {
        Err(ApiError::Internal(e)) => format!("{e:#}"),
        other => panic!("expected an internal error, got {other:?}"),
    }
}

async fn a_bad_metric_row_is_named(backend: Backend) {
    let app = spawn_app(backend).await;
    corrupt(
        &app,
        "UPDATE metrics SET scale = -1 WHERE code = 'headcount'",
    )
    .await;
    let e = internal_message(anchorfed::catalogue::metrics(&app.db).await);
    assert!(
        e.contains("metrics row headcount") && e.contains("scale"),
        "{e}"
    );
    let (code, _) = app
        .error_code("{ metrics { code scale } }", json!({}))
        .await;
    assert_eq!(code, "INTERNAL");

    corrupt(
        &app,
        "UPDATE metrics SET scale = 0, aggregation = 'MEAN' WHERE code = 'headcount'",
    )
    .await;
    let e = internal_message(anchorfed::catalogue::metrics(&app.db).await);
    assert!(e.contains("MEAN"), "{e}");
}

async fn an_unknown_membership_status_is_internal(backend: Backend) {
    let app = spawn_app(backend).await;
    let q = "{ institution(id: \"bham-council\") { memberships { status } } }";
    let before = app.query(q, json!({})).await;
    assert_eq!(before["institution"]["memberships"][0]["status"], "ACTIVE");
    assert!(
        anchorfed::integrity::stray_vocabulary(&app.db)
            .await
            .unwrap_or_else(|e| panic!("{}", e.message()))
            .is_empty()
    );
    corrupt(
        &app,
        "UPDATE memberships SET status = 'LAPSED' \
         WHERE institution_id = (SELECT id FROM institutions WHERE key = 'bham-council')",
    )
    .await;
    let (code, body) = app.error_code(q, json!({})).await;
    assert_eq!(code, "INTERNAL", "{body}");
    // The scan names the row the read could not.
    let strays = anchorfed::integrity::stray_vocabulary(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    assert!(!strays.is_empty());
    for s in &strays {
        assert_eq!(
            (s.table, s.column, s.value.as_str()),
            ("memberships", "status", "LAPSED")
        );
        assert!(
            s.to_string()
                .contains(&format!("memberships row {}", s.row)),
            "{s}"
        );
    }
}

both_databases!(
    a_bad_metric_row_is_named,
    an_unknown_membership_status_is_internal
);
