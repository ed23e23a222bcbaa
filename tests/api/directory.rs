use anchorfed::directory::demo;
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, spawn_app, spawn_with};

const NETWORKS: &str = "{ networks(first: 10) { totalCount edges { node { key name established \
    districts { code } members(first: 100) { totalCount } } } } }";

/// The README's first query: the five networks with Table 1's member counts.
async fn five_networks_with_table_1_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let data = app.query(NETWORKS, json!({})).await;
    let expected = demo::expected_member_counts().unwrap();
    let edges = data["networks"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert_eq!(data["networks"]["totalCount"], 5);
    for e in edges {
        let n = &e["node"];
        let key = n["key"].as_str().unwrap();
        assert_eq!(
            n["members"]["totalCount"].as_u64(),
            expected.get(key).map(|&c| c as u64),
            "{key}"
        );
    }
    let bc = edges
        .iter()
        .find(|e| e["node"]["key"] == "black-country")
        .unwrap();
    let districts: Vec<&str> = bc["node"]["districts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        districts,
        ["E08000027", "E08000028", "E08000030", "E08000031"]
    );
    assert_eq!(bc["node"]["established"], 2022);
}

/// 55 memberships, fewer institutions: the overlaps are real shared members.
async fn overlaps_make_fewer_institutions(backend: Backend) {
    let app = spawn_app(backend).await;
    let data = app
        .query("{ institutions(first: 1) { totalCount } }", json!({}))
        .await;
    let distinct = data["institutions"]["totalCount"].as_u64().unwrap();
    assert!(distinct < 55, "{distinct}");
    // Every Wolverhampton member but its own college and homes is also in the Black Country.
    let q = "query($n: ID!) { institutions(first: 100, filter: {network: $n}) { edges { node { key } } } }";
    let keys = |v: &Value| -> Vec<String> {
        v["institutions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let wolves = keys(&app.query(q, json!({"n": "wolverhampton"})).await);
    let bc = keys(&app.query(q, json!({"n": "black-country"})).await);
    let sandwell = keys(&app.query(q, json!({"n": "sandwell"})).await);
    let shared_w = wolves.iter().filter(|k| bc.contains(k)).count();
    let shared_s = sandwell.iter().filter(|k| bc.contains(k)).count();
    assert_eq!((shared_w, shared_s), (3, 5));
    assert_eq!(distinct as usize, 55 - shared_w - shared_s);
}

/// Loading the demo twice changes nothing.
async fn demo_load_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.query(NETWORKS, json!({})).await;
    let again = demo::load(&app.db).await.unwrap();
    assert_eq!(again, demo::LoadReport::default());
    assert_eq!(app.query(NETWORKS, json!({})).await, before);
}

async fn institution_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let q = "query($f: InstitutionFilterInput) { institutions(first: 100, filter: $f) { totalCount edges { node { key sector homeDistrict { code } } } } }";
    let count = |v: Value| v["institutions"]["totalCount"].as_u64().unwrap();

    let d = app.query(q, json!({"f": {"sector": "UNIVERSITY"}})).await;
    assert_eq!(count(d.clone()), 4);
    assert!(
        d["institutions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["sector"] == "UNIVERSITY")
    );

    let d = app.query(q, json!({"f": {"district": "E08000027"}})).await;
    assert!(
        d["institutions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["homeDistrict"]["code"] == "E08000027")
    );
    assert_eq!(count(d), 3);

    let d = app.query(q, json!({"f": {"name": "hospitals nhs"}})).await;
    assert_eq!(count(d), 7);

    // Wildcards in the name are literal.
    let d = app.query(q, json!({"f": {"name": "%"}})).await;
    assert_eq!(count(d), 0);

    let d = app
        .query(
            q,
            json!({"f": {"identifier": {"scheme": "ODS", "value": "zza04"}}}),
        )
        .await;
    assert_eq!(
        d["institutions"]["edges"][0]["node"]["key"],
        "wolves-hospitals"
    );
    assert_eq!(count(d), 1);

    let d = app
        .query(
            q,
            json!({"f": {"network": "black-country", "sector": "NHS_TRUST"}}),
        )
        .await;
    assert_eq!(count(d), 5);

    // Before Black Country was established it had no members.
    let d = app
        .query(
            q,
            json!({"f": {"network": "black-country", "on": "2021-01-01"}}),
        )
        .await;
    assert_eq!(count(d), 0);

    let (code, body) = app
        .error_code(
            q,
            json!({"f": {"identifier": {"scheme": "DUNS", "value": "1"}}}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "filter.identifier.scheme"
    );

    let (code, _) = app
        .error_code(q, json!({"f": {"district": "E0800002"}}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");

    let (code, body) = app
        .error_code(q, json!({"f": {"network": "no-such-network"}}))
        .await;
    assert_eq!(code, "NOT_FOUND", "{body}");
}

async fn pagination(backend: Backend) {
    let app = spawn_app(backend).await;
    let q = "query($a: String) { institutions(first: 20, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }";
    let mut after: Option<String> = None;
    let mut seen = vec![];
    loop {
        let d = app.query(q, json!({"a": after})).await;
        let c = &d["institutions"];
        seen.extend(
            c["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let total = app
        .query("{ institutions(first: 1) { totalCount } }", json!({}))
        .await["institutions"]["totalCount"]
        .as_u64()
        .unwrap();
    assert_eq!(seen.len() as u64, total);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no institution twice across pages");

    for first in [0, 101, -1] {
        let (code, body) = app
            .error_code(
                "query($f: Int!) { networks(first: $f) { totalCount } }",
                json!({"f": first}),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["extensions"]["field"], "first");
    }
    let (code, _) = app
        .error_code(
            "{ networks(first: 5, after: \"forged\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

async fn lookups_by_id_and_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let q = "query($id: ID!) { institution(id: $id) { id key name sector yearEndMonth identifiers { scheme value } \
             homeDistrict { code name } steward { key } memberships { network { key } from to status } } }";
    let d = app.query(q, json!({"id": "sandwell-hospitals"})).await;
    let i = &d["institution"];
    assert_eq!(i["steward"]["key"], "black-country");
    assert_eq!(i["homeDistrict"]["name"], "Sandwell");
    assert_eq!(
        i["identifiers"],
        json!([{"scheme": "ODS", "value": "ZZA02"}])
    );
    let mut nets: Vec<&str> = i["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["network"]["key"].as_str().unwrap())
        .collect();
    nets.sort();
    assert_eq!(nets, ["black-country", "sandwell"]);
    let by_id = app.query(q, json!({"id": i["id"]})).await;
    assert_eq!(by_id, d);
    let uni = app.query(q, json!({"id": "bham-university"})).await;
    assert_eq!(uni["institution"]["yearEndMonth"], 7);

    let none = app.query(q, json!({"id": "no-such-institution"})).await;
    assert_eq!(none["institution"], Value::Null);
    let (code, _) = app.error_code(q, json!({"id": "Not A Key"})).await;
    assert_eq!(code, "BAD_USER_INPUT");

    let r = app
        .query(
            "{ region(code: \"E47000007\") { name districts { code } } regions { code } }",
            json!({}),
        )
        .await;
    assert_eq!(r["region"]["name"], "West Midlands Combined Authority");
    assert_eq!(r["region"]["districts"].as_array().unwrap().len(), 7);
    assert_eq!(r["regions"], json!([{"code": "E47000007"}]));
    let (code, _) = app
        .error_code("{ region(code: \"E4700000\") { name } }", json!({}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");

    let n = app
        .query("{ network(id: \"black-country\") { name model governance membership population imdRank imdRankOf region { code } stewardOf(first: 100) { totalCount } } }", json!({}))
        .await;
    assert_eq!(n["network"]["population"], 1_200_000);
    assert_eq!(n["network"]["imdRank"], 3);
    assert_eq!(n["network"]["imdRankOf"], 38);
    assert_eq!(n["network"]["region"]["code"], "E47000007");
    assert_eq!(n["network"]["stewardOf"]["totalCount"], 9);
    assert_eq!(
        app.query("{ organisations { key } }", json!({})).await["organisations"],
        json!([])
    );
}

/// The nested query of the foundation issue costs the same number of statements whether it
/// walks one network or all five: DataLoaders batch every level.
async fn nested_query_statement_count_is_flat(backend: Backend) {
    let app = spawn_app(backend).await;
    let q = |n: u32| {
        format!(
            "{{ networks(first: {n}) {{ edges {{ node {{ members(first: 100) {{ edges {{ node {{ steward {{ name }} }} }} }} }} }} }} }}"
        )
    };
    let mut counts = vec![];
    for n in [1, 2, 5, 10] {
        let before = app.statements().await;
        let d = app.query(&q(n), json!({})).await;
        counts.push(app.statements().await - before);
        assert_eq!(
            d["networks"]["edges"].as_array().unwrap().len(),
            n.min(5) as usize
        );
    }
    assert!(
        counts.iter().all(|&c| c == counts[0]),
        "statement counts grew: {counts:?}"
    );
    assert!(
        counts[0] <= 4,
        "expected the data version (the response cache) + networks + members + stewards, got {counts:?}"
    );
    println!("nested query statements ({backend:?}): {counts:?} for 1, 2, 5, 10 networks");
}

/// An empty database serves an empty directory, not an error.
async fn empty_directory(backend: Backend) {
    let app = spawn_with(backend, false, |_| {}).await;
    let d = app
        .query(
            "{ networks(first: 10) { totalCount edges { node { key } } } regions { code } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d,
        json!({"networks": {"totalCount": 0, "edges": []}, "regions": []})
    );
}

both_databases!(
    five_networks_with_table_1_counts,
    overlaps_make_fewer_institutions,
    demo_load_is_idempotent,
    institution_filters,
    pagination,
    lookups_by_id_and_key,
    nested_query_statement_count_is_flat,
    empty_directory,
);
