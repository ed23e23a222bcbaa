//! The regional impact query: eligibility, each institution once, coverage, ratios, panel,
//! asOf, equivalences and withheld networks — checked against sums computed here by hand.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, members_with_stewards, spawn_app, with_demo_returns};

const IMPACT: &str = "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { metric { code } year \
    network { key } sector district { code } breakdown value share contributors eligible coverage \
    equivalences { name value unit factor } } } }";

fn cells(d: &Value) -> Vec<Value> {
    d["impact"]["cells"].as_array().unwrap().clone()
}

fn cell<'a>(cs: &'a [Value], metric: &str, network: Option<&str>) -> &'a Value {
    cs.iter()
        .find(|c| {
            c["metric"]["code"] == metric
                && c["network"]["key"].as_str() == network
                && c["breakdown"].is_null()
        })
        .unwrap_or_else(|| panic!("no {metric} cell for {network:?} in {cs:?}"))
}

/// The sum of a metric over the given institutions' current 2022/23 returns, computed naively.
async fn naive_sum(app: &TestApp, metric: &str, keys: &[&str]) -> (i64, i64) {
    use sea_orm::{ConnectionTrait, Statement};
    let list = keys
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT CAST(COALESCE(SUM(v.value), 0) AS BIGINT), COUNT(v.value) FROM return_values v \
                 JOIN returns r ON r.id = v.return_id JOIN institutions i ON i.id = r.institution_id \
                 WHERE r.period = '2022/23' AND v.metric_code = '{metric}' AND v.breakdown = '' AND i.key IN ({list}) \
                 AND r.version = (SELECT MAX(version) FROM returns r2 WHERE r2.institution_id = r.institution_id AND r2.period = r.period)"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
    )
}

async fn members(app: &TestApp, network: &str) -> Vec<String> {
    members_with_stewards(app, network)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

async fn a_network_admin_sees_its_own_network(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("black-country"), "").await;
    let d = app
        .query_as(
            &admin,
            IMPACT,
            json!({"i": {"networkIds": ["black-country"], "years": ["2022/23"],
            "metrics": ["procurement_spend_total", "headcount"], "groupBy": ["NETWORK"]}}),
        )
        .await;
    let cs = cells(&d);
    let spend = cell(&cs, "procurement_spend_total", Some("black-country"));
    assert_eq!(spend["eligible"], 15, "eligible equals the member count");
    // A Black Country admin sees every member: stewarded ones and, as a fellow, the others.
    let keys = members(&app, "black-country").await;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (sum, n) = naive_sum(&app, "procurement_spend_total", &keys).await;
    assert_eq!(spend["contributors"].as_i64(), Some(n));
    assert_eq!(
        spend["value"].as_str().unwrap(),
        anchorfed::domain::quantity::from_minor_units(sum, 2)
    );
    let cov = spend["coverage"].as_f64().unwrap();
    assert!((cov - n as f64 / 15.0).abs() < 1e-9);
    assert_eq!(d["impact"]["withheldNetworks"], json!([]));
}

async fn shared_members_count_once(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let op_admin_bc = app.token(As::Admin("black-country"), "").await;
    let both = json!({"i": {"networkIds": ["black-country", "sandwell"], "years": ["2022/23"], "metrics": ["headcount"]}});
    let d = app.query_as(&op_admin_bc, IMPACT, both).await;
    let c = cell(&cells(&d), "headcount", None).clone();
    assert_eq!(
        c["eligible"], 25,
        "15 + 15 members, 5 shared, each counted once"
    );
    // Sandwell-stewarded institutions outside the Black Country gave this admin nothing.
    assert_eq!(
        d["impact"]["withheldNetworks"],
        json!([{"key": "sandwell"}])
    );
    // By network, each shared institution counts once in each of its networks' cells.
    let d = app
        .query_as(&op_admin_bc, IMPACT, json!({"i": {"networkIds": ["black-country", "sandwell"], "years": ["2022/23"], "metrics": ["headcount"], "groupBy": ["NETWORK"]}}))
        .await;
    let cs = cells(&d);
    assert_eq!(
        cell(&cs, "headcount", Some("black-country"))["eligible"],
        15
    );
    assert_eq!(cell(&cs, "headcount", Some("sandwell"))["eligible"], 15);
    // The region: all 47 distinct institutions are eligible, whatever the overlaps.
    let d = app
        .query_as(
            &op_admin_bc,
            IMPACT,
            json!({"i": {"region": "E47000007", "years": ["2022/23"], "metrics": ["headcount"]}}),
        )
        .await;
    assert_eq!(cell(&cells(&d), "headcount", None)["eligible"], 47);
}

async fn ratios_panel_equivalences_and_breakdowns(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let d = app
        .query_as(&admin, IMPACT, json!({"i": {"networkIds": ["sandwell"], "years": ["2022/23"],
            "metrics": ["local_spend_share", "procurement_spend_local", "procurement_spend_total", "land_owned", "employees_by_residence"]}}))
        .await;
    let cs = cells(&d);
    let local = cell(&cs, "procurement_spend_local", None)["value"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    let total = cell(&cs, "procurement_spend_total", None)["value"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    let share = cell(&cs, "local_spend_share", None);
    // Every demo institution that reports spend reports both, so the contributors match.
    assert!(
        (share["value"].as_str().unwrap().parse::<f64>().unwrap() - local / total).abs() < 1e-4,
        "{share}"
    );
    let land = cell(&cs, "land_owned", None);
    if !land["value"].is_null() {
        let ha: f64 = land["value"].as_str().unwrap().parse().unwrap();
        let eq = &land["equivalences"][0];
        assert_eq!(
            (eq["name"].as_str(), eq["factor"].as_str()),
            (Some("football pitches"), Some("0.714"))
        );
        assert!((eq["value"].as_str().unwrap().parse::<f64>().unwrap() - ha / 0.714).abs() < 0.06);
    }
    // Employment by residence: one cell per breakdown key, and deciles 1-2 together.
    let by_decile: Vec<&Value> = cs
        .iter()
        .filter(|c| {
            c["metric"]["code"] == "employees_by_residence"
                && c["breakdown"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("imd_decile:"))
        })
        .collect();
    assert_eq!(by_decile.len(), 11, "ten deciles and the 1-2 pair");
    let d1 = by_decile
        .iter()
        .find(|c| c["breakdown"] == "imd_decile:1")
        .unwrap()["share"]
        .as_f64()
        .unwrap();
    let d2 = by_decile
        .iter()
        .find(|c| c["breakdown"] == "imd_decile:2")
        .unwrap()["share"]
        .as_f64()
        .unwrap();
    let d12 = by_decile
        .iter()
        .find(|c| c["breakdown"] == "imd_decile:1-2")
        .unwrap()["share"]
        .as_f64()
        .unwrap();
    assert!((d1 + d2 - d12).abs() < 1e-9);
    assert!(
        (d12 - 0.32).abs() < 0.01,
        "the demo puts 32% in deciles 1-2: {d12}"
    );

    // Panel: only institutions reporting in every requested year. Sandwell was established in
    // 2020, so all its reporters have three years; a panel over 2019/20 too has nobody.
    let q = |years: Value, panel: bool| json!({"i": {"networkIds": ["sandwell"], "years": years, "metrics": ["headcount"], "panel": panel}});
    let d = app
        .query_as(&admin, IMPACT, q(json!(["2020/21", "2022/23"]), true))
        .await;
    let c = cell(&cells(&d), "headcount", None).clone();
    assert_eq!(
        c["eligible"], c["contributors"],
        "a panel's eligible are its reporters"
    );
    let d = app
        .query_as(&admin, IMPACT, q(json!(["2019/20", "2022/23"]), true))
        .await;
    assert!(cells(&d).iter().all(|c| c["contributors"] == 0));
    // Years are never summed: one cell a year.
    let d = app
        .query_as(
            &admin,
            IMPACT,
            q(json!(["2020/21", "2021/22", "2022/23"]), false),
        )
        .await;
    let years: Vec<String> = cells(&d)
        .iter()
        .map(|c| c["year"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(years, ["2020/21", "2021/22", "2022/23"]);
}

async fn as_of_and_coverage_follow_the_returns(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("wolverhampton"), "").await;
    let sub = app.token(As::Submitter("wolverhampton"), "").await;
    let q = |at: Option<String>| json!({"i": {"networkIds": ["wolverhampton"], "years": ["2022/23"], "metrics": ["headcount"], "asOf": at}});
    let d = app.query_as(&admin, IMPACT, q(None)).await;
    let c = cell(&cells(&d), "headcount", None).clone();
    assert_eq!(
        (
            c["eligible"].as_i64(),
            c["contributors"].as_i64(),
            c["value"].clone()
        ),
        (Some(5), Some(0), Value::Null)
    );
    assert_eq!(c["coverage"], 0.0);
    let submit =
        "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { returns { id } } }";
    let ret = |v: &str| {
        json!({"i": {"networkId": "wolverhampton", "idempotencyKey": v, "returns": [
        {"institution": "wolves-college", "period": "2022/23", "values": [{"metric": "headcount", "value": v}]}]}})
    };
    app.query_as(&sub, submit, ret("100")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.query_as(&sub, submit, ret("140")).await;
    let now = cell(
        &cells(&app.query_as(&admin, IMPACT, q(None)).await),
        "headcount",
        None,
    )
    .clone();
    assert_eq!(
        (now["value"].as_str(), now["contributors"].as_i64()),
        (Some("140"), Some(1))
    );
    assert!((now["coverage"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    let then = cell(
        &cells(&app.query_as(&admin, IMPACT, q(Some(between))).await),
        "headcount",
        None,
    )
    .clone();
    assert_eq!(then["value"], "100", "asOf reads the version current then");
    // Anonymous readers and region analysts have no rule yet: everything is withheld, and
    // the eligible institutions still count.
    let analyst = app.token(As::Analyst("E47000007"), "").await;
    let d = app.query_as(&analyst, IMPACT, q(None)).await;
    let c = cell(&cells(&d), "headcount", None).clone();
    assert_eq!(
        (c["eligible"].as_i64(), c["contributors"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        d["impact"]["withheldNetworks"],
        json!([{"key": "black-country"}, {"key": "wolverhampton"}])
    );
    // Scopes narrow: a token scoped to spend is refused employment.
    let spend_only = app.token(As::Admin("wolverhampton"), "metrics:spend").await;
    assert_eq!(
        app.error_as(&spend_only, IMPACT, q(None)).await,
        "FORBIDDEN"
    );
    let (_, body) = app
        .post_as(
            &admin,
            IMPACT,
            json!({"i": {"years": ["2022/23"], "metrics": ["headcount"]}}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (_, body) = app
        .post_as(
            &admin,
            IMPACT,
            json!({"i": {"region": "E47000007", "years": ["2022/23"], "metrics": ["nope"]}}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.metrics[0]");
}

/// The statements an impact request runs do not grow with the number of cells.
async fn impact_statement_count_is_flat(backend: Backend) {
    let app = with_demo_returns(backend).await;
    let admin = app.token(As::Admin("black-country"), "").await;
    // The access log's writer runs its statements in the background; reading the log first
    // flushes it, so each count covers the request and its own log entry, nothing earlier.
    let settled = || async {
        app.query_as(
            &admin,
            "{ accessLog(networkId: \"black-country\", first: 1) { totalCount } }",
            json!({}),
        )
        .await;
        app.statements().await
    };
    let mut counts = vec![];
    for (dims, years) in [
        (json!([]), json!(["2022/23"])),
        (
            json!(["NETWORK", "SECTOR", "DISTRICT"]),
            json!(["2020/21", "2021/22", "2022/23"]),
        ),
    ] {
        let before = settled().await;
        let d = app
            .query_as(&admin, IMPACT, json!({"i": {"region": "E47000007", "years": years, "metrics": ["headcount", "procurement_spend_total"], "groupBy": dims}}))
            .await;
        counts.push((cells(&d).len(), settled().await - before));
    }
    assert!(counts[1].0 > 10 * counts[0].0, "{counts:?}");
    assert!(
        counts[1].1 <= counts[0].1 + 2,
        "statements grew with cells: {counts:?}"
    );

    // Nor with the networks named, or withheld: each list is read in one statement.
    let mut by_networks = vec![];
    for ids in [
        json!(["sandwell"]),
        json!([
            "sandwell",
            "black-country",
            "birmingham",
            "coventry-and-warwickshire",
            "wolverhampton"
        ]),
    ] {
        let before = settled().await;
        let d = app
            .query_as(&admin, "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { value network { key } } } }",
                json!({"i": {"networkIds": ids, "years": ["2022/23"], "metrics": ["headcount"], "groupBy": ["NETWORK"]}}))
            .await;
        let withheld = d["impact"]["withheldNetworks"].as_array().unwrap().len();
        by_networks.push((withheld, settled().await - before));
    }
    assert!(by_networks[1].0 >= 3, "{by_networks:?}");
    // One more only if the wider read touched networks (one insert for all of them) and the
    // narrower touched none.
    assert!(
        by_networks[1].1 <= by_networks[0].1 + 1,
        "statements grew with networks: {by_networks:?}"
    );
}

both_databases!(
    a_network_admin_sees_its_own_network,
    shared_members_count_once,
    ratios_panel_equivalences_and_breakdowns,
    as_of_and_coverage_follow_the_returns,
    impact_statement_count_is_flat,
);
