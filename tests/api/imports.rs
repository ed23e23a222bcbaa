//! Returns from CSV files, through the command line, on both databases.

use std::process::Command;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app};

fn import(app: &TestApp, file: &std::path::Path, network: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anchorfed"))
        .env("DATABASE_URL", app.settings.database_url().expose_secret())
        .env("ANCHORFED_DATA_DIR", &app.settings.data_dir)
        .args(["import", "returns"])
        .arg(file)
        .args(["--network", network])
        .output()
        .unwrap()
}

async fn stored(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::return_values::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

async fn the_sample_file_imports_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/returns-sample.csv");
    let out = import(&app, &sample, "sandwell");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 3 returns"));
    let n = stored(&app).await;
    assert_eq!(n, 26, "one value a row");
    let again = import(&app, &sample, "sandwell");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing written"));
    assert_eq!(stored(&app).await, n, "the same file twice writes once");

    // What landed reads back exactly, "not reported" included.
    let admin = app.token(As::Admin("sandwell"), "").await;
    let d = app
        .query_as(&admin, "{ returns(first: 10, filter: {institution: \"sandwell-college\"}) { edges { node { values { metric { code } value notReported } } } } }", json!({}))
        .await;
    let values = d["returns"]["edges"][0]["node"]["values"]
        .as_array()
        .unwrap()
        .clone();
    let land = values
        .iter()
        .find(|v| v["metric"]["code"] == "land_owned")
        .unwrap();
    assert_eq!(
        (land["value"].clone(), land["notReported"].clone()),
        (json!(null), json!(true))
    );
}

async fn a_bad_row_is_named_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("returns.csv");
    std::fs::write(
        &file,
        "institution,period,metric,value,breakdown,method\n\
         sandwell-council,2023/24,procurement_spend_total,1000.00,,\n\
         sandwell-council,2023/24,procurement_spend_local,250.00,,\n\
         sandwell-college,2023/24,headcount,12.5,,\n\
         sandwell-college,2023/24,employees_by_residence,3,imd_decile:0,\n",
    )
    .unwrap();
    let out = import(&app, &file, "sandwell");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 4, column value"), "{err}");
    assert!(err.contains("row 5, column breakdown"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(stored(&app).await, 0);

    // A row with the wrong number of fields is named too.
    std::fs::write(
        &file,
        "institution,period,metric,value,breakdown,method\nsandwell-council,2023/24,headcount\n",
    )
    .unwrap();
    let out = import(&app, &file, "sandwell");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("row 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&app).await, 0);
}

both_databases!(
    the_sample_file_imports_once,
    a_bad_row_is_named_and_nothing_is_written
);

const UPLOAD: &str = "mutation($n: ID!, $f: Upload!, $d: Boolean) { importReturns(networkId: $n, file: $f, dryRun: $d) { replayed dryRun errors { path } returns { version institution { key } } } }";

async fn upload(
    app: &TestApp,
    token: &str,
    csv: &str,
    preflight: bool,
    dry: bool,
) -> (u16, serde_json::Value) {
    let operations = json!({"query": UPLOAD, "variables": {"n": "sandwell", "f": null, "d": dry}});
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", r#"{"0": ["variables.f"]}"#)
        .part(
            "0",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name("returns.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let mut r = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .multipart(form);
    if preflight {
        r = r.header("GraphQL-Require-Preflight", "1");
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn uploads_over_graphql(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/returns-sample.csv"),
    )
    .unwrap();
    // Without the preflight header a browser could have sent it cross-site: refused.
    let (status, body) = upload(&app, &admin, &sample, false, false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(stored(&app).await, 0);
    let (status, body) = upload(&app, &admin, &sample, true, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["importReturns"]["dryRun"], true);
    assert_eq!(stored(&app).await, 0, "a dry run writes nothing");
    let (_, body) = upload(&app, &admin, &sample, true, false).await;
    assert_eq!(
        body["data"]["importReturns"]["returns"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{body}"
    );
    let (_, body) = upload(&app, &admin, &sample, true, false).await;
    assert_eq!(
        body["data"]["importReturns"]["replayed"], true,
        "the same file twice writes once"
    );
    assert_eq!(stored(&app).await, 26);
    // A bad row is named by row and column.
    let bad =
        "institution,period,metric,value,breakdown,method\nsandwell-cvo,2022/23,headcount,abc,,\n";
    let (_, body) = upload(&app, &admin, bad, true, false).await;
    assert_eq!(
        body["errors"][0]["extensions"]["problems"][0]["path"], "file: row 2, column value",
        "{body}"
    );
    assert_eq!(stored(&app).await, 26);
}

both_databases!(uploads_over_graphql);
