//! What each read of `scripts/bench reads` costs in SQL statements, counted by the server
//! itself (`anchorfed_db_statements_total`): the same for a small answer as for a large one,
//! so no read runs a statement per object it returns (issue 13). The network admin's page of
//! returns is in `returns.rs`.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, with_demo_returns};

const WMCA: &str = "E47000007";
const ORGANISATION: &str = "cost-research";

/// The statements the server runs for each query in turn, once the access log's writer has
/// settled before and after it, and the answers' data; each answer must hold data (no error).
/// Each query must be new to the server: a repeated one is answered from the response cache.
async fn costs(
    app: &TestApp,
    token: Option<&str>,
    queries: &[(String, Value)],
) -> (Vec<u64>, Vec<Value>) {
    let settled = || async {
        let mut last = app.statements().await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let now = app.statements().await;
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let mut out = vec![];
    let mut answers = vec![];
    for (query, variables) in queries {
        let before = settled().await;
        let (status, body) = match token {
            Some(t) => app.post_as(t, query, variables.clone()).await,
            None => app.post_graphql(query, variables.clone()).await,
        };
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{query}: {body}");
        out.push(settled().await - before);
        answers.push(body["data"].clone());
    }
    (out, answers)
}

/// A query as a probe, named so that the server does not take it for the measured one.
fn probe(query: &str) -> String {
    match query.strip_prefix("query(") {
        Some(rest) => format!("query Probe({rest}"),
        None => format!("query Probe {query}"),
    }
}

/// The counts may differ by one (the access log's writer takes one batch or two), no more, and
/// stay under `most`.
fn flat(what: &str, backend: Backend, sizes: &[usize], counts: &[u64], most: u64) {
    let (lo, hi) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(
        hi - lo <= 1,
        "{what}: statements grew with the answer: {counts:?} for {sizes:?}"
    );
    assert!(
        hi <= most,
        "{what}: {counts:?} statements, more than {most}"
    );
    println!("{what} ({backend:?}): {counts:?} statements for answers of {sizes:?}");
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// (a) networks, key and name; (b) networks with their members, sector and home district.
async fn directory_pages_cost_the_same_at_any_size(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let all = len(&app
        .query("{ networks(first: 100) { nodes { key } } }", json!({}))
        .await["networks"]["nodes"]);
    assert!(all >= 4, "{all} networks");
    let sizes = [1, all / 2, all];
    let a: Vec<(String, Value)> = sizes
        .iter()
        .map(|n| {
            (
                format!("{{ networks(first: {n}) {{ nodes {{ key name }} }} }}"),
                json!({}),
            )
        })
        .collect();
    let (counts, _) = costs(&app, None, &a).await;
    flat("(a) networks", backend, &sizes, &counts, 3);

    let b: Vec<(String, Value)> = sizes
        .iter()
        .map(|n| {
            (
                format!(
                    "{{ networks(first: {n}) {{ nodes {{ key name members(first: 50) {{ nodes {{ \
                     key name sector homeDistrict {{ code name }} }} }} }} }} }}"
                ),
                json!({}),
            )
        })
        .collect();
    let (counts, answers) = costs(&app, None, &b).await;
    let members: usize = answers[2]["networks"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| len(&n["members"]["nodes"]))
        .sum();
    assert!(members > all, "{members} members across {all} networks");
    flat("(b) networks with members", backend, &sizes, &counts, 6);
}

/// (f) a page of institutions with home district, steward, identifiers and memberships.
async fn an_institutions_page_costs_the_same_at_any_size(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let q = |n: usize| {
        format!(
            "{{ institutions(first: {n}) {{ nodes {{ key name sector homeDistrict {{ code name }} \
             steward {{ key }} identifiers {{ scheme value }} memberships {{ from to status network {{ key }} }} }} }} }}"
        )
    };
    let all = len(&app.query(&probe(&q(100)), json!({})).await["institutions"]["nodes"]);
    assert!(all >= 20, "{all} institutions");
    let sizes = [1, all / 2, all];
    let queries: Vec<(String, Value)> = sizes.iter().map(|n| (q(*n), json!({}))).collect();
    let (counts, _) = costs(&app, None, &queries).await;
    flat("(f) institutions page", backend, &sizes, &counts, 9);
}

fn grant(network: &str, grantee: Value) -> Value {
    json!({"i": {
        "networkId": network,
        "grantee": grantee,
        "level": "DETAIL",
        "metricGroups": ["SPEND", "EMPLOYMENT", "LAND_AND_ASSETS", "EMISSIONS"],
        "fromYear": "2020/21",
        "toYear": "2022/23",
        "expiresAt": (Utc::now() + Duration::days(90)).to_rfc3339(),
        "agreement": {
            "reference": "DSA-2026-031",
            "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
            "purpose": "Read costs",
            "reviewDate": (Utc::now() + Duration::days(60)).date_naive().to_string()
        }
    }})
}

/// (d) a researcher's and (e) an analyst's returns under grants from three networks.
async fn returns_under_grants_cost_the_same_at_any_size(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let op = app.token(As::Operator, "").await;
    app.query_as(
        &op,
        "mutation($k: String!) { createOrganisation(input: {key: $k, name: \"Costs\"}) { id } }",
        json!({ "k": ORGANISATION }),
    )
    .await;
    for network in ["birmingham", "sandwell", "wolverhampton"] {
        let admin = app.token(As::Admin(network), "").await;
        for grantee in [
            json!({"organisation": ORGANISATION}),
            json!({"region": WMCA}),
        ] {
            app.query_as(
                &admin,
                "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
                grant(network, grantee),
            )
            .await;
        }
    }
    let q = |n: usize| {
        (
            format!(
                "query($f: ReturnFilterInput) {{ returns(filter: $f, first: {n}) {{ nodes {{ id period \
                 version status institution {{ key }} values {{ metric {{ code }} value notReported breakdown }} }} }} }}"
            ),
            json!({"f": {"period": "2022/23"}}),
        )
    };
    for (what, who) in [
        ("(d) a researcher's returns", As::Researcher(ORGANISATION)),
        ("(e) an analyst's returns", As::Analyst(WMCA)),
    ] {
        let token = app.token(who, "").await;
        let d = app.query_as(&token, &probe(&q(100).0), q(100).1).await;
        let all = len(&d["returns"]["nodes"]);
        assert!(
            all >= 6,
            "{what}: {all} returns under three networks' grants"
        );
        let values: usize = d["returns"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| len(&r["values"]))
            .sum();
        assert!(values > all, "{what}: {values} values");
        let sizes = [1, all / 2, all];
        let queries: Vec<(String, Value)> = sizes.iter().map(|n| q(*n)).collect();
        let (counts, _) = costs(&app, Some(&token), &queries).await;
        flat(what, backend, &sizes, &counts, 9);
    }
}

/// (g) the dashboard's impact reads: more metrics, years and groups give more cells, not
/// more statements.
async fn impact_costs_the_same_for_more_cells(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("birmingham"), "").await;
    let q = "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { metric { code } \
             year network { key } sector district { code } value contributors eligible coverage } } }";
    let inputs = [
        json!({"region": WMCA, "years": ["2022/23"], "metrics": ["procurement_spend_total"]}),
        json!({"region": WMCA, "years": ["2021/22", "2022/23"], "metrics": ["procurement_spend_total", "headcount"], "groupBy": ["NETWORK"]}),
        json!({"region": WMCA, "years": ["2020/21", "2021/22", "2022/23"], "metrics": ["procurement_spend_total", "procurement_spend_local", "headcount", "land_owned"], "groupBy": ["NETWORK", "SECTOR"]}),
    ];
    let queries: Vec<(String, Value)> = inputs
        .iter()
        .map(|i| (q.to_owned(), json!({ "i": i })))
        .collect();
    let (counts, answers) = costs(&app, Some(&admin), &queries).await;
    let sizes: Vec<usize> = answers.iter().map(|a| len(&a["impact"]["cells"])).collect();
    assert!(
        sizes[0] < sizes[1] && sizes[1] < sizes[2],
        "cells should grow: {sizes:?}"
    );
    flat("(g) impact", backend, &sizes, &counts, 17);
}

both_databases!(
    directory_pages_cost_the_same_at_any_size,
    an_institutions_page_costs_the_same_at_any_size,
    returns_under_grants_cost_the_same_at_any_size,
    impact_costs_the_same_for_more_cells,
);
