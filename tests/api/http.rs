//! GraphQL over HTTP: media types, status codes, methods and limits, by attack.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, spawn_app, spawn_with};

fn gql_json() -> &'static str {
    "application/graphql-response+json"
}

async fn get_mutation_is_405(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[(
            "query",
            "mutation { createOrganisation(input: {key: \"x\", name: \"X\"}) { id } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_none());
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // A named mutation, selected with or without operationName, is refused just the same.
    for params in [
        vec![("query", "mutation M { x }")],
        vec![
            ("query", "query Q { regions { code } } mutation M { x }"),
            ("operationName", "M"),
        ],
    ] {
        let r = app
            .client
            .get(format!("{}/graphql", app.address))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{params:?}");
    }

    // A query by GET is fine.
    let r = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[
            (
                "query",
                "query Q($c: GssCode!) { region(code: $c) { name } }",
            ),
            ("variables", "{\"c\":\"E47000007\"}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(gql_json())
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["data"]["region"]["name"],
        "West Midlands Combined Authority"
    );

    // Other methods are refused with Allow.
    let r = app
        .client
        .put(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

async fn malformed_and_invalid_queries_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    // Parse failure.
    let (status, body) = app.post_graphql("{ networks(first: ", json!({})).await;
    assert_eq!(status, 400);
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Validation failure: an unknown field.
    let (status, body) = app.post_graphql("{ nosuchfield }", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Variable coercion failure.
    let (status, body) = app
        .post_graphql(
            "query($c: GssCode!) { region(code: $c) { name } }",
            json!({"c": "nope"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // With application/json the specification keeps 200 for the same failure.
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("accept", "application/json")
        .json(&json!({"query": "{ nosuchfield }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // A field error in an otherwise valid query is 200 with data.
    let (status, body) = app
        .post_graphql(
            "{ networks(first: 0) { totalCount } regions { code } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

async fn bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("{}/graphql", app.address);
    // Not JSON.
    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Unsupported body type.
    let r = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{ regions { code } }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // No query.
    let r = app
        .client
        .post(&url)
        .json(&json!({"variables": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // An Accept the server cannot satisfy.
    let r = app
        .client
        .post(&url)
        .header("accept", "text/html")
        .json(&json!({"query": "{ regions { code } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
}

async fn limits_refuse_abuse(backend: Backend) {
    let app = spawn_with(backend, false, |s| {
        s.limits.body_bytes = 4096;
        s.limits.batch = 3;
    })
    .await;
    let url = format!("{}/graphql", app.address);
    // Oversize body.
    let big = format!("{{ regions {{ code }} }} #{}", "x".repeat(5000));
    let r = app
        .client
        .post(&url)
        .json(&json!({"query": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Too many aliases.
    let aliases: String = (0..31)
        .map(|i| format!("a{i}: regions {{ code }} "))
        .collect();
    let (status, body) = app
        .post_graphql(&format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    // Too many root fields (through a fragment, to make sure they are followed).
    let roots: String = (0..21).map(|_| "regions { code } ").collect();
    let (status, body) = app
        .post_graphql(
            &format!("{{ ...F }} fragment F on Query {{ {roots} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    // Too deep.
    let mut deep = "__typename".to_owned();
    for _ in 0..15 {
        deep = format!("members(first: 1) {{ edges {{ node {{ steward {{ {deep} }} }} }} }}");
    }
    let (status, body) = app
        .post_graphql(
            &format!("{{ networks(first: 1) {{ edges {{ node {{ {deep} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    // Too complex: three nested pages of 100.
    let q = "{ networks(first: 100) { edges { node { members(first: 100) { edges { node { steward { stewardOf(first: 100) { totalCount } } } } } } } } }";
    let (status, body) = app.post_graphql(q, json!({})).await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("QUERY_TOO_COMPLEX")),
        "{body}"
    );
    // Batches: within the limit they run, over it they are refused.
    let one = json!({"query": "{ regions { code } }"});
    let r = app
        .client
        .post(&url)
        .json(&json!([one, one]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
    let r = app
        .client
        .post(&url)
        .json(&json!([one, one, one, one]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

async fn health_ready_metrics_graphiql(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
    let page = app.get("/").await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
    app.query("query RegionsForMetrics { regions { code } }", json!({}))
        .await;
    let m = app.metrics().await;
    assert!(
        m.contains(
            "anchorfed_graphql_requests_total{operation=\"RegionsForMetrics\",outcome=\"ok\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "anchorfed_graphql_request_duration_seconds_bucket{operation=\"RegionsForMetrics\""
        ),
        "{m}"
    );
    // readiness follows the database.
    app.db.clone().close().await.unwrap();
    assert_eq!(app.get("/readyz").await.status().as_u16(), 503);
}

async fn introspection_and_graphiql_can_be_switched_off(backend: Backend) {
    let app = spawn_with(backend, false, |s| {
        s.introspection = false;
        s.graphiql = false;
    })
    .await;
    assert_eq!(app.get("/").await.status().as_u16(), 404);
    let (_, body) = app
        .post_graphql("{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection must answer nothing: {body}"
    );
    // Ordinary queries still work.
    app.query("{ regions { code } }", json!({})).await;
}

/// GraphiQL's own introspection query (graphql-js 16's `getIntrospectionQuery`, which reaches
/// depth 13 through an argument's type) answers within the default limits, anonymously, so
/// the schema explorer of the README's first command loads.
async fn graphiql_introspection_answers(backend: Backend) {
    let app = spawn_with(backend, false, |_| {}).await;
    let query = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } \
        subscriptionType { name } types { ...FullType } directives { name description locations \
        args { ...InputValue } } } } \
      fragment FullType on __Type { kind name description fields(includeDeprecated: true) { \
        name description args { ...InputValue } type { ...TypeRef } isDeprecated \
        deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } \
        enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } \
        possibleTypes { ...TypeRef } } \
      fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } \
      fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { \
        kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name \
        } } } } } } } }";
    let data = app.query(query, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert!(data["__schema"]["types"].as_array().unwrap().len() > 50);
}

/// An internal error tells the client nothing of its cause, but names the request, so an
/// operator can find the cause in the log.
async fn internal_errors_name_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.db
        .execute_unprepared(
            "UPDATE institutions SET sector = 'NOT_A_SECTOR' WHERE key = 'sandwell-college'",
        )
        .await
        .unwrap();
    let q = "{ institution(id: \"sandwell-college\") { name sector } }";
    let (code, body) = app.error_code(q, json!({})).await;
    assert_eq!(code, "INTERNAL", "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["message"], "internal error", "{body}");
    assert!(!body.to_string().contains("NOT_A_SECTOR"), "{body}");
    let id = error["extensions"]["requestId"]
        .as_str()
        .unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{body}");
    // Each request has its own id; errors the client caused carry none.
    let (_, again) = app.error_code(q, json!({})).await;
    assert_ne!(again["errors"][0]["extensions"]["requestId"], id, "{again}");
    let (_, bad) = app.error_code("{ nosuchfield }", json!({})).await;
    assert!(
        bad["errors"][0]["extensions"].get("requestId").is_none(),
        "{bad}"
    );
}

both_databases!(
    graphiql_introspection_answers,
    internal_errors_name_the_request,
    get_mutation_is_405,
    malformed_and_invalid_queries_are_4xx,
    bad_requests,
    limits_refuse_abuse,
    health_ready_metrics_graphiql,
    introspection_and_graphiql_can_be_switched_off,
);
