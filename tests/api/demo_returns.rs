//! The synthetic demo returns validate, load once, and reproduce the guide's 2022/23 headline.

use sea_orm::{ConnectionTrait, Statement};

use crate::both_databases;
use crate::helpers::{Backend, spawn_app};

async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Sums and reporter counts over the 2022/23 returns, computed naively in SQL here.
async fn headline(db: &sea_orm::DatabaseConnection, metric: &str) -> (i64, i64) {
    let sum = scalar(db, &format!(
        "SELECT CAST(COALESCE(SUM(v.value), 0) AS BIGINT) FROM return_values v JOIN returns r ON r.id = v.return_id \
         WHERE r.period = '2022/23' AND v.metric_code = '{metric}' AND v.breakdown = ''"
    ))
    .await;
    let n = scalar(db, &format!(
        "SELECT COUNT(*) FROM return_values v JOIN returns r ON r.id = v.return_id \
         WHERE r.period = '2022/23' AND v.metric_code = '{metric}' AND v.breakdown = '' AND v.value IS NOT NULL"
    ))
    .await;
    (sum, n)
}

async fn synthetic_returns_reproduce_the_headline(backend: Backend) {
    let app = spawn_app(backend).await;
    let written = anchorfed::ingest::demo::load(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    assert!(written > 100, "{written}");
    assert_eq!(
        anchorfed::ingest::demo::load(&app.db)
            .await
            .unwrap_or_else(|e| panic!("{}", e.message())),
        0,
        "loading twice writes once"
    );
    let institutions = scalar(&app.db, "SELECT COUNT(*) FROM institutions").await;
    let (spend, spenders) = headline(&app.db, "procurement_spend_total").await;
    assert_eq!(spend, 10_200_000_000 * 100, "£10.2bn");
    let pct = |n: i64| (n * 100) as f64 / institutions as f64;
    assert!(
        (74.0..=78.0).contains(&pct(spenders)),
        "{spenders} of {institutions}"
    );
    let (region, _) = headline(&app.db, "procurement_spend_region").await;
    assert_eq!(region, 3_700_000_000 * 100, "£3.7bn in the region");
    let (employees, employers) = headline(&app.db, "headcount").await;
    assert_eq!(employees, 186_726);
    assert!((83.0..=87.0).contains(&pct(employers)), "{employers}");
    let (land, landholders) = headline(&app.db, "land_owned").await;
    assert_eq!(land, 722_400, "7,224 hectares");
    assert!((38.0..=42.0).contains(&pct(landholders)), "{landholders}");
    let (s1, emitters) = headline(&app.db, "emissions_scope1").await;
    let (s2, _) = headline(&app.db, "emissions_scope2").await;
    assert_eq!(s1 + s2, 579_390_062);
    assert!((40.0..=44.0).contains(&pct(emitters)), "{emitters}");
    // Every synthetic return says so.
    let unmarked = scalar(
        &app.db,
        "SELECT COUNT(*) FROM returns WHERE notes NOT LIKE 'SYNTHETIC%'",
    )
    .await;
    assert_eq!(unmarked, 0);
}

both_databases!(synthetic_returns_reproduce_the_headline);
