//! Returns: exact, versioned, all-or-nothing, idempotent; read through the policy.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app};

const SUBMIT: &str = "mutation($i: SubmitReturnsInput!, $d: Boolean) { submitReturns(input: $i, dryRun: $d) { \
    replayed dryRun errors { path code reason } returns { id version status period periodStart periodEnd institution { key } \
    values { metric { code } value notReported breakdown method } } } }";
const RETURNS: &str = "query($f: ReturnFilterInput, $at: DateTime) { returns(first: 100, filter: $f, asOf: $at) { totalCount \
    edges { node { id version status period institution { key } values { metric { code } value notReported breakdown } } } } }";

fn spend(inst: &str, period: &str, total: &str, local: &str) -> Value {
    json!({"institution": inst, "period": period, "basis": "full ledger", "values": [
        {"metric": "procurement_spend_total", "value": total},
        {"metric": "procurement_spend_local", "value": local},
        {"metric": "headcount", "value": "120"},
        {"metric": "land_owned", "notReported": true},
    ]})
}

fn batch(network: &str, key: &str, returns: Vec<Value>) -> Value {
    json!({"i": {"networkId": network, "idempotencyKey": key, "returns": returns}})
}

async fn count_returns(app: &TestApp) -> i64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::returns::Entity::find()
        .count(&app.db)
        .await
        .unwrap() as i64
        + entity::return_values::Entity::find()
            .count(&app.db)
            .await
            .unwrap() as i64
}

async fn a_valid_batch_lands_whole_and_values_are_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let d = app
        .query_as(
            &sub,
            SUBMIT,
            batch(
                "sandwell",
                "k1",
                vec![
                    spend(
                        "sandwell-council",
                        "2023/24",
                        "412500000.10",
                        "118300000.05",
                    ),
                    spend("sandwell-college", "2023/24", "21400000", "5350000.5"),
                ],
            ),
        )
        .await["submitReturns"]
        .clone();
    assert_eq!(
        (d["replayed"].as_bool(), d["dryRun"].as_bool()),
        (Some(false), Some(false))
    );
    let rs = d["returns"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["version"], 1);
    assert_eq!(rs[0]["periodStart"], "2023-04-01");
    assert_eq!(rs[0]["periodEnd"], "2024-03-31");
    let v = &rs[1]["values"];
    assert_eq!(
        v[0]["value"], "21400000.00",
        "shown with the metric's scale"
    );
    assert_eq!(v[1]["value"], "5350000.50");
    assert_eq!(v[2]["value"], "120");
    assert_eq!(
        (v[3]["value"].clone(), v[3]["notReported"].clone()),
        (Value::Null, json!(true))
    );

    // The steward's admin reads them back exactly; the catalogue is served.
    let admin = app.token(As::Admin("sandwell"), "").await;
    let r = app
        .query_as(
            &admin,
            RETURNS,
            json!({"f": {"institution": "sandwell-council"}}),
        )
        .await;
    assert_eq!(r["returns"]["totalCount"], 1);
    assert_eq!(
        r["returns"]["edges"][0]["node"]["values"][0]["value"],
        "412500000.10"
    );
    let m = app.query("{ metrics { code unit scale group aggregation numerator denominator disclosureClass partOf breakdowns } }", json!({})).await;
    let metrics = m["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 15);
    let share = metrics
        .iter()
        .find(|m| m["code"] == "local_spend_share")
        .unwrap();
    assert_eq!(
        (share["aggregation"].as_str(), share["numerator"].as_str()),
        (Some("RATIO"), Some("procurement_spend_local"))
    );
    let ebr = metrics
        .iter()
        .find(|m| m["code"] == "employees_by_residence")
        .unwrap();
    assert_eq!(ebr["disclosureClass"], "PEOPLE_COUNT");
    assert_eq!(ebr["breakdowns"], json!(["district", "imd_decile"]));
}

async fn one_bad_item_writes_nothing_and_is_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let before = count_returns(&app).await;
    let mut bad = spend("sandwell-college", "2023/24", "100.00", "200.00");
    bad["values"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metric": "fte", "value": "12.345"}));
    bad["values"].as_array_mut().unwrap().push(
        json!({"metric": "employees_by_residence", "value": "4", "breakdown": "imd_decile:11"}),
    );
    bad["values"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metric": "emissions_scope2", "value": "100", "method": "DESNZ 2023"}));
    bad["values"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metric": "apprentices", "value": "-1"}));
    bad["values"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metric": "no_such_metric", "value": "1"}));
    let (_, body) = app
        .post_as(
            &sub,
            SUBMIT,
            batch(
                "sandwell",
                "k-bad",
                vec![spend("sandwell-council", "2023/24", "10.00", "5.00"), bad],
            ),
        )
        .await;
    let problems = body["errors"][0]["extensions"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "input.returns[1].values[4].value",
            "input.returns[1].values[5].breakdown",
            "input.returns[1].values[6].method",
            "input.returns[1].values[7].value",
            "input.returns[1].values[8].metric",
            "input.returns[1].values[1].value",
        ],
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    assert_eq!(count_returns(&app).await, before, "nothing written");
    // A rejected batch does not use up its key.
    app.query_as(
        &sub,
        SUBMIT,
        batch(
            "sandwell",
            "k-bad",
            vec![spend("sandwell-council", "2023/24", "10.00", "5.00")],
        ),
    )
    .await;
}

async fn retries_are_no_ops_and_dry_runs_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let b = batch(
        "sandwell",
        "nightly-2024-05-01",
        vec![spend("sandwell-council", "2023/24", "10.00", "5.00")],
    );
    let dry = app
        .query_as(&sub, SUBMIT, json!({"i": b["i"], "d": true}))
        .await["submitReturns"]
        .clone();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["returns"][0]["values"][0]["value"], "10.00");
    assert_eq!(count_returns(&app).await, 0, "a dry run writes nothing");
    // A dry run reports problems instead of refusing.
    let dry_bad = app
        .query_as(&sub, SUBMIT, json!({"i": batch("sandwell", "x", vec![spend("sandwell-council", "2023/24", "1.00", "5.00")])["i"], "d": true}))
        .await;
    assert_eq!(
        dry_bad["submitReturns"]["errors"][0]["path"],
        "input.returns[0].values[1].value"
    );

    let first = app.query_as(&sub, SUBMIT, b.clone()).await["submitReturns"].clone();
    let written = count_returns(&app).await;
    let again = app.query_as(&sub, SUBMIT, b.clone()).await["submitReturns"].clone();
    assert_eq!(again["replayed"], true);
    assert_eq!(
        again["returns"][0]["id"], first["returns"][0]["id"],
        "the first answer"
    );
    assert_eq!(count_returns(&app).await, written, "a retry writes nothing");
    // The same key with another body is a conflict.
    let other = batch(
        "sandwell",
        "nightly-2024-05-01",
        vec![spend("sandwell-council", "2023/24", "11.00", "5.00")],
    );
    assert_eq!(app.error_as(&sub, SUBMIT, other).await, "CONFLICT");
    // Keys are per network: another network may use the same key.
    let bc = app.token(As::Submitter("black-country"), "").await;
    app.query_as(
        &bc,
        SUBMIT,
        batch(
            "black-country",
            "nightly-2024-05-01",
            vec![spend("dudley-council", "2023/24", "3.00", "1.00")],
        ),
    )
    .await;
}

async fn restatements_keep_history_and_as_of_reads_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    app.query_as(
        &sub,
        SUBMIT,
        batch(
            "sandwell",
            "v1",
            vec![spend("sandwell-council", "2022/23", "100.00", "40.00")],
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.query_as(
        &sub,
        SUBMIT,
        batch(
            "sandwell",
            "v2",
            vec![spend("sandwell-council", "2022/23", "120.00", "40.00")],
        ),
    )
    .await;
    let now = app
        .query_as(
            &admin,
            RETURNS,
            json!({"f": {"institution": "sandwell-council"}}),
        )
        .await;
    assert_eq!(
        now["returns"]["totalCount"], 1,
        "one current version per period"
    );
    let node = &now["returns"]["edges"][0]["node"];
    assert_eq!(
        (
            node["version"].as_i64(),
            node["values"][0]["value"].as_str()
        ),
        (Some(2), Some("120.00"))
    );
    let then = app
        .query_as(
            &admin,
            RETURNS,
            json!({"f": {"institution": "sandwell-council"}, "at": between}),
        )
        .await;
    let node = &then["returns"]["edges"][0]["node"];
    assert_eq!(
        (
            node["version"].as_i64(),
            node["values"][0]["value"].as_str()
        ),
        (Some(1), Some("100.00"))
    );
    let before_any = app
        .query_as(&admin, RETURNS, json!({"at": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(before_any["returns"]["totalCount"], 0);
}

async fn approval_gates_what_fellow_networks_see(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = app.token(As::Operator, "").await;
    // Black Country requires approval; Sandwell's admin is a fellow (sandwell-hospitals is in both).
    app.query_as(&op, "mutation { updateNetwork(id: \"black-country\", input: {requiresApproval: true}) { key } }", json!({})).await;
    let bc_sub = app.token(As::Submitter("black-country"), "").await;
    let bc_admin = app.token(As::Admin("black-country"), "").await;
    let sandwell_admin = app.token(As::Admin("sandwell"), "").await;
    let birmingham_admin = app.token(As::Admin("birmingham"), "").await;
    let d = app
        .query_as(
            &bc_sub,
            SUBMIT,
            batch(
                "black-country",
                "a1",
                vec![spend("sandwell-hospitals", "2023/24", "900.00", "300.00")],
            ),
        )
        .await;
    let id = d["submitReturns"]["returns"][0]["id"].clone();
    assert_eq!(d["submitReturns"]["returns"][0]["status"], "SUBMITTED");
    let f = json!({"f": {"institution": "sandwell-hospitals"}});
    assert_eq!(
        app.query_as(&bc_admin, RETURNS, f.clone()).await["returns"]["totalCount"],
        1,
        "the steward sees it at once"
    );
    assert_eq!(
        app.query_as(&sandwell_admin, RETURNS, f.clone()).await["returns"]["totalCount"],
        0,
        "a fellow waits for approval"
    );

    let approve = "mutation($id: ID!) { approveReturn(id: $id) { status } }";
    assert_eq!(
        app.error_as(&sandwell_admin, approve, json!({"id": id}))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_as(&bc_sub, approve, json!({"id": id})).await,
        "FORBIDDEN"
    );
    app.query_as(&bc_admin, approve, json!({"id": id})).await;
    assert_eq!(
        app.query_as(&sandwell_admin, RETURNS, f.clone()).await["returns"]["totalCount"],
        1
    );
    // A network the institution never belonged to sees nothing; nor do anonymous readers.
    assert_eq!(
        app.query_as(&birmingham_admin, RETURNS, f.clone()).await["returns"]["totalCount"],
        0
    );
    assert_eq!(
        app.query(RETURNS, f.clone()).await["returns"]["totalCount"],
        0
    );
    assert_eq!(
        app.query_as(&op, RETURNS, f.clone()).await["returns"]["totalCount"],
        0,
        "operators read no returns"
    );

    // A restatement waits for approval too: the fellow keeps seeing the approved version.
    let d = app
        .query_as(
            &bc_sub,
            SUBMIT,
            batch(
                "black-country",
                "a2",
                vec![spend("sandwell-hospitals", "2023/24", "950.00", "300.00")],
            ),
        )
        .await;
    let v2 = d["submitReturns"]["returns"][0]["id"].clone();
    let seen = app.query_as(&sandwell_admin, RETURNS, f.clone()).await;
    assert_eq!(seen["returns"]["edges"][0]["node"]["version"], 1);
    let reject = "mutation($id: ID!, $r: String!) { rejectReturn(id: $id, reason: $r) { status } }";
    let (_, body) = app
        .post_as(&bc_admin, reject, json!({"id": v2, "r": " "}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "reason");
    app.query_as(
        &bc_admin,
        reject,
        json!({"id": v2, "r": "local spend does not match the ledger"}),
    )
    .await;
    let steward_view = app.query_as(&bc_admin, RETURNS, f.clone()).await;
    assert_eq!(
        steward_view["returns"]["edges"][0]["node"]["version"], 1,
        "a rejected version is not current"
    );
    assert_eq!(
        app.error_as(&bc_admin, approve, json!({"id": v2})).await,
        "CONFLICT"
    );

    // The chase list: the steward's admins only.
    let q = "{ network(id: \"black-country\") { submissions(period: \"2023/24\") { state institution { key } return { version } } } }";
    let s = app.query_as(&bc_admin, q, json!({})).await;
    let list = s["network"]["submissions"].as_array().unwrap();
    assert_eq!(list.len(), 15);
    let hospital = list
        .iter()
        .find(|x| x["institution"]["key"] == "sandwell-hospitals")
        .unwrap();
    assert_eq!(
        (
            hospital["state"].as_str(),
            hospital["return"]["version"].as_i64()
        ),
        (Some("APPROVED"), Some(1))
    );
    assert_eq!(list.iter().filter(|x| x["state"] == "MISSING").count(), 14);
    assert_eq!(
        app.error_as(&sandwell_admin, q, json!({})).await,
        "FORBIDDEN"
    );
}

async fn only_the_steward_submits(backend: Backend) {
    let app = spawn_app(backend).await;
    let bc = app.token(As::Submitter("black-country"), "").await;
    // sandwell-council is a Black Country member, but Sandwell stewards it.
    let (_, body) = app
        .post_as(
            &bc,
            SUBMIT,
            batch(
                "black-country",
                "k",
                vec![spend("sandwell-council", "2023/24", "1.00", "1.00")],
            ),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["problems"][0]["path"],
        "input.returns[0].institution"
    );
    // Nor may it submit in another network's name.
    assert_eq!(
        app.error_as(
            &bc,
            SUBMIT,
            batch(
                "sandwell",
                "k",
                vec![spend("sandwell-council", "2023/24", "1.00", "1.00")]
            )
        )
        .await,
        "FORBIDDEN"
    );
    // Scopes narrow what a submitter may send.
    let spend_only = app
        .token(
            As::Submitter("black-country"),
            "metrics:spend years:2023/24",
        )
        .await;
    let (_, body) = app
        .post_as(
            &spend_only,
            SUBMIT,
            batch(
                "black-country",
                "k2",
                vec![spend("dudley-council", "2023/24", "1.00", "1.00")],
            ),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["problems"][0]["path"], "input.returns[0].values[2].metric",
        "{body}"
    );
    let read_only = app
        .token(As::Submitter("black-country"), "read:returns")
        .await;
    assert_eq!(
        app.error_as(
            &read_only,
            SUBMIT,
            batch(
                "black-country",
                "k3",
                vec![spend("dudley-council", "2023/24", "1.00", "1.00")]
            )
        )
        .await,
        "FORBIDDEN"
    );
    // An institution must have been a member during the period.
    let (_, body) = app
        .post_as(
            &bc,
            SUBMIT,
            batch(
                "black-country",
                "k4",
                vec![spend("dudley-council", "2019/20", "1.00", "1.00")],
            ),
        )
        .await;
    assert!(
        body["errors"][0]["extensions"]["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("was not a member"),
        "{body}"
    );
    // Anonymous callers are not even considered.
    let (_, body) = app
        .post_graphql(SUBMIT, batch("black-country", "k5", vec![]))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

/// Batches restating the same return at once each get their own version (the benchmark
/// found PostgreSQL numbering them alike before institutions were locked while writing).
async fn concurrent_restatements_get_distinct_versions(backend: Backend) {
    let app = spawn_app(backend).await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let mut tasks = vec![];
    for k in 0..6 {
        let body = batch(
            "sandwell",
            &format!("c{k}"),
            vec![
                spend(
                    "sandwell-council",
                    "2023/24",
                    &format!("{}.00", 100 + k),
                    "1.00",
                ),
                spend("sandwell-college", "2023/24", "5.00", "1.00"),
            ],
        );
        let (client, address, token) = (app.client.clone(), app.address.clone(), sub.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{address}/graphql"))
                .bearer_auth(token)
                .json(&json!({"query": SUBMIT, "variables": body}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut versions = vec![];
    for t in tasks {
        let body = t.await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        versions.push(
            body["data"]["submitReturns"]["returns"][0]["version"]
                .as_i64()
                .unwrap(),
        );
    }
    versions.sort();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
}

both_databases!(
    concurrent_restatements_get_distinct_versions,
    a_valid_batch_lands_whole_and_values_are_exact,
    one_bad_item_writes_nothing_and_is_named,
    retries_are_no_ops_and_dry_runs_write_nothing,
    restatements_keep_history_and_as_of_reads_it,
    approval_gates_what_fellow_networks_see,
    only_the_steward_submits,
);

/// Issue 12: a Sandwell admin's token scoped to another network, or to other years, cannot
/// read the chase list or decide on returns outside its scopes, and a refusal shows nothing.
async fn return_administration_honours_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = app.token(As::Operator, "").await;
    app.query_as(
        &op,
        "mutation { updateNetwork(id: \"sandwell\", input: {requiresApproval: true}) { key } }",
        json!({}),
    )
    .await;
    let sub = app.token(As::Submitter("sandwell"), "").await;
    let d = app
        .query_as(
            &sub,
            SUBMIT,
            batch(
                "sandwell",
                "s1",
                vec![
                    spend("sandwell-college", "2020/21", "4321987.00", "1234.00"),
                    spend("sandwell-college", "2022/23", "5432198.00", "2345.00"),
                ],
            ),
        )
        .await;
    let ids: Vec<Value> = d["submitReturns"]["returns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let (old, recent) = (ids[0].clone(), ids[1].clone());
    let chase = |period: &str| {
        format!(
            "{{ network(id: \"sandwell\") {{ submissions(period: \"{period}\") {{ state institution {{ key }} \
             return {{ values {{ value }} }} }} }} }}"
        )
    };
    let approve = "mutation($id: ID!) { approveReturn(id: $id) { status values { value } } }";
    let reject = "mutation($id: ID!, $r: String!) { rejectReturn(id: $id, reason: $r) { status values { value } } }";
    let shows_nothing = |body: &Value| {
        let text = body.to_string();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{text}"
        );
        assert!(
            !text.contains("4321987")
                && !text.contains("5432198")
                && !text.contains("sandwell-college"),
            "a refusal shows nothing: {text}"
        );
    };

    // Scoped to another network: no administration of Sandwell's returns at all.
    let elsewhere = app
        .token(As::Admin("sandwell"), "network:black-country")
        .await;
    let (_, body) = app.post_as(&elsewhere, &chase("2022/23"), json!({})).await;
    shows_nothing(&body);
    let (_, body) = app
        .post_as(&elsewhere, approve, json!({"id": recent}))
        .await;
    shows_nothing(&body);
    let (_, body) = app
        .post_as(&elsewhere, reject, json!({"id": old, "r": "no"}))
        .await;
    shows_nothing(&body);

    // Scoped to 2022/23: that year's chase list and returns, and no others.
    let this_year = app.token(As::Admin("sandwell"), "years:2022/23").await;
    let (_, body) = app.post_as(&this_year, &chase("2020/21"), json!({})).await;
    shows_nothing(&body);
    let (_, body) = app
        .post_as(&this_year, reject, json!({"id": old, "r": "wrong ledger"}))
        .await;
    shows_nothing(&body);
    let (_, body) = app.post_as(&this_year, approve, json!({"id": old})).await;
    shows_nothing(&body);
    let list = app.query_as(&this_year, &chase("2022/23"), json!({})).await;
    let college = list["network"]["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["institution"]["key"] == "sandwell-college")
        .cloned()
        .unwrap();
    assert_eq!(college["state"], "SUBMITTED");
    let d = app
        .query_as(&this_year, approve, json!({"id": recent}))
        .await;
    assert_eq!(d["approveReturn"]["status"], "APPROVED");

    // The refused decisions changed nothing: the unscoped admin still finds 2020/21 waiting.
    let admin = app.token(As::Admin("sandwell"), "").await;
    let d = app
        .query_as(
            &admin,
            RETURNS,
            json!({"f": {"institution": "sandwell-college", "period": "2020/21"}}),
        )
        .await;
    assert_eq!(d["returns"]["edges"][0]["node"]["status"], "SUBMITTED");
    app.query_as(&admin, reject, json!({"id": old, "r": "wrong ledger"}))
        .await;
}

both_databases!(return_administration_honours_scopes);

/// Issue 13: a network admin's returns with their institutions and values cost the same
/// statements for one return as for all of them (the loaders batch each level). The count includes
/// the access log's write, which lands after the answer: each read waits for the counter to
/// settle. A loader may split a level in two when its keys arrive apart, so one more is
/// allowed; growth with the page would be several.
async fn a_page_of_returns_costs_the_same_statements_at_any_size(backend: Backend) {
    let app = crate::helpers::with_demo_returns(backend).await;
    let admin = app.token(As::Admin("birmingham"), "").await;
    let q = |n: u32| {
        format!(
            "{{ returns(filter: {{period: \"2022/23\"}}, first: {n}) {{ nodes {{ id version \
             institution {{ key }} values {{ metric {{ code }} value }} }} }} }}"
        )
    };
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
    let all = app.query_as(&admin, &q(100), json!({})).await["returns"]["nodes"]
        .as_array()
        .unwrap()
        .len() as u32;
    assert!(all >= 4, "{all} returns to page through");
    let mut counts = vec![];
    for n in [1, all / 2, all] {
        let before = settled().await;
        let d = app.query_as(&admin, &q(n), json!({})).await;
        let after = settled().await;
        assert_eq!(
            d["returns"]["nodes"].as_array().unwrap().len(),
            n as usize,
            "{d}"
        );
        counts.push(after - before);
    }
    let (least, most) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(most - least <= 1, "statement counts grew: {counts:?}");
    assert!(most <= 10, "{counts:?}");
    println!(
        "returns page statements ({backend:?}): {counts:?} for 1, {}, {all} returns",
        all / 2
    );
}

both_databases!(a_page_of_returns_costs_the_same_statements_at_any_size);
