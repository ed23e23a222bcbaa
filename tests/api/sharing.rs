//! Network-controlled sharing, by attack and by use: grants and who may make them, what a
//! grant lets an analyst, a researcher and an anonymous reader see, expiry and revocation,
//! and researcher tokens no wider than their grant.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, members_with_stewards, with_demo_returns};

const WMCA: &str = "E47000007";
const GRANT: &str = "mutation($i: GrantInput!) { grantAccess(input: $i) { id level metricGroups fromYear toYear \
    granteeKind granteeRegion { code } granteeOrganisation { key } network { key } inForce \
    agreement { reference lawfulBasis purpose reviewDate } createdBy history { action by } } }";
const RETURNS: &str = "query($f: ReturnFilterInput) { returns(first: 100, filter: $f) { totalCount \
    edges { node { institution { key steward { key } } values { metric { code group } } } } } }";
const IMPACT: &str = "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } \
    cells { metric { code } network { key } value contributors eligible } } }";

fn grant_input(network: &str, grantee: Value, level: &str, groups: &[&str]) -> Value {
    json!({
        "networkId": network,
        "grantee": grantee,
        "level": level,
        "metricGroups": groups,
        "fromYear": "2020/21",
        "toYear": "2022/23",
        "expiresAt": (Utc::now() + Duration::days(90)).to_rfc3339(),
        "agreement": {
            "reference": "DSA-2026-014",
            "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
            "purpose": "Regional anchor impact dashboard",
            "reviewDate": (Utc::now() + Duration::days(60)).date_naive().to_string()
        }
    })
}

/// Grants as `network`'s admin; returns the grant.
async fn grant(app: &TestApp, network: &str, input: Value) -> Value {
    let admin = app.token(As::Admin(network), "").await;
    app.query_as(&admin, GRANT, json!({ "i": input })).await["grantAccess"].clone()
}

async fn create_org(app: &TestApp, key: &str) {
    let op = app.token(As::Operator, "").await;
    app.query_as(
        &op,
        "mutation($k: String!) { createOrganisation(input: {key: $k, name: \"A research group\"}) { id } }",
        json!({ "k": key }),
    )
    .await;
}

/// The returns a reader sees: (institution, steward) pairs and the metric groups of the values.
fn seen(d: &Value) -> (Vec<(String, String)>, BTreeSet<String>) {
    let mut insts = vec![];
    let mut groups = BTreeSet::new();
    for e in d["returns"]["edges"].as_array().unwrap() {
        let n = &e["node"];
        insts.push((
            n["institution"]["key"].as_str().unwrap().to_owned(),
            n["institution"]["steward"]["key"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
        for v in n["values"].as_array().unwrap() {
            groups.insert(v["metric"]["group"].as_str().unwrap().to_owned());
        }
    }
    (insts, groups)
}

/// Institutions (by key) with a reported 2022/23 value of `metric` in their latest version.
async fn reported(app: &TestApp, metric: &str) -> BTreeSet<String> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT i.key FROM return_values v JOIN returns r ON r.id = v.return_id \
                 JOIN institutions i ON i.id = r.institution_id \
                 WHERE r.period = '2022/23' AND v.metric_code = '{metric}' AND v.breakdown = '' AND v.value IS NOT NULL \
                 AND r.version = (SELECT MAX(version) FROM returns r2 WHERE r2.institution_id = r.institution_id AND r2.period = r.period)"
            ),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// A region analyst sees Birmingham (granted DETAIL) in detail, Coventry and Warwickshire
/// (granted AGGREGATE) only in totals, and Wolverhampton (no grant) not at all: it is listed
/// as withheld and its institutions still count as eligible.
async fn analyst_sees_detail_aggregate_and_nothing(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let (a, b, c) = ("birmingham", "coventry-and-warwickshire", "wolverhampton");
    let all = ["SPEND", "EMPLOYMENT", "LAND_AND_ASSETS", "EMISSIONS"];
    let g = grant(
        &app,
        a,
        grant_input(a, json!({"region": WMCA}), "DETAIL", &all),
    )
    .await;
    assert_eq!(g["granteeRegion"]["code"], WMCA);
    assert_eq!(g["history"][0]["action"], "GRANTED");
    grant(
        &app,
        b,
        grant_input(b, json!({"region": WMCA}), "AGGREGATE", &all),
    )
    .await;
    let analyst = app.token(As::Analyst(WMCA), "").await;

    // Returns: Birmingham's stewarded institutions only.
    let d = app
        .query_as(&analyst, RETURNS, json!({"f": {"period": "2022/23"}}))
        .await;
    let (insts, _) = seen(&d);
    assert!(!insts.is_empty());
    assert!(insts.iter().all(|(_, steward)| steward == a), "{insts:?}");

    // Impact by network: every member eligible; contributors are those stewarded by A or B.
    let d = app
        .query_as(
            &analyst,
            IMPACT,
            json!({"i": {"networkIds": [a, b, c], "years": ["2022/23"], "metrics": ["headcount"], "groupBy": ["NETWORK"]}}),
        )
        .await;
    let withheld: Vec<&str> = d["impact"]["withheldNetworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["key"].as_str().unwrap())
        .collect();
    assert!(withheld.contains(&c), "{withheld:?}");
    assert!(
        !withheld.contains(&a) && !withheld.contains(&b),
        "{withheld:?}"
    );
    let has = reported(&app, "headcount").await;
    for net in [a, b, c] {
        let ms = members_with_stewards(&app, net).await;
        let cell = d["impact"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["network"]["key"] == net)
            .unwrap_or_else(|| panic!("no cell for {net}: {d}"));
        let expected = ms
            .iter()
            .filter(|(k, s)| (s == a || s == b) && has.contains(k))
            .count();
        // B's are seen only in aggregate: where any contributes, the counts come rounded.
        let aggregate_only = ms.iter().filter(|(k, s)| s == b && has.contains(k)).count();
        let shown = |n: usize| {
            if aggregate_only == 0 || n == 0 {
                n
            } else {
                ((n + 2) / 5 * 5).max(5)
            }
        };
        assert_eq!(cell["eligible"], shown(ms.len()), "{net}");
        assert_eq!(cell["contributors"], shown(expected), "{net}: {cell}");
    }
    // The access log: A's and B's admins see the analyst's reads; C's admins see none.
    let log = "query($n: ID!) { accessLog(networkId: $n, first: 100) { totalCount edges { node { \
        subject role operation refused networks { key } } } } }";
    let analyst_subject = app
        .query_as(&analyst, "{ viewer { subject } }", json!({}))
        .await["viewer"]["subject"]
        .clone();
    let mut ops_seen = vec![];
    for (net, expect) in [
        (a, vec!["impact", "returns"]),
        (b, vec!["impact"]),
        (c, vec![]),
    ] {
        let admin = app.token(As::Admin(net), "").await;
        let d = app.query_as(&admin, log, json!({"n": net})).await;
        let mut ops: Vec<String> = d["accessLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .filter(|n| n["subject"] == analyst_subject)
            .map(|n| {
                assert_eq!(n["role"], "REGION_ANALYST");
                assert_eq!(n["refused"], false);
                assert!(
                    n["networks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["key"] == net),
                    "{n}"
                );
                n["operation"].as_str().unwrap().to_owned()
            })
            .collect();
        ops.sort();
        assert_eq!(ops, expect, "{net}: {d}");
        ops_seen.push(ops);
    }
    // Only a network's admins read its log.
    assert_eq!(
        app.error_as(&analyst, log, json!({"n": a})).await,
        "FORBIDDEN"
    );
    let other = app.token(As::Admin(b), "").await;
    assert_eq!(
        app.error_as(&other, log, json!({"n": a})).await,
        "FORBIDDEN"
    );

    let c_cell = d["impact"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["network"]["key"] == c)
        .unwrap();
    let c_members = members_with_stewards(&app, c).await;
    if c_members.iter().all(|(_, s)| s == c) {
        assert_eq!(c_cell["contributors"], 0);
        assert!(c_cell["value"].is_null(), "{c_cell}");
    }
}

/// A researcher token scoped to spend sees no emissions, though the grant would allow them.
async fn researcher_scoped_to_spend_sees_no_emissions(backend: Backend) {
    let app = with_demo_returns(backend).await;
    create_org(&app, "wm-research").await;
    let a = "birmingham";
    grant(
        &app,
        a,
        grant_input(
            a,
            json!({"organisation": "wm-research"}),
            "DETAIL",
            &["SPEND", "EMISSIONS"],
        ),
    )
    .await;
    let full = app.token(As::Researcher("wm-research"), "").await;
    let (insts, groups) = seen(
        &app.query_as(&full, RETURNS, json!({"f": {"period": "2022/23"}}))
            .await,
    );
    assert!(insts.iter().all(|(_, s)| s == a) && !insts.is_empty());
    assert_eq!(
        groups,
        BTreeSet::from(["SPEND".to_owned(), "EMISSIONS".to_owned()]),
        "the grant's groups, and no others"
    );

    let spend = app
        .token(As::Researcher("wm-research"), "metrics:spend")
        .await;
    let (insts2, groups) = seen(
        &app.query_as(&spend, RETURNS, json!({"f": {"period": "2022/23"}}))
            .await,
    );
    assert_eq!(insts2.len(), insts.len());
    assert_eq!(groups, BTreeSet::from(["SPEND".to_owned()]));
    let code = app
        .error_as(
            &spend,
            IMPACT,
            json!({"i": {"networkIds": [a], "years": ["2022/23"], "metrics": ["emissions_scope1"]}}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    // Another organisation's researchers see nothing of it.
    create_org(&app, "elsewhere").await;
    let other = app.token(As::Researcher("elsewhere"), "").await;
    let d = app.query_as(&other, RETURNS, json!({"f": {}})).await;
    assert_eq!(d["returns"]["totalCount"], 0);
}

/// A grant stops at its expiry, and at once when revoked; both are kept in its history.
async fn grants_stop_at_expiry_and_revocation(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let a = "birmingham";
    let mut input = grant_input(a, json!({"public": true}), "DETAIL", &["SPEND"]);
    input["expiresAt"] = json!((Utc::now() + Duration::seconds(3)).to_rfc3339());
    grant(&app, a, input).await;
    let count = |d: Value| d["data"]["returns"]["totalCount"].as_i64().unwrap();
    let anon = app.post_graphql(RETURNS, json!({"f": {}})).await.1;
    assert!(count(anon) > 0, "a public grant reaches anonymous readers");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let anon = app.post_graphql(RETURNS, json!({"f": {}})).await.1;
    assert_eq!(count(anon), 0, "an expired grant reaches no one");

    let g = grant(
        &app,
        a,
        grant_input(a, json!({"public": true}), "DETAIL", &["SPEND"]),
    )
    .await;
    let anon = app.post_graphql(RETURNS, json!({"f": {}})).await.1;
    assert!(count(anon) > 0);
    let admin = app.token(As::Admin(a), "").await;
    let d = app
        .query_as(
            &admin,
            "mutation($id: ID!) { revokeGrant(id: $id) { inForce revokedBy history { action } } }",
            json!({"id": g["id"]}),
        )
        .await;
    assert_eq!(d["revokeGrant"]["inForce"], false);
    assert_eq!(
        d["revokeGrant"]["history"],
        json!([{"action": "GRANTED"}, {"action": "REVOKED"}])
    );
    let anon = app.post_graphql(RETURNS, json!({"f": {}})).await.1;
    assert_eq!(count(anon), 0, "a revoked grant reaches no one");
    let again = app
        .error_as(
            &admin,
            "mutation($id: ID!) { revokeGrant(id: $id) { id } }",
            json!({"id": g["id"]}),
        )
        .await;
    assert_eq!(again, "CONFLICT");
    let listed = app
        .query_as(
            &admin,
            "query($n: ID!) { grants(networkId: $n) { id inForce } }",
            json!({"n": a}),
        )
        .await;
    assert_eq!(
        listed["grants"].as_array().unwrap().len(),
        2,
        "history is kept"
    );
}

/// Only the steward network's admins grant, list and revoke; bad input gets a clear error and
/// writes nothing.
async fn only_a_networks_admins_grant(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let a = "birmingham";
    let input = grant_input(a, json!({"region": WMCA}), "DETAIL", &["SPEND"]);
    for who in [
        As::Operator,
        As::Admin("sandwell"),
        As::Submitter(a),
        As::Analyst(WMCA),
    ] {
        let t = app.token(who, "").await;
        assert_eq!(
            app.error_as(&t, GRANT, json!({"i": input})).await,
            "FORBIDDEN"
        );
        assert_eq!(
            app.error_as(
                &t,
                "query { grants(networkId: \"birmingham\") { id } }",
                json!({})
            )
            .await,
            "FORBIDDEN"
        );
    }
    let (status, body) = app.post_graphql(GRANT, json!({"i": input})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{status} {body}"
    );
    let narrowed = app.token(As::Admin(a), "read:impact").await;
    assert_eq!(
        app.error_as(&narrowed, GRANT, json!({"i": input})).await,
        "FORBIDDEN"
    );

    let admin = app.token(As::Admin(a), "").await;
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut i = input.clone();
        f(&mut i);
        i
    };
    for (i, field) in [
        (
            bad(&|i| i["grantee"] = json!({"region": WMCA, "public": true})),
            "input.grantee",
        ),
        (bad(&|i| i["grantee"] = json!({})), "input.grantee"),
        (
            bad(&|i| i["metricGroups"] = json!([])),
            "input.metricGroups",
        ),
        (
            bad(&|i| {
                i["fromYear"] = json!("2022/23");
                i["toYear"] = json!("2020/21");
            }),
            "input.toYear",
        ),
        (
            bad(&|i| i["expiresAt"] = json!((Utc::now() - Duration::hours(1)).to_rfc3339())),
            "input.expiresAt",
        ),
        (
            bad(&|i| i["agreement"]["purpose"] = json!("  ")),
            "input.agreement.purpose",
        ),
        (
            bad(&|i| i["agreement"]["reviewDate"] = json!("2020-01-01")),
            "input.agreement.reviewDate",
        ),
    ] {
        let (_, body) = app.post_as(&admin, GRANT, json!({"i": i})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let missing = bad(&|i| i["grantee"] = json!({"organisation": "nobody"}));
    assert_eq!(
        app.error_as(&admin, GRANT, json!({"i": missing})).await,
        "NOT_FOUND"
    );
    let missing = bad(&|i| i["grantee"] = json!({"region": "E47000099"}));
    assert_eq!(
        app.error_as(&admin, GRANT, json!({"i": missing})).await,
        "NOT_FOUND"
    );
    let d = app
        .query_as(
            &admin,
            "query { grants(networkId: \"birmingham\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(d["grants"], json!([]), "nothing half-written");

    let g = app.query_as(&admin, GRANT, json!({"i": input})).await;
    assert!(g["grantAccess"]["createdBy"].as_str().is_some());
    assert_eq!(g["grantAccess"]["agreement"]["reference"], "DSA-2026-014");
    // Another network's admin cannot revoke it.
    let other = app.token(As::Admin("sandwell"), "").await;
    assert_eq!(
        app.error_as(
            &other,
            "mutation($id: ID!) { revokeGrant(id: $id) { id } }",
            json!({"id": g["grantAccess"]["id"]})
        )
        .await,
        "FORBIDDEN"
    );
    // The grantee sees what reaches it.
    let analyst = app.token(As::Analyst(WMCA), "").await;
    let v = app
        .query_as(
            &analyst,
            "{ viewer { grants { network { key } level metricGroups } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["viewer"]["grants"],
        json!([{"network": {"key": a}, "level": "DETAIL", "metricGroups": ["SPEND"]}])
    );
}

const ISSUE: &str =
    "mutation($i: IssueTokenInput!) { issueToken(input: $i) { id token expiresAt } }";

/// A network admin issues researcher tokens only within a grant to that organisation.
async fn admin_issues_researcher_tokens_within_the_grant(backend: Backend) {
    let app = with_demo_returns(backend).await;
    create_org(&app, "wm-research").await;
    create_org(&app, "ungranted").await;
    let a = "birmingham";
    let mut input = grant_input(
        a,
        json!({"organisation": "wm-research"}),
        "DETAIL",
        &["SPEND"],
    );
    input["fromYear"] = json!("2021/22");
    input["expiresAt"] = json!((Utc::now() + Duration::days(10)).to_rfc3339());
    grant(&app, a, input).await;
    let admin = app.token(As::Admin(a), "").await;
    let ask = |scopes: &[&str], ttl: i64, org: &str| json!({"i": {"role": "RESEARCHER", "organisation": org, "scopes": scopes, "ttlSeconds": ttl}});
    let within = [
        "metrics:spend",
        "years:2021/22-2022/23",
        "network:birmingham",
    ];
    let day = 86_400;
    let ok = app
        .query_as(&admin, ISSUE, ask(&within, day, "wm-research"))
        .await;
    let token = ok["issueToken"]["token"].as_str().unwrap().to_owned();
    let d = app
        .query_as(&token, RETURNS, json!({"f": {"period": "2022/23"}}))
        .await;
    assert!(d["returns"]["totalCount"].as_i64().unwrap() > 0);

    for (scopes, ttl, org, why) in [
        (
            vec![
                "metrics:emissions",
                "years:2021/22-2022/23",
                "network:birmingham",
            ],
            day,
            "wm-research",
            "a group outside the grant",
        ),
        (
            vec![
                "metrics:spend",
                "years:2020/21-2022/23",
                "network:birmingham",
            ],
            day,
            "wm-research",
            "a year outside the grant",
        ),
        (
            vec!["metrics:spend", "years:2021/22-2022/23"],
            day,
            "wm-research",
            "no network named",
        ),
        (
            vec!["metrics:spend", "network:birmingham"],
            day,
            "wm-research",
            "no years named",
        ),
        (
            vec!["years:2021/22-2022/23", "network:birmingham"],
            day,
            "wm-research",
            "no groups named",
        ),
        (
            vec!["metrics:spend", "years:2021/22-2022/23", "network:sandwell"],
            day,
            "wm-research",
            "another network",
        ),
        (
            within.to_vec(),
            30 * day,
            "wm-research",
            "outliving the grant",
        ),
        (
            within.to_vec(),
            day,
            "ungranted",
            "an organisation without a grant",
        ),
    ] {
        let (_, body) = app.post_as(&admin, ISSUE, ask(&scopes, ttl, org)).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{why}: {body}"
        );
    }
    // Another network's admin cannot issue for this grant.
    let other = app.token(As::Admin("sandwell"), "").await;
    let (_, body) = app
        .post_as(&other, ISSUE, ask(&within, day, "wm-research"))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );

    // Another network's admin cannot revoke it; the issuing network's admin can, and then
    // the researcher's token gets 401.
    let revoke = "mutation($id: ID!) { revokeToken(id: $id) { revokedAt } }";
    assert_eq!(
        app.error_as(&other, revoke, json!({"id": ok["issueToken"]["id"]}))
            .await,
        "FORBIDDEN"
    );
    app.query_as(&admin, revoke, json!({"id": ok["issueToken"]["id"]}))
        .await;
    let (status, body) = app.post_as(&token, RETURNS, json!({"f": {}})).await;
    assert_eq!(status, 401, "{body}");
}

/// Disclosure control for an analyst who sees a network only in aggregate: small cells are
/// withheld with a reason that names no number; counts of people come rounded to 5;
/// magnitudes come noised, the same way every time; a steward's raised threshold applies.
async fn aggregate_only_cells_are_controlled(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let b = "coventry-and-warwickshire";
    let all = ["SPEND", "EMPLOYMENT", "LAND_AND_ASSETS", "EMISSIONS"];
    grant(
        &app,
        b,
        grant_input(b, json!({"region": WMCA}), "AGGREGATE", &all),
    )
    .await;
    let analyst = app.token(As::Analyst(WMCA), "").await;
    let q = "query($i: ImpactInput!) { impact(input: $i) { cells { metric { code } sector district { code } \
        value suppressed suppressionReason contributors } } }";
    let d = app
        .query_as(
            &analyst,
            q,
            json!({"i": {"networkIds": [b], "years": ["2022/23"], "metrics": ["apprentices", "procurement_spend_total"], "groupBy": ["SECTOR", "DISTRICT"]}}),
        )
        .await;
    let cells = d["impact"]["cells"].as_array().unwrap();
    let mut withheld = 0;
    for c in cells {
        let n = c["contributors"].as_i64().unwrap();
        assert_eq!(n % 5, 0, "counts seen in aggregate are rounded: {c}");
        if c["suppressed"] == true {
            withheld += 1;
            assert!(c["value"].is_null(), "{c}");
            let why = c["suppressionReason"].as_str().unwrap();
            assert!(
                why.starts_with("withheld by disclosure control")
                    && !why.chars().any(|ch| ch.is_ascii_digit()),
                "a reason that does not narrow the value: {c}"
            );
        }
        if c["metric"]["code"] == "apprentices" && !c["value"].is_null() {
            let v: i64 = c["value"].as_str().unwrap().parse().unwrap();
            assert_eq!(v % 5, 0, "counts of people are rounded to 5: {c}");
            assert!(v >= 10, "{c}");
        }
    }
    assert!(
        withheld > 0,
        "the demo should give some cells too small to show: {cells:?}"
    );

    // The network as a whole: shown, noised from the exact total its admin sees, the same
    // way each time.
    let total = |t: String| {
        let app = &app;
        async move {
            let d = app
                .query_as(
                    &t,
                    "query($i: ImpactInput!) { impact(input: $i) { cells { metric { code } value suppressed } } }",
                    json!({"i": {"networkIds": [b], "years": ["2022/23"], "metrics": ["procurement_spend_total"]}}),
                )
                .await;
            d["impact"]["cells"][0].clone()
        }
    };
    let seen = total(analyst.clone()).await;
    let exact = total(app.token(As::Admin(b), "").await).await;
    assert_eq!(exact["suppressed"], false);
    let (s, e): (f64, f64) = (
        seen["value"].as_str().unwrap().parse().unwrap(),
        exact["value"].as_str().unwrap().parse().unwrap(),
    );
    assert!(s != e && (s - e).abs() <= e * 0.2, "{s} vs {e}");
    assert_eq!(
        total(analyst.clone()).await,
        seen,
        "the same contributors, the same noise"
    );

    // A count of people over the whole network: shown rounded to 5, near the exact count.
    let q = "query($i: ImpactInput!) { impact(input: $i) { cells { value suppressed } } }";
    let input = json!({"i": {"networkIds": [b], "years": ["2022/23"], "metrics": ["apprentices"]}});
    let seen = app.query_as(&analyst, q, input.clone()).await["impact"]["cells"][0].clone();
    let exact = app
        .query_as(&app.token(As::Admin(b), "").await, q, input)
        .await["impact"]["cells"][0]
        .clone();
    let (s, e): (i64, i64) = (
        seen["value"].as_str().unwrap().parse().unwrap(),
        exact["value"].as_str().unwrap().parse().unwrap(),
    );
    assert_eq!(s % 5, 0, "rounded to 5: {s}");
    assert!((s - e).abs() <= e / 5 + 5 && s >= 10, "{s} vs {e}");

    // The steward raises its minimum above the network's contributors: the total goes too.
    // Lowering is refused, and so is anyone but its admins.
    let set = "mutation($n: ID!, $t: DisclosureThresholdsInput!) { setDisclosureThresholds(networkId: $n, input: $t) { minContributors } }";
    let raise = json!({"n": b, "t": {"minContributors": 1000, "dominancePercent": 10, "peopleCountMin": 10, "peopleCountRound": 5}});
    let lower = json!({"n": b, "t": {"minContributors": 2, "dominancePercent": 10, "peopleCountMin": 10, "peopleCountRound": 5}});
    let admin = app.token(As::Admin(b), "").await;
    let (_, body) = app.post_as(&admin, set, lower).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.minContributors",
        "{body}"
    );
    assert_eq!(
        app.error_as(&analyst, set, raise.clone()).await,
        "FORBIDDEN"
    );
    app.query_as(&admin, set, raise).await;
    let raised = total(analyst).await;
    assert_eq!(raised["suppressed"], true, "{raised}");
}

/// Refused reads and anonymous reads are logged too, and a clean shutdown loses no entry.
async fn refused_and_anonymous_reads_are_logged_and_kept(backend: Backend) {
    let mut app = with_demo_returns(backend).await;
    let a = "birmingham";
    grant(
        &app,
        a,
        grant_input(a, json!({"public": true}), "DETAIL", &["SPEND"]),
    )
    .await;
    let impact_only = app.token(As::Admin("sandwell"), "read:impact").await;
    let (_, body) = app
        .post_as(&impact_only, RETURNS, json!({"f": {"network": a}}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    for _ in 0..20 {
        let (status, _) = app.post_graphql(RETURNS, json!({"f": {}})).await;
        assert_eq!(status, 200);
    }
    let admin = app.token(As::Admin(a), "").await;
    let d = app
        .query_as(
            &admin,
            "query($n: ID!) { accessLog(networkId: $n, first: 100) { totalCount edges { node { subject role operation refused } } } }",
            json!({"n": a}),
        )
        .await;
    let entries: Vec<&Value> = d["accessLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(d["accessLog"]["totalCount"], 21, "{d}");
    assert_eq!(
        entries.iter().filter(|n| n["refused"] == true).count(),
        1,
        "the refused read, naming the network it asked for"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|n| n["subject"].is_null() && n["role"].is_null())
            .count(),
        20,
        "anonymous reads"
    );

    // Reads right before a clean stop all reach the database.
    let reads = (0..30).map(|_| app.post_graphql(RETURNS, json!({"f": {}})));
    for (status, _) in futures_util::future::join_all(reads).await {
        assert_eq!(status, 200);
    }
    let url = app.settings.database_url();
    app.stop().await;
    let db = sea_orm::Database::connect(secrecy::ExposeSecret::expose_secret(&url).to_owned())
        .await
        .unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM access_log WHERE operation = 'returns'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 51);
}

both_databases!(
    analyst_sees_detail_aggregate_and_nothing,
    researcher_scoped_to_spend_sees_no_emissions,
    grants_stop_at_expiry_and_revocation,
    only_a_networks_admins_grant,
    admin_issues_researcher_tokens_within_the_grant,
    aggregate_only_cells_are_controlled,
    refused_and_anonymous_reads_are_logged_and_kept,
);
