//! The response cache (`src/cache.rs`): a repeated read is answered again without being
//! worked out again, and never after anything it depends on has changed, for anyone else,
//! or without its access-log entry.

use std::time::Duration;

use chrono::Utc;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, with_demo_returns};

const RETURNS: &str = "query($f: ReturnFilterInput) { returns(first: 100, filter: $f) { totalCount \
    nodes { id institution { key steward { key } } values { metric { code } value } } } }";
const NETWORKS: &str = "{ networks(first: 100) { nodes { key name } } }";

/// Statements the server runs for one request, once the access log's writer has settled.
async fn cost(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> (u64, Value) {
    let settled = || async {
        let mut last = app.statements().await;
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = app.statements().await;
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = settled().await;
    let (status, body) = match token {
        Some(t) => app.post_as(t, query, variables).await,
        None => app.post_graphql(query, variables).await,
    };
    assert_eq!(status, 200, "{body}");
    (settled().await - before, body)
}

/// The access log's entries for `network` of reads of `operation`, once they are written.
async fn logged(app: &TestApp, network: &str, operation: &str, at_least: usize) -> usize {
    let admin = app.token(As::Admin(network), "").await;
    let q = "query($n: ID!) { accessLog(networkId: $n, first: 100) { edges { node { operation subject } } } }";
    let mut n = 0;
    for _ in 0..40 {
        let d = app.query_as(&admin, q, json!({"n": network})).await;
        n = d["accessLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["node"]["operation"] == operation)
            .count();
        if n >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

async fn a_repeated_read_is_given_again_and_logged_again(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("birmingham"), "").await;
    let vars = json!({"f": {"period": "2022/23"}});
    let (first, a) = cost(&app, Some(&admin), RETURNS, vars.clone()).await;
    let (again, b) = cost(&app, Some(&admin), RETURNS, vars.clone()).await;
    assert_eq!(a, b, "the same answer");
    assert!(
        a["data"]["returns"]["totalCount"].as_i64().unwrap() > 0,
        "{a}"
    );
    // Worked out: the token, the data version, the page, its values, the catalogue and the
    // access log. Given again: the token, the data version and the access log.
    assert!(
        again < first && again <= 4,
        "a repeated read ran {again} statements (the first {first})"
    );
    assert_eq!(
        logged(&app, "birmingham", "returns", 2).await,
        2,
        "both reads are in the access log"
    );
}

async fn a_write_by_any_path_ends_kept_answers(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let name = |d: &Value| {
        d["networks"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["key"] == "sandwell")
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let before = name(&app.query(NETWORKS, json!({})).await);
    assert_eq!(name(&app.query(NETWORKS, json!({})).await), before);
    // Through the API.
    let admin = app.token(As::Admin("sandwell"), "").await;
    app.query_as(
        &admin,
        "mutation { updateNetwork(id: \"sandwell\", input: { name: \"Sandwell Anchors\" }) { name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        name(&app.query(NETWORKS, json!({})).await),
        "Sandwell Anchors"
    );
    // Straight into the database, as an operator's own SQL would.
    app.db
        .execute_unprepared("UPDATE networks SET name = 'Sandwell by hand' WHERE key = 'sandwell'")
        .await
        .unwrap();
    assert_eq!(
        name(&app.query(NETWORKS, json!({})).await),
        "Sandwell by hand"
    );
}

fn public_grant(network: &str, expires_in: chrono::Duration) -> Value {
    json!({"i": {
        "networkId": network,
        "grantee": {"public": true},
        "level": "DETAIL",
        "metricGroups": ["SPEND"],
        "fromYear": "2020/21",
        "toYear": "2022/23",
        "expiresAt": (Utc::now() + expires_in).to_rfc3339(),
        "agreement": {
            "reference": "DSA-2026-040",
            "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
            "purpose": "Cache",
            "reviewDate": (Utc::now() + chrono::Duration::days(1)).date_naive().to_string()
        }
    }})
}

async fn grants_that_end_end_kept_answers(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("birmingham"), "").await;
    let count = |d: Value| d["returns"]["totalCount"].as_i64().unwrap();
    let vars = json!({"f": {"period": "2022/23"}});
    assert_eq!(count(app.query(RETURNS, vars.clone()).await), 0);
    // A public grant that expires in a few seconds: the anonymous answer changes with it, and
    // again when it expires, with no write in between.
    let g = app
        .query_as(
            &admin,
            "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
            public_grant("birmingham", chrono::Duration::seconds(4)),
        )
        .await;
    assert!(g["grantAccess"]["id"].is_string(), "{g}");
    let shown = count(app.query(RETURNS, vars.clone()).await);
    assert!(shown > 0, "the grant shows Birmingham's returns");
    assert_eq!(count(app.query(RETURNS, vars.clone()).await), shown);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        count(app.query(RETURNS, vars.clone()).await),
        0,
        "an expired grant shows nothing, kept answer or not"
    );
    // A revoked grant, likewise.
    let g = app
        .query_as(
            &admin,
            "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
            public_grant("birmingham", chrono::Duration::days(30)),
        )
        .await;
    assert!(count(app.query(RETURNS, vars.clone()).await) > 0);
    app.query_as(
        &admin,
        "mutation($id: ID!) { revokeGrant(id: $id) { id } }",
        json!({"id": g["grantAccess"]["id"]}),
    )
    .await;
    assert_eq!(count(app.query(RETURNS, vars.clone()).await), 0);
}

async fn callers_never_share_kept_answers(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let vars = json!({"f": {"period": "2022/23"}});
    let stewards = |d: &Value| -> Vec<String> {
        d["returns"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n["institution"]["steward"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let a = app.token(As::Admin("birmingham"), "").await;
    let b = app.token(As::Admin("wolverhampton"), "").await;
    let first = app.query_as(&a, RETURNS, vars.clone()).await;
    assert!(!stewards(&first).is_empty());
    let other = app.query_as(&b, RETURNS, vars.clone()).await;
    assert_ne!(
        stewards(&first),
        stewards(&other),
        "another network's admin gets their own answer"
    );
    assert_eq!(
        app.post_graphql(RETURNS, vars.clone()).await.1["data"]["returns"]["totalCount"],
        0
    );
    // Narrower scopes on a token of the same network: a token of its own, an answer of its own.
    let narrow = app
        .token(As::Admin("birmingham"), "read:returns metrics:EMISSIONS")
        .await;
    let d = app.query_as(&narrow, RETURNS, vars.clone()).await;
    for n in d["returns"]["nodes"].as_array().unwrap() {
        assert!(
            n["values"].as_array().unwrap().iter().all(|v| {
                v["metric"]["code"]
                    .as_str()
                    .unwrap()
                    .starts_with("emissions")
            }),
            "{n}"
        );
    }
    // A revoked token gets no kept answer.
    let (token, id) = app.issue(As::Admin("birmingham"), "", None).await;
    app.query_as(&token, RETURNS, vars.clone()).await;
    let operator = app.token(As::Operator, "").await;
    app.query_as(
        &operator,
        "mutation($id: ID!) { revokeToken(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let (status, body) = app.post_as(&token, RETURNS, vars.clone()).await;
    assert_eq!(status, 401, "{body}");
}

/// A token's stored row decides its reach: an operator narrowing it in SQL gets the narrower
/// answer at once, kept answer or not (red team 6, F1).
async fn a_changed_token_row_gets_answers_of_its_own(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let (token, id) = app.issue(As::Admin("birmingham"), "", None).await;
    let vars = json!({"f": {"period": "2022/23"}});
    let groups = |d: &Value| -> std::collections::BTreeSet<String> {
        d["returns"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["values"].as_array().unwrap().iter())
            .map(|v| v["metric"]["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let wide = app.query_as(&token, RETURNS, vars.clone()).await;
    assert_eq!(app.query_as(&token, RETURNS, vars.clone()).await, wide);
    let spend = |c: &String| c.contains("spend");
    assert!(groups(&wide).iter().any(|c| !spend(c)), "{wide}");
    let sql = format!("UPDATE tokens SET scopes = 'metrics:spend' WHERE id = '{id}'");
    app.db.execute_unprepared(&sql).await.unwrap();
    let narrow = app.query_as(&token, RETURNS, vars.clone()).await;
    assert!(!groups(&narrow).is_empty(), "{narrow}");
    assert!(
        groups(&narrow).iter().all(spend),
        "the narrowed token still got {:?}",
        groups(&narrow)
    );
}

/// A tracked table that lost its trigger (a table rebuilt by hand) is found, so the server
/// starts with the cache off (red team 6, F4).
async fn a_table_without_its_trigger_is_found(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    assert!(
        anchorfed::cache::untracked_tables(&app.db)
            .await
            .unwrap()
            .is_empty()
    );
    let drop = match backend {
        Backend::Postgres => "DROP TRIGGER networks_data_version ON networks",
        Backend::Sqlite => "DROP TRIGGER networks_data_version_update",
    };
    app.db.execute_unprepared(drop).await.unwrap();
    if backend == Backend::Sqlite {
        // A rebuilt table has none of its three.
        for op in ["insert", "delete"] {
            app.db
                .execute_unprepared(&format!("DROP TRIGGER networks_data_version_{op}"))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        anchorfed::cache::untracked_tables(&app.db).await.unwrap(),
        vec!["networks"]
    );
}

/// Every table but those the migration names untracked moves the data version.
async fn every_table_readers_see_moves_the_data_version(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let (tables, triggers) = match backend {
        Backend::Postgres => (
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()",
            "SELECT DISTINCT event_object_table AS name FROM information_schema.triggers \
             WHERE trigger_name LIKE '%_data_version'",
        ),
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            "SELECT DISTINCT tbl_name AS name FROM sqlite_master WHERE type = 'trigger' \
             AND name LIKE '%_data_version_%'",
        ),
    };
    let names = |sql: &'static str| {
        let db = app.db.clone();
        async move {
            let rows = db
                .query_all_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap();
            let mut v: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String>("", "name").unwrap())
                .collect();
            v.sort();
            v
        }
    };
    let all = names(tables).await;
    let tracked = names(triggers).await;
    let untracked = migration::m20261130_000012_data_version::UNTRACKED;
    let expected: Vec<String> = all
        .iter()
        .filter(|t| !untracked.contains(&t.as_str()))
        .cloned()
        .collect();
    assert_eq!(tracked, expected, "tables without the data-version trigger");
}

both_databases!(
    a_repeated_read_is_given_again_and_logged_again,
    a_write_by_any_path_ends_kept_answers,
    grants_that_end_end_kept_answers,
    callers_never_share_kept_answers,
    every_table_readers_see_moves_the_data_version,
    a_changed_token_row_gets_answers_of_its_own,
    a_table_without_its_trigger_is_found,
);
