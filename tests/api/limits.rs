//! Issue 12's attacks, each played against the real server: every request has a bounded cost.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_with};

/// `levels` fragments, each spreading the next twice: 2^levels `__typename`s once expanded.
fn fragment_explosion(levels: usize) -> String {
    let mut q = String::from("query { ...F0 }");
    for i in 0..levels {
        q += &format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1);
    }
    q += &format!(" fragment F{levels} on Query {{ __typename }}");
    q
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// A 40-level fragment explosion (2^40 fields expanded) is refused before it is expanded,
/// and the server goes on answering.
async fn fragment_explosion_is_refused(backend: Backend) {
    let app = spawn_with(backend, false, |_| {}).await;
    let (status, body) = app.post_graphql(&fragment_explosion(40), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");
    // Two of them at once, as in the issue, and the health check still answers.
    let bomb = fragment_explosion(40);
    let (a, b, health) = tokio::join!(
        app.post_graphql(&bomb, json!({})),
        app.post_graphql(&bomb, json!({})),
        app.get("/healthz"),
    );
    assert_eq!((a.0, b.0, health.status().as_u16()), (400, 400, 200));
    // A fragment that spreads itself is the client's mistake, named.
    let (status, body) = app
        .post_graphql(
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    // A modest explosion within the limits still runs.
    let d = app.query(&fragment_explosion(3), json!({})).await;
    assert_eq!(d["__typename"], "Query");
}

const METRICS: [&str; 15] = [
    "procurement_spend_total",
    "procurement_spend_local",
    "procurement_spend_region",
    "spend_sme",
    "spend_vcse",
    "local_spend_share",
    "region_spend_share",
    "headcount",
    "fte",
    "apprentices",
    "living_wage_employees",
    "land_owned",
    "emissions_scope1",
    "emissions_scope2",
    "employees_by_residence",
];

/// One operation of the batch: `fields` aliased `impact`s of `years` years and all
/// 15 metrics, grouped by NETWORK, SECTOR and DISTRICT.
fn impact_operation(fields: usize, years: usize, group_by: &str) -> String {
    let years: Vec<String> = (0..years)
        .map(|i| format!("\"{}/{:02}\"", 2003 + i, (4 + i) % 100))
        .collect();
    let metrics: Vec<String> = METRICS.iter().map(|m| format!("\"{m}\"")).collect();
    let input = format!(
        "{{ region: \"E47000007\", years: [{}], metrics: [{}], groupBy: [{group_by}] }}",
        years.join(", "),
        metrics.join(", ")
    );
    let body: String = (0..fields)
        .map(|i| {
            format!(
                "i{i}: impact(input: {input}) {{ withheldNetworks {{ key }} cells {{ metric {{ code }} year network {{ key }} sector district {{ code }} value suppressed contributors eligible coverage }} }} "
            )
        })
        .collect();
    format!("{{ {body} }}")
}

async fn post_raw(app: &TestApp, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

/// The 19 KB request: a batch of 10 operations, each 20 aliased `impact`s of 20 years
/// x 15 metrics by NETWORK, SECTOR and DISTRICT. Priced by its cells, it is refused whole
/// before any of it runs; so is one such operation alone, and a batch of cheap operations
/// whose sum passes the limit.
async fn unpriced_impact_is_priced(backend: Backend) {
    let app = spawn_with(backend, true, |_| {}).await;
    let op = json!({"query": impact_operation(20, 20, "NETWORK, SECTOR, DISTRICT")});
    let batch = Value::Array(vec![op.clone(); 10]);
    let (status, _, body) = post_raw(&app, &batch).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    let (status, _, body) = post_raw(&app, &op).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("the limit is 20000"), "{message}");
    // One modest impact runs; ten of a size that fits alone do not fit together.
    let modest = json!({"query": impact_operation(1, 3, "NETWORK")});
    let (status, _, body) = post_raw(&app, &modest).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["i0"]["cells"].is_array(), "{body}");
    let fits_alone = json!({"query": impact_operation(1, 4, "NETWORK")});
    let (status, _, body) = post_raw(&app, &fits_alone).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post_raw(&app, &Value::Array(vec![fits_alone; 10])).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("together"),
        "{body}"
    );
}

const NETWORKS: &str = "{ networks(first: 100) { edges { node { key } } } }";

/// Each caller spends from its own budget of cost: an anonymous caller by its address (and
/// `X-Forwarded-For` only from a trusted proxy), a token by itself.
async fn callers_are_rate_limited_by_cost(backend: Backend) {
    let app = spawn_with(backend, true, |s| {
        s.limits.complexity = 700;
        s.rate_limit.enabled = true;
        s.rate_limit.anonymous_burst = 700;
        s.rate_limit.anonymous_per_minute = 60;
        s.rate_limit.token_burst = 700;
        s.rate_limit.token_per_minute = 60;
    })
    .await;
    let q = json!({"query": NETWORKS});
    // 302 each: two fit in 700, the third does not.
    let (status, headers, body) = post_raw(&app, &q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["ratelimit-limit"], "700");
    // 1 for its 52 bytes of document, 301 for its fields.
    assert_eq!(headers["ratelimit-remaining"], "398");
    assert!(headers.contains_key("ratelimit-reset"));
    assert_eq!(post_raw(&app, &q).await.0, 200);
    let (status, headers, body) = post_raw(&app, &q).await;
    assert_eq!((status, code(&body)), (429, Some("RATE_LIMITED")), "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=301).contains(&retry), "{retry}");
    assert_eq!(headers["ratelimit-remaining"], "0");
    // X-Forwarded-For from an untrusted peer changes nothing.
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    // A token has its own budget.
    let token = app.token(As::Operator, "").await;
    let (status, body) = app.post_as(&token, NETWORKS, json!({})).await;
    assert_eq!(status, 200, "{body}");
}

async fn forwarded_for_is_believed_from_a_trusted_proxy(backend: Backend) {
    let app = spawn_with(backend, true, |s| {
        s.limits.complexity = 400;
        s.rate_limit.enabled = true;
        s.rate_limit.anonymous_burst = 400;
        s.rate_limit.anonymous_per_minute = 60;
        s.rate_limit.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let from = |client: &'static str| {
        app.client
            .post(format!("{}/graphql", app.address))
            .header("x-forwarded-for", client)
            .json(&json!({"query": NETWORKS}))
            .send()
    };
    assert_eq!(from("198.51.100.7").await.unwrap().status().as_u16(), 200);
    assert_eq!(from("198.51.100.7").await.unwrap().status().as_u16(), 429);
    // Behind the proxy, another client has its own bucket.
    assert_eq!(from("198.51.100.8").await.unwrap().status().as_u16(), 200);
}

/// With pricing out of the way (a complexity limit no request reaches), the batch
/// runs until the request time limit stops it, and the server answers the next request.
async fn the_time_limit_stops_a_request(backend: Backend) {
    let app = spawn_with(backend, true, |s| {
        s.limits.complexity = usize::MAX / 2;
        s.limits.request_timeout_seconds = 1;
    })
    .await;
    anchorfed::ingest::demo::load(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    let op = json!({"query": impact_operation(20, 20, "NETWORK, SECTOR, DISTRICT")});
    let (status, _, body) = post_raw(&app, &Value::Array(vec![op; 10])).await;
    assert_eq!((status, code(&body)), (503, Some("TIMEOUT")), "{body}");
    // The server goes on answering; on a new connection, since the one the stopped request
    // used may be closing (a pooled connection reused in that instant fails on the client).
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", app.address))
        .json(&json!({"query": "{ regions { code } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The answer size is bounded; a query over it is refused, not sent.
async fn answers_are_bounded(backend: Backend) {
    let app = spawn_with(backend, true, |s| s.limits.response_bytes = 300).await;
    let (status, body) = app
        .post_graphql(
            "{ regions { code name districts { code name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    app.query("{ regions { code } }", json!({})).await;
}

/// Introspection can be off for anonymous callers and on for tokens.
async fn introspection_for_tokens_only(backend: Backend) {
    let app = spawn_with(backend, false, |s| s.introspection_anonymous = false).await;
    let q = "{ __schema { queryType { name } } }";
    let (_, body) = app.post_graphql(q, json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    let token = app.token(As::Operator, "").await;
    let d = app.query_as(&token, q, json!({})).await;
    assert_eq!(d["__schema"]["queryType"]["name"], "Query");
}

/// `/metrics` names clients' operations: off by default, behind a token on the main address,
/// or alone on an address of its own.
async fn metrics_are_not_public(backend: Backend) {
    let off = spawn_with(backend, false, |s| {
        s.metrics = anchorfed::config::MetricsSettings::default();
    })
    .await;
    assert_eq!(off.get("/metrics").await.status().as_u16(), 404);

    let tokened = spawn_with(backend, false, |_| {}).await;
    assert_eq!(tokened.get("/metrics").await.status().as_u16(), 401);
    let wrong = tokened
        .client
        .get(format!("{}/metrics", tokened.address))
        .bearer_auth("not-the-metrics-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(
        tokened
            .metrics()
            .await
            .contains("anchorfed_db_statements_total")
    );

    let separate = spawn_with(backend, false, |s| {
        s.metrics = anchorfed::config::MetricsSettings {
            enabled: true,
            bind: Some("127.0.0.1:0".parse().unwrap()),
            token: None,
        };
    })
    .await;
    assert_eq!(separate.get("/metrics").await.status().as_u16(), 404);
    let own = separate.metrics_address.clone().unwrap();
    let r = separate
        .client
        .get(format!("{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = separate
        .client
        .post(format!("{own}/graphql"))
        .json(&json!({"query": "{ regions { code } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// Registered operations run by id; with `anonymous_only`, callers without a token run
/// nothing else, while tokens still send their own documents.
async fn trusted_documents(backend: Backend) {
    let registry = tempfile::tempdir().unwrap();
    let file = registry.path().join("trusted.json");
    let regions = "query Regions { regions { code } }";
    let by_hash = anchorfed::server::documents::register(&file, regions, None).unwrap();
    let named = anchorfed::server::documents::register(
        &file,
        "query Network($id: ID!) { network(id: $id) { key } }",
        Some("dashboard-network"),
    )
    .unwrap();
    let app = spawn_with(backend, true, |s| {
        s.trusted_documents.file = Some(file.clone());
        s.trusted_documents.anonymous_only = true;
    })
    .await;
    let (status, _, body) = post_raw(&app, &json!({"documentId": by_hash})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["regions"].is_array(), "{body}");
    let (status, _, body) = post_raw(
        &app,
        &json!({"documentId": named, "variables": {"id": "sandwell"}}),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["network"]["key"]),
        (200, &json!("sandwell")),
        "{body}"
    );
    // By GET too.
    let r = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("documentId", by_hash.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // An unknown id, both at once, and a document of the caller's own.
    let (status, _, body) = post_raw(&app, &json!({"documentId": "sha256:00"})).await;
    assert_eq!((status, code(&body)), (400, Some("NOT_FOUND")), "{body}");
    let (status, _, body) = post_raw(&app, &json!({"documentId": by_hash, "query": regions})).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let (status, _, body) = post_raw(&app, &json!({"query": regions})).await;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    // A token sends what it likes.
    let token = app.token(As::Operator, "").await;
    let d = app.query_as(&token, regions, json!({})).await;
    assert!(d["regions"].is_array());
}

both_databases!(
    the_time_limit_stops_a_request,
    trusted_documents,
    metrics_are_not_public,
    fragment_explosion_is_refused,
    unpriced_impact_is_priced,
    callers_are_rate_limited_by_cost,
    forwarded_for_is_believed_from_a_trusted_proxy,
    answers_are_bounded,
    introspection_for_tokens_only,
);

/// On PostgreSQL every statement of the serving pool is bounded by the request time limit,
/// so a statement whose request was dropped stops too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_are_bounded_by_the_request_time_limit() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_with(Backend::Postgres, false, |s| {
        s.limits.request_timeout_seconds = 7;
    })
    .await;
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SHOW statement_timeout",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "7s");
}
