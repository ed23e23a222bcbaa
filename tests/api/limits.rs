//! Issue 12's attacks, each played against the real server: every request has a bounded cost.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, spawn_with};

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

both_databases!(fragment_explosion_is_refused);
