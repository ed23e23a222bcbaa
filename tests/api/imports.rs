//! Returns from CSV files, through the command line, on both databases.

use std::process::Command;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app, spawn_with};

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

const BOUNDARY: &str = "anchorfed-test-boundary";

/// The start of a multipart upload of returns for Sandwell: the operations, the map, and the
/// file part's headers and first rows.
fn upload_head() -> Vec<u8> {
    let operations =
        json!({"query": UPLOAD, "variables": {"n": "sandwell", "f": null, "d": false}});
    let mut head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.f\"]}}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"returns.csv\"\r\n\
         Content-Type: text/csv\r\n\r\ninstitution,period,metric,value,breakdown,method\n"
    )
    .into_bytes();
    while head.len() < 64 * 1024 {
        head.extend_from_slice(b"sandwell-cvo,2022/23,headcount,not-a-number,,\n");
    }
    head
}

/// Sends an upload's headers, declaring `declared` bytes of body (or chunked when `None`),
/// then `body`, and reads the answer without sending anything more. The server must answer
/// from what it has: a server that waited for the rest of the body would time out here.
fn partial_upload(
    address: &str,
    token: Option<&str>,
    declared: Option<usize>,
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let host = address.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         GraphQL-Require-Preflight: 1\r\nConnection: close\r\n"
    );
    match declared {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A refused upload may be answered and closed while this is still being written.
    let _ = match declared {
        Some(_) => s.write_all(body),
        None => body.chunks(16 * 1024).try_for_each(|c| {
            s.write_all(format!("{:x}\r\n", c.len()).as_bytes())?;
            s.write_all(c)?;
            s.write_all(b"\r\n")
        }),
    };
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Read the status line, headers and as much of the body as the server sends before it
    // closes (it sends `Connection: close` or closes an upload it did not read).
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break;
            }
            Err(e) => panic!(
                "no answer while the upload was unsent ({} bytes so far): {e}",
                answer.len()
            ),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((headers, body)) = text.split_once("\r\n\r\n") {
            let len = headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Issue 12: an upload is authorised from its headers, before a byte of its body is read,
/// buffered or parsed. Four anonymous 16 MB uploads at once are each answered 401 while the
/// client has sent only the first 64 KB; a token that may not submit gets 403 the same way, and
/// so does one that may submit, but not for the network the operations name; an upload
/// declared larger than the limit gets 413 unread, and one that does not declare its size is
/// stopped as it streams past the limit.
async fn uploads_are_refused_before_their_bodies_are_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let head = upload_head();
    let sixteen_mb = 16 << 20;
    let anonymous: Vec<_> = (0..4)
        .map(|_| {
            let (address, head) = (app.address.clone(), head.clone());
            tokio::task::spawn_blocking(move || {
                partial_upload(&address, None, Some(sixteen_mb), &head)
            })
        })
        .collect();
    for t in anonymous {
        let (status, text) = t.await.unwrap();
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("\"UNAUTHENTICATED\""), "{text}");
        assert!(!text.contains("row"), "no row-level problems: {text}");
    }
    for token in [
        app.token(As::Analyst("E47000007"), "").await,
        app.token(As::Admin("sandwell"), "read:returns").await,
        app.token(As::Operator, "").await,
    ] {
        let (address, head) = (app.address.clone(), head.clone());
        let (status, text) = tokio::task::spawn_blocking(move || {
            partial_upload(&address, Some(&token), Some(sixteen_mb), &head)
        })
        .await
        .unwrap();
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("\"FORBIDDEN\""), "{text}");
    }
    // Another network's submitter may upload, but not to Sandwell: refused once the
    // operations are read, before a byte of the file.
    let elsewhere = app.token(As::Submitter("birmingham"), "").await;
    let (address, h) = (app.address.clone(), head.clone());
    let (status, text) = tokio::task::spawn_blocking(move || {
        partial_upload(&address, Some(&elsewhere), Some(sixteen_mb), &h)
    })
    .await
    .unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("\"FORBIDDEN\""), "{text}");
    let submitter = app.token(As::Submitter("sandwell"), "").await;
    let (address, h, t) = (app.address.clone(), head.clone(), submitter.clone());
    let (status, text) = tokio::task::spawn_blocking(move || {
        partial_upload(&address, Some(&t), Some(sixteen_mb + 1), &h)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("limits.upload_bytes"), "{text}");

    // A whole bad file from a stranger, or from another network's submitter, is refused
    // without a word about its rows.
    let bad =
        "institution,period,metric,value,breakdown,method\nsandwell-cvo,2022/23,headcount,abc,,\n";
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("GraphQL-Require-Preflight", "1")
        .multipart(
            reqwest::multipart::Form::new()
                .text(
                    "operations",
                    json!({"query": UPLOAD, "variables": {"n": "sandwell", "f": null}}).to_string(),
                )
                .text("map", r#"{"0": ["variables.f"]}"#)
                .part(
                    "0",
                    reqwest::multipart::Part::bytes(bad.as_bytes().to_vec()).file_name("r.csv"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
    let elsewhere = app.token(As::Submitter("birmingham"), "").await;
    let (status, body) = upload(&app, &elsewhere, bad, true, false).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert!(
        body["errors"][0]["extensions"].get("problems").is_none(),
        "{body}"
    );
    assert_eq!(stored(&app).await, 0);
    // The steward's own submitter still uploads as before.
    let (_, body) = upload(&app, &submitter, bad, true, false).await;
    assert_eq!(
        body["errors"][0]["extensions"]["problems"][0]["path"], "file: row 2, column value",
        "{body}"
    );

    // Without a declared length the size is counted as the body streams.
    let small = spawn_with(backend, true, |s| s.limits.upload_bytes = 100_000).await;
    let submitter = small.token(As::Submitter("sandwell"), "").await;
    let mut big = head.clone();
    big.resize(300_000, b'x');
    let address = small.address.clone();
    let (status, text) =
        tokio::task::spawn_blocking(move || partial_upload(&address, Some(&submitter), None, &big))
            .await
            .unwrap();
    assert_eq!(status, 413, "{text}");
    assert_eq!(stored(&small).await, 0);
}

both_databases!(uploads_are_refused_before_their_bodies_are_read);
