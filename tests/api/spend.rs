//! Issue 14, part A: supplier spend lines streamed in over `POST /imports/spend` (and the
//! console), all or nothing, followed through `importJob`; the postcode lookup and the
//! deprivation deciles loaded from files in their published layouts. Every test on both
//! databases.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{
    As, Backend, TestApp, fresh_database_url, spawn_app, spawn_with, test_settings,
};

pub(crate) const HEADER: &str =
    "supplier,supplier_id,postcode,district,amount,category,sme,vcse,sole_trader,anchor\n";

/// The NSPL's published header, May 2025 edition (2021 LSOAs).
const NSPL_2025: &str = "pcd,pcd2,pcds,dointr,doterm,usertype,oseast1m,osnrth1m,osgrdind,oa21,cty,ced,laua,ward,nhser,ctry,rgn,pcon,ttwa,itl,park,lsoa21,msoa21,wz11,sicbl,bua24,ruc21,oac11,lat,long,lep1,lep2,pfa,imd,icb";
/// The NSPL's published header, August 2020 edition (2011 LSOAs).
const NSPL_2020: &str = "pcd,pcd2,pcds,dointr,doterm,usertype,oseast1m,osnrth1m,osgrdind,oa11,cty,ced,laua,ward,hlthau,nhser,ctry,rgn,pcon,eer,teclec,ttwa,pct,nuts,park,lsoa11,msoa11,wz11,ccg,bua11,buasd11,ru11ind,oac11,lat,long,lep1,lep2,pfa,imd,calncv,stp";

/// One postcode of a generated lookup.
#[derive(Clone)]
struct Pc {
    pcds: String,
    laua: &'static str,
    lsoa: String,
    doterm: &'static str,
}

/// An NSPL file in the published layout `header`: every column present and quoted as ONS
/// writes them, the columns this does not read filled with plausible codes.
fn nspl(header: &str, rows: &[Pc]) -> String {
    let names: Vec<&str> = header.split(',').collect();
    let mut out = String::from(header);
    out.push('\n');
    for r in rows {
        let (outward, inward) = r.pcds.split_once(' ').unwrap();
        let fields: Vec<String> = names
            .iter()
            .map(|n| match *n {
                "pcd" => format!("{outward:<4}{inward}"),
                "pcd2" => format!("{outward:<5}{inward}"),
                "pcds" => r.pcds.clone(),
                "dointr" => "199001".into(),
                "doterm" => r.doterm.into(),
                "laua" => r.laua.into(),
                "lsoa21" | "lsoa11" => r.lsoa.clone(),
                "lat" => "52.512345".into(),
                "long" => "-1.987654".into(),
                "usertype" => "0".into(),
                "osgrdind" => "1".into(),
                "imd" => "12345".into(),
                "cty" | "ced" | "park" => "E99999999".into(),
                _ => "E00000001".into(),
            })
            .collect();
        let quoted: Vec<String> = fields.iter().map(|f| format!("\"{f}\"")).collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

/// The Indices of Deprivation's File 7 layout (its leading columns, by their published
/// names), for LSOAs of `vintage` boundaries.
fn imd(vintage: u16, rows: &[(&str, u32, u8)]) -> String {
    let lad = if vintage == 2011 { 2019 } else { 2024 };
    let mut out = format!(
        "LSOA code ({vintage}),LSOA name ({vintage}),Local Authority District code ({lad}),\
         Local Authority District name ({lad}),Index of Multiple Deprivation (IMD) Score,\
         Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived),\
         Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs),\
         Income Score (rate),Income Rank (where 1 is most deprived),\
         Income Decile (where 1 is most deprived 10% of LSOAs)\n"
    );
    for (code, rank, decile) in rows {
        out.push_str(&format!(
            "{code},Sandwell 001A,E08000028,Sandwell,41.2,{rank},{decile},0.21,{rank},{decile}\n"
        ));
    }
    out
}

/// Generated postcodes in Sandwell and Birmingham: `B69 1AA`, `B69 1AB`, …
fn postcodes(n: usize) -> Vec<Pc> {
    let letters = b"ABDEFGHJLNPQRSTUWXYZ";
    (0..n)
        .map(|i| {
            let (a, b) = (letters[i % 20] as char, letters[(i / 20) % 20] as char);
            let sandwell = i % 2 == 0;
            Pc {
                pcds: format!(
                    "{} {}{b}{a}",
                    if sandwell { "B69" } else { "B1" },
                    1 + i / 400
                ),
                laua: if sandwell { "E08000028" } else { "E08000025" },
                lsoa: format!("E0100{:04}", 9000 + i % 500),
                doterm: "",
            }
        })
        .collect()
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Lines, versions and staged rows stored, in that order.
async fn stored(db: &DatabaseConnection) -> (i64, i64, i64) {
    (
        count(db, "SELECT COUNT(*) FROM spend_lines").await,
        count(db, "SELECT COUNT(*) FROM spend_files").await,
        count(db, "SELECT COUNT(*) FROM spend_staging").await,
    )
}

async fn load_postcodes(db: &DatabaseConnection, csv: String) {
    let loaded = anchorfed::geography::nspl::load(db, std::io::Cursor::new(csv.into_bytes()))
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    assert!(
        matches!(loaded, anchorfed::geography::Loaded::Written { .. }),
        "{loaded:?}"
    );
}

/// POSTs a spend file; returns the status and the answer.
async fn post(app: &TestApp, token: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    let mut r = app
        .client
        .post(format!("{}/imports/spend?{query}", app.address))
        .header("content-type", "text/csv")
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const COLLEGE: &str = "institution=sandwell-college&period=2023/24";

const JOB: &str = "query($id: ID!) { importJob(id: $id) { id kind state rowsRead rowsRejected failure \
    network { key } institution { key } period problems { line column code reason } \
    result { version replayed lines total placeUnknownLines placeUnknownAmount \
             placeUnknown { line postcode reason } sha256 } } }";

/// Follows a job until it has ended.
async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let d = app.query_as(token, JOB, json!({ "id": id })).await;
        let job = d["importJob"].clone();
        if job["state"] == "SUCCEEDED" || job["state"] == "FAILED" {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the job did not end: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a file and follows its job to its end.
pub(crate) async fn import(app: &TestApp, token: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
    let (status, answer) = post(app, Some(token), query, body).await;
    let id = answer["jobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no job id: {status} {answer}"))
        .to_owned();
    (status, finished(app, token, &id).await)
}

/// 200,000 lines streamed in: every one stored once, exactly, each supplier placed by its
/// postcode (or the district given), unknown postcodes counted and named, nothing left staged.
async fn a_large_file_streams_in_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let pcs = postcodes(1000);
    load_postcodes(&app.db, nspl(NSPL_2025, &pcs)).await;
    let n = 200_000usize;
    let mut body = String::with_capacity(n * 80);
    body.push_str(HEADER);
    let (mut total, mut unknown, mut unknown_total, mut in_sandwell) = (0i64, 0, 0i64, 0);
    for i in 0..n {
        let pence = (i as i64 % 1_000_000) * 7 + 1;
        total += pence;
        let amount = format!("{}.{:02}", pence / 100, pence % 100);
        let (postcode, district) = match i {
            _ if i % 1000 == 999 => {
                unknown += 1;
                unknown_total += pence;
                ("ZZ9 9ZZ".to_owned(), "")
            }
            _ if i % 997 == 0 => ("".to_owned(), "E08000027"),
            _ => {
                let pc = &pcs[i % pcs.len()];
                in_sandwell += usize::from(pc.laua == "E08000028");
                (pc.pcds.clone(), "")
            }
        };
        body.push_str(&format!(
            "\"Fictional Supplier {i}, Ltd\",CH{i:08},{postcode},{district},{amount},Works,{},no,no,no\n",
            if i % 3 == 0 { "yes" } else { "no" }
        ));
    }
    let token = app.token(As::Submitter("sandwell"), "").await;
    let (status, job) = import(&app, &token, COLLEGE, body.into_bytes()).await;
    assert_eq!(status, 202);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["rowsRead"], n);
    assert_eq!(job["rowsRejected"], 0);
    let r = &job["result"];
    assert_eq!(
        (
            r["version"].clone(),
            r["replayed"].clone(),
            r["lines"].clone()
        ),
        (json!(1), json!(false), json!(n))
    );
    assert_eq!(
        r["total"],
        format!("{}.{:02}", total / 100, total % 100),
        "exact to the penny"
    );
    assert_eq!(r["placeUnknownLines"], unknown);
    assert_eq!(
        r["placeUnknownAmount"],
        format!("{}.{:02}", unknown_total / 100, unknown_total % 100)
    );
    let first = &r["placeUnknown"][0];
    assert_eq!(
        (first["line"].clone(), first["postcode"].clone()),
        (json!(1001), json!("ZZ9 9ZZ"))
    );
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("not in the postcode lookup")
    );
    assert_eq!(stored(&app.db).await, (n as i64, 1, 0));
    let db = &app.db;
    assert_eq!(
        count(db, "SELECT CAST(SUM(amount) AS BIGINT) FROM spend_lines").await,
        total
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM spend_lines WHERE district_code = 'E08000028' AND place = 'POSTCODE'"
        )
        .await,
        in_sandwell as i64
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM spend_lines WHERE district_code = 'E08000027' AND place = 'DISTRICT' AND lsoa_code IS NULL"
        )
        .await,
        count(db, "SELECT COUNT(*) FROM spend_lines WHERE postcode IS NULL").await
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM spend_lines WHERE place = 'UNKNOWN' AND district_code IS NULL"
        )
        .await,
        unknown as i64
    );
    // Names are kept as given, commas and all.
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM spend_lines WHERE supplier = 'Fictional Supplier 7, Ltd' AND line = 9 AND supplier_id = 'CH00000007'"
        )
        .await,
        1
    );
}

/// Every kind of bad line is named with its line number, every bad line is counted, and
/// nothing is written, however far into the file the bad line comes.
async fn bad_lines_are_named_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token(As::Admin("sandwell"), "").await;
    let body = format!(
        "{HEADER}Fictional Good Ltd,CH1,B69 4HE,,10.00,Works,yes,no,no,no\n\
         ,CH2,,,10,,,,,\n\
         Fictional No Id Ltd,,,,10,,,,,\n\
         Fictional Bad Postcode Ltd,CH4,NOT A POSTCODE,,10,,,,,\n\
         Fictional Region Ltd,CH5,,E47000007,10,,,,,\n\
         Fictional Words Ltd,CH6,,,ten pounds,,,,,\n\
         Fictional Fraction Ltd,CH7,,,1.234,,,,,\n\
         Fictional Credit Ltd,CH8,,,-5.00,,,,,\n\
         Fictional Maybe Ltd,CH9,,,10,,maybe,,,\n\
         Fictional Short Ltd,CH10,,,10\n\
         Fictional Nothing Ltd,CH11,,,,,,,,\n\
         Fictional Two Ltd,,,,,,,,,\n"
    );
    let (status, job) = import(&app, &token, COLLEGE, body.into_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(job["state"], "FAILED");
    assert_eq!(
        (job["rowsRead"].clone(), job["rowsRejected"].clone()),
        (json!(12), json!(11))
    );
    let named: Vec<(i64, Value)> = job["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_i64().unwrap(), p["column"].clone()))
        .collect();
    let want = [
        (3, json!("supplier")),
        (4, json!("supplier_id")),
        (5, json!("postcode")),
        (6, json!("district")),
        (7, json!("amount")),
        (8, json!("amount")),
        (9, json!("amount")),
        (10, json!("sme")),
        (11, Value::Null),
        (12, json!("amount")),
        (13, json!("supplier_id")),
        (13, json!("amount")),
    ];
    assert_eq!(named, want, "{job}");
    assert!(
        job["failure"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    assert!(job["result"].is_null());
    assert_eq!(stored(&app.db).await, (0, 0, 0));

    // A bad line after more good lines than SQLite stages in one transaction: the staged
    // rows go too.
    let mut body = String::from(HEADER);
    for i in 0..60_000 {
        body.push_str(&format!("Fictional Supplier {i} Ltd,CH{i},,,1.00,,,,,\n"));
    }
    body.push_str("Fictional Last Ltd,CHX,,,1.001,,,,,\n");
    let (status, job) = import(&app, &token, COLLEGE, body.into_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(job["problems"][0]["line"], 60_002);
    assert_eq!(job["rowsRejected"], 1);
    assert_eq!(stored(&app.db).await, (0, 0, 0));

    // A wrong header is line 1; an empty file is refused too.
    let (_, job) = import(&app, &token, COLLEGE, b"supplier,amount\nA,1\n".to_vec()).await;
    assert_eq!(job["problems"][0]["line"], 1);
    let (_, job) = import(&app, &token, COLLEGE, HEADER.as_bytes().to_vec()).await;
    assert_eq!(
        (job["state"].clone(), job["problems"][0]["line"].clone()),
        (json!("FAILED"), json!(2))
    );
    assert_eq!(stored(&app.db).await, (0, 0, 0));

    // A body cut short is no file, however good its lines: the client goes away midway.
    let (address, t) = (app.address.clone(), token.clone());
    let half = format!("{HEADER}Fictional Good Ltd,CH1,,,10.00,,,,,\n");
    tokio::task::spawn_blocking(move || {
        drop(start_upload(
            &address,
            Some(&t),
            COLLEGE,
            1 << 20,
            half.as_bytes(),
        ))
    })
    .await
    .unwrap();
    let started = Instant::now();
    let cut = loop {
        let n = count(
            &app.db,
            "SELECT COUNT(*) FROM import_jobs WHERE state = 'FAILED' AND failure LIKE '%could not be read to its end%'",
        )
        .await;
        if n == 1 || started.elapsed() > Duration::from_secs(20) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cut, 1, "the job of a body cut short fails");
    assert_eq!(stored(&app.db).await, (0, 0, 0));
}

/// The same file twice writes once; a new file is a new version and the old one stays.
async fn the_same_file_twice_writes_once(backend: Backend) {
    let app = spawn_app(backend).await;
    load_postcodes(&app.db, nspl(NSPL_2025, &postcodes(10))).await;
    let token = app.token(As::Admin("sandwell"), "").await;
    let mut file = String::from(HEADER);
    for i in 0..500 {
        file.push_str(&format!(
            "Fictional Supplier {i} Ltd,CH{i},B69 1AA,,12.34,,,,,\n"
        ));
    }
    let (_, first) = import(&app, &token, COLLEGE, file.clone().into_bytes()).await;
    assert_eq!(first["state"], "SUCCEEDED", "{first}");
    let (status, again) = import(&app, &token, COLLEGE, file.clone().into_bytes()).await;
    assert_eq!(status, 202);
    assert_eq!(again["state"], "SUCCEEDED");
    assert_eq!(again["result"]["replayed"], true);
    assert_eq!(again["result"]["version"], 1);
    assert_eq!(again["result"]["sha256"], first["result"]["sha256"]);
    assert_ne!(again["id"], first["id"]);
    assert_eq!(stored(&app.db).await, (500, 1, 0));

    // Another file for the same institution and period is version 2; version 1 stays.
    file.push_str("Fictional Late Invoice Ltd,CHL,B69 1AA,,1.00,,,,,\n");
    let (_, second) = import(&app, &token, COLLEGE, file.into_bytes()).await;
    assert_eq!(
        (
            second["result"]["version"].clone(),
            second["result"]["replayed"].clone()
        ),
        (json!(2), json!(false))
    );
    assert_eq!(stored(&app.db).await, (1001, 2, 0));
    // The same file for another period is its own first version.
    let (_, other) = import(
        &app,
        &token,
        "institution=sandwell-college&period=2022/23",
        format!("{HEADER}Fictional Supplier Ltd,CH1,,,1.00,,,,,\n").into_bytes(),
    )
    .await;
    assert_eq!(other["result"]["version"], 1);
    assert_eq!(other["period"], "2022/23");
}

/// Sends a request's head and the start of its body over a raw connection, and returns the
/// connection without finishing the body.
fn start_upload(
    address: &str,
    token: Option<&str>,
    query: &str,
    declared: usize,
    body: &[u8],
) -> std::net::TcpStream {
    let host = address.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "POST /imports/spend?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\n\
         Content-Length: {declared}\r\n"
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A refused upload may be answered and closed while this is still being written.
    let _ = s.write_all(body);
    s
}

/// The status line and headers the server answered with, before the body was sent.
fn answer_unsent(mut s: std::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer while the body was unsent: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whoever may not import is turned away from the headers, before a byte of the body is read
/// (a body of 100 MB is declared and never sent); and nobody follows another network's jobs.
async fn readers_without_rights_are_refused_before_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let declared = 100 << 20;
    let refuse = |token: Option<String>, query: &'static str| {
        let address = app.address.clone();
        tokio::task::spawn_blocking(move || {
            answer_unsent(start_upload(
                &address,
                token.as_deref(),
                query,
                declared,
                HEADER.as_bytes(),
            ))
        })
    };
    let text = refuse(None, COLLEGE).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        text.to_lowercase().contains("www-authenticate: bearer"),
        "{text}"
    );
    let text = refuse(Some("not-a-token".into()), COLLEGE).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    for (token, why) in [
        (app.token(As::Analyst("E47000007"), "").await, "an analyst"),
        (app.token(As::Operator, "").await, "an operator"),
        (
            app.token(As::Admin("sandwell"), "read:returns read:impact")
                .await,
            "read verbs only",
        ),
        (
            app.token(As::Submitter("sandwell"), "metrics:employment")
                .await,
            "another metric group",
        ),
        (
            app.token(As::Submitter("sandwell"), "years:2021/22").await,
            "another year",
        ),
        // The steward of Birmingham's institutions is not Sandwell's, and Black Country's
        // admins do not steward Sandwell College though it is a member there.
        (
            app.token(As::Admin("birmingham"), "").await,
            "another network",
        ),
        (
            app.token(As::Admin("black-country"), "").await,
            "a fellow member's network",
        ),
    ] {
        let text = refuse(Some(token), COLLEGE).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 403"), "{why}: {text}");
    }
    // A declared size past the limit is refused unread too.
    let admin = app.token(As::Admin("sandwell"), "").await;
    let address = app.address.clone();
    let big = app.settings.limits.import_bytes as usize + 1;
    let text = tokio::task::spawn_blocking(move || {
        answer_unsent(start_upload(&address, Some(&admin), COLLEGE, big, b""))
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(stored(&app.db).await, (0, 0, 0));
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM import_jobs").await,
        0,
        "no job for a refusal"
    );

    // Bad queries and unknown institutions, for one who may import.
    let admin = app.token(As::Admin("sandwell"), "").await;
    let body = || format!("{HEADER}A,1,,,1,,,,,\n").into_bytes();
    for (query, want) in [
        ("institution=sandwell-college", 400),
        ("institution=sandwell-college&period=2023-24", 400),
        ("institution=no-such-place&period=2023/24", 404),
        ("institution=bham-college&period=2023/24", 403),
    ] {
        assert_eq!(
            post(&app, Some(&admin), query, body()).await.0,
            want,
            "{query}"
        );
    }

    // A job is followed by its network's writers only; to others it does not exist.
    let (status, answer) = post(&app, Some(&admin), COLLEGE, body()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["jobId"].as_str().unwrap().to_owned();
    let submitter = app.token(As::Submitter("sandwell"), "").await;
    assert_eq!(
        finished(&app, &submitter, &id).await["institution"]["key"],
        "sandwell-college"
    );
    for token in [
        app.token(As::Admin("black-country"), "").await,
        app.token(As::Analyst("E47000007"), "").await,
        app.token(As::Operator, "").await,
        app.token(As::Admin("sandwell"), "read:returns").await,
    ] {
        let d = app.query_as(&token, JOB, json!({ "id": id })).await;
        assert!(d["importJob"].is_null(), "{d}");
    }
    let (code, _) = app.error_code(JOB, json!({ "id": id })).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let d = app
        .query_as(&admin, JOB, json!({ "id": "no-such-job" }))
        .await;
    assert!(d["importJob"].is_null());
}

/// The service as a separate process, on `url`, with its data in `dir`.
fn serve(url: &str, dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_anchorfed"))
        .env("DATABASE_URL", url)
        .env("ANCHORFED_DATA_DIR", dir)
        .env_remove("ANCHORFED_CONFIG")
        .current_dir(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, address)
}

async fn job_over(address: &str, token: &str, id: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": JOB, "variables": { "id": id } }))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["data"]["importJob"].clone()
}

/// The server is killed (SIGKILL) in the middle of an import, with rows already staged: once
/// it starts again the job is failed, and nothing of the file is anywhere.
async fn killed_mid_import_the_job_fails_and_nothing_is_left(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let settings = test_settings(url.clone(), dir.path());
    let db = anchorfed::db::connect(&settings.database_url(), 2, None)
        .await
        .unwrap();
    anchorfed::db::migrate(&db).await.unwrap();
    anchorfed::directory::demo::load(&db).await.unwrap();
    let keys = anchorfed::auth::Keys::load(&settings.auth, &settings.data_dir).unwrap();
    let issued = anchorfed::auth::IssueRequest {
        role: anchorfed::domain::Role::NetworkAdmin,
        network: Some(anchorfed::domain::IdOrKey::parse("sandwell").unwrap()),
        region: None,
        organisation: None,
        scopes: None,
        ttl_seconds: None,
        subject: None,
        issued_by: "test".into(),
    }
    .resolve(&db, &keys)
    .await
    .unwrap_or_else(|e| panic!("{}", e.message()));
    let token = anchorfed::auth::issue(&db, &keys, issued)
        .await
        .unwrap()
        .token;

    let (mut server, address) = serve(settings.database_url().expose_secret(), dir.path());
    // More lines than SQLite stages in one transaction, so some are committed to staging;
    // the rest of the declared body never comes.
    let mut body = String::from(HEADER);
    for i in 0..120_000 {
        body.push_str(&format!(
            "Fictional Supplier {i} Ltd,CH{i},,E08000028,1.00,,,,,\n"
        ));
    }
    let (a, t) = (address.clone(), token.clone());
    let upload = tokio::task::spawn_blocking(move || {
        start_upload(&a, Some(&t), COLLEGE, body.len() * 2, body.as_bytes())
    })
    .await
    .unwrap();
    let started = Instant::now();
    let job = loop {
        let running = count(
            &db,
            "SELECT COUNT(*) FROM import_jobs WHERE state = 'RUNNING' AND rows_read >= 50000",
        )
        .await;
        if running == 1 {
            break db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT id FROM import_jobs",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<String>(0)
                .unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if backend == Backend::Sqlite {
        assert!(
            stored(&db).await.2 >= 50_000,
            "rows were staged before the kill"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    drop(upload);
    assert_eq!(stored(&db).await.0, 0, "nothing reached the lines");

    let (mut again, address) = serve(settings.database_url().expose_secret(), dir.path());
    let started = Instant::now();
    let seen = loop {
        let seen = job_over(&address, &token, &job).await;
        if seen["state"] == "FAILED" || started.elapsed() > Duration::from_secs(20) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen["state"], "FAILED", "{seen}");
    assert!(
        seen["failure"].as_str().unwrap().contains("stopped"),
        "{seen}"
    );
    assert_eq!(stored(&db).await, (0, 0, 0), "nothing partial anywhere");
    again.kill().unwrap();
    again.wait().unwrap();
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anchorfed"))
        .env("DATABASE_URL", app.settings.database_url().expose_secret())
        .env("ANCHORFED_DATA_DIR", &app.settings.data_dir)
        .env_remove("ANCHORFED_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The loaders read generated files in the published layouts (NSPL 2020 and 2025, IoD 2019
/// and 2025) at the console. A terminated postcode still places spend of the periods it was
/// live in, and only those; an unknown one is counted and named; a bad row refuses the file.
async fn postcode_and_deprivation_files_load(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let old = [
        Pc {
            pcds: "B69 4HE".into(),
            laua: "E08000028",
            lsoa: "E01009411".into(),
            doterm: "",
        },
        Pc {
            pcds: "B69 9QZ".into(),
            laua: "E08000028",
            lsoa: "E01009412".into(),
            doterm: "202006",
        },
        Pc {
            pcds: "DY1 1AA".into(),
            laua: "E08000027",
            lsoa: "E01009300".into(),
            doterm: "",
        },
    ];
    std::fs::write(path("nspl2020.csv"), nspl(NSPL_2020, &old)).unwrap();
    let out = ok(&cli(
        &app,
        &["geography", "load", "nspl", &path("nspl2020.csv")],
    ));
    assert!(
        out.contains("loaded 3 postcodes (1 of them terminated)"),
        "{out}"
    );
    // The 2025 edition moves DY1 1AA's LSOA to 2021 boundaries and adds one postcode; the
    // 2011 LSOAs stay.
    let new = [
        Pc {
            pcds: "DY1 1AA".into(),
            laua: "E08000027",
            lsoa: "E01035000".into(),
            doterm: "",
        },
        Pc {
            pcds: "WV1 1AA".into(),
            laua: "E08000031",
            lsoa: "E01010000".into(),
            doterm: "",
        },
    ];
    std::fs::write(path("nspl2025.csv"), nspl(NSPL_2025, &new)).unwrap();
    ok(&cli(
        &app,
        &["geography", "load", "nspl", &path("nspl2025.csv")],
    ));
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM postcodes").await, 4);
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM postcodes WHERE postcode = 'DY1 1AA' AND lsoa11_code = 'E01009300' AND lsoa21_code = 'E01035000'").await,
        1
    );
    // A bad row refuses the whole file, naming it.
    let stray = Pc {
        pcds: "B1 1AA".into(),
        laua: "X123",
        lsoa: "E01000001".into(),
        doterm: "",
    };
    let bad = nspl(NSPL_2025, &[new[0].clone(), new[1].clone(), stray]);
    std::fs::write(path("bad.csv"), bad).unwrap();
    let out = cli(&app, &["geography", "load", "nspl", &path("bad.csv")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4, column laua"), "{err}");
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM postcodes").await, 4);
    // A file that is not the NSPL says so.
    std::fs::write(path("other.csv"), "postcode,district\nB1 1AA,E08000025\n").unwrap();
    let err = cli(&app, &["geography", "load", "nspl", &path("other.csv")]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("pcds"));

    // Deprivation deciles: the 2019 edition on 2011 LSOAs, the 2025 edition on 2021 LSOAs.
    std::fs::write(
        path("iod2019.csv"),
        imd(2011, &[("E01009411", 120, 1), ("E01009300", 30000, 10)]),
    )
    .unwrap();
    let out = ok(&cli(
        &app,
        &["geography", "load", "imd", &path("iod2019.csv")],
    ));
    assert!(
        out.contains("loaded 2 LSOA deciles (as the Indices of Deprivation 2019)"),
        "{out}"
    );
    std::fs::write(path("iod2025.csv"), imd(2021, &[("E01035000", 5000, 2)])).unwrap();
    ok(&cli(
        &app,
        &["geography", "load", "imd", &path("iod2025.csv")],
    ));
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM lsoa_deprivation WHERE (edition = 2019 AND lsoa_vintage = 2011) OR (edition = 2025 AND lsoa_code = 'E01035000' AND imd_decile = 2)").await,
        3
    );
    std::fs::write(path("iodbad.csv"), imd(2011, &[("E01009411", 120, 11)])).unwrap();
    let out = cli(&app, &["geography", "load", "imd", &path("iodbad.csv")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2, column IMD decile"));

    // B69 9QZ was terminated in June 2020: it places 2019/20's spend, not 2023/24's.
    let file = format!(
        "{HEADER}Fictional Couriers Ltd,CH1,B69 9QZ,,100.00,,,,,\n\
         Fictional Builders Ltd,CH2,b694he,,50.00,,,,,\n\
         Fictional Faraway Ltd,CH3,ZZ9 9ZZ,,25.00,,,,,\n\
         Fictional Nowhere Ltd,CH4,,,5.00,,,,,\n"
    );
    std::fs::write(path("spend.csv"), &file).unwrap();
    let base = [
        "import",
        "spend",
        &path("spend.csv"),
        "--network",
        "sandwell",
        "--institution",
        "sandwell-college",
        "--period",
    ];
    let out = ok(&cli(&app, &[&base[..], &["2019/20"]].concat()));
    assert!(out.contains("2 lines (£30.00) with place unknown"), "{out}");
    let out = ok(&cli(&app, &[&base[..], &["2023/24"]].concat()));
    assert!(
        out.contains("imported 4 spend lines for sandwell-college 2023/24 as version 1"),
        "{out}"
    );
    assert!(
        out.contains("3 lines (£130.00) with place unknown"),
        "{out}"
    );
    assert!(out.contains("line 2: place unknown: postcode B69 9QZ was terminated in 2020-06, before 2023/24 began"), "{out}");
    assert!(
        out.contains("line 4: place unknown: postcode ZZ9 9ZZ is not in the postcode lookup"),
        "{out}"
    );
    assert!(
        out.contains("line 5: place unknown: no postcode or district given"),
        "{out}"
    );
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM spend_lines l JOIN spend_files f ON f.id = l.file_id WHERE f.period = '2019/20' AND l.postcode = 'B69 9QZ' AND l.district_code = 'E08000028' AND l.lsoa_code = 'E01009412'").await,
        1
    );
    let again = ok(&cli(&app, &[&base[..], &["2023/24"]].concat()));
    assert!(again.contains("already imported as version 1"), "{again}");
    // Only the steward imports at the console too.
    let out = cli(
        &app,
        &[
            "import",
            "spend",
            &path("spend.csv"),
            "--network",
            "black-country",
            "--institution",
            "sandwell-college",
            "--period",
            "2023/24",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the steward network"));
}

/// The demo's sample files (marked as samples) load and import as the README shows.
async fn the_demo_samples_load(backend: Backend) {
    let app = spawn_app(backend).await;
    let demo = |f: &str| format!("{}/demo/{f}", env!("CARGO_MANIFEST_DIR"));
    let out = ok(&cli(
        &app,
        &[
            "geography",
            "load",
            "nspl",
            &demo("geography/nspl-sample.csv"),
        ],
    ));
    assert!(out.contains("postcodes"), "{out}");
    ok(&cli(
        &app,
        &[
            "geography",
            "load",
            "imd",
            &demo("geography/imd-sample.csv"),
        ],
    ));
    let out = ok(&cli(
        &app,
        &[
            "import",
            "spend",
            &demo("spend-sample.csv"),
            "--network",
            "sandwell",
            "--institution",
            "sandwell-college",
            "--period",
            "2023/24",
        ],
    ));
    assert!(out.contains("imported 27 spend lines"), "{out}");
    assert!(out.contains("3 lines"), "{out}");
}

/// At most `limits.imports_at_once` imports run at once: one more is refused before a job is
/// made or a byte read (429, `Retry-After`), and the permit comes back when a job ends.
async fn imports_at_once_are_bounded(backend: Backend) {
    let app = spawn_with(backend, true, |s| s.limits.imports_at_once = 1).await;
    let token = app.token(As::Admin("sandwell"), "").await;
    let jobs = || count(&app.db, "SELECT COUNT(*) FROM import_jobs");
    // An upload that has sent its first line and not its last holds the one permit.
    let first = format!("{HEADER}Fictional Supplier Ltd,CH1,,,1.00,,,,,\n");
    let held = {
        let (address, token, first) = (app.address.clone(), token.clone(), first.clone());
        tokio::task::spawn_blocking(move || {
            start_upload(
                &address,
                Some(&token),
                COLLEGE,
                first.len() + 1000,
                first.as_bytes(),
            )
        })
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while jobs().await < 1 {
        assert!(Instant::now() < deadline, "the first upload made no job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app
        .client
        .post(format!("{}/imports/spend?{COLLEGE}", app.address))
        .header("content-type", "text/csv")
        .bearer_auth(&token)
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("limits.imports_at_once"),
        "{body}"
    );
    assert_eq!(jobs().await, 1, "a refused upload makes no job");
    // The held upload is cut off: its job fails and gives the permit back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, job) = loop {
        let (status, answer) = post(&app, Some(&token), COLLEGE, first.clone().into_bytes()).await;
        if status != 429 {
            break (status, answer);
        }
        assert!(Instant::now() < deadline, "the permit never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 202, "{job}");
    let id = job["jobId"].as_str().unwrap().to_owned();
    assert_eq!(finished(&app, &token, &id).await["state"], "SUCCEEDED");
    assert_eq!(jobs().await, 2);
}

both_databases!(
    a_large_file_streams_in_whole,
    imports_at_once_are_bounded,
    bad_lines_are_named_and_nothing_is_written,
    the_same_file_twice_writes_once,
    readers_without_rights_are_refused_before_the_body,
    killed_mid_import_the_job_fails_and_nothing_is_left,
    postcode_and_deprivation_files_load,
    the_demo_samples_load,
);

/// Pence from an amount as the file gives it (`1234.5`, `12.34`).
pub(crate) fn pence(amount: &str) -> i64 {
    let (pounds, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let fraction = format!("{fraction:0<2}");
    pounds.parse::<i64>().unwrap() * 100 + fraction[..2].parse::<i64>().unwrap()
}

async fn codes(db: &DatabaseConnection, sql: &str) -> std::collections::HashSet<String> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The current (steward) version of sandwell-college's 2023/24 return: its version, basis, and
/// the derived values (total, local, region) with the local value's method note.
async fn derived_return(db: &DatabaseConnection) -> (i64, String, [i64; 3], String) {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT r.id, CAST(r.version AS BIGINT), r.basis FROM returns r \
             JOIN institutions i ON i.id = r.institution_id \
             WHERE i.key = 'sandwell-college' AND r.period = '2023/24' AND r.current_steward",
        ))
        .await
        .unwrap()
        .expect("a current return");
    let id: i64 = row.try_get_by_index(0).unwrap();
    let value = |metric: &str| {
        format!(
            "SELECT value FROM return_values WHERE return_id = {id} AND metric_code = '{metric}'"
        )
    };
    let method = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT method FROM return_values WHERE return_id = {id} \
                 AND metric_code = 'procurement_spend_local'"
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    (
        row.try_get_by_index(1).unwrap(),
        row.try_get_by_index(2).unwrap(),
        [
            count(db, &value("procurement_spend_total")).await,
            count(db, &value("procurement_spend_local")).await,
            count(db, &value("procurement_spend_region")).await,
        ],
        method,
    )
}

/// A spend file of `n` lines for the derivation test: suppliers in Sandwell, Birmingham
/// (the region, not the network's place), Warwick (neither), placed by postcode or by the
/// district given, and some whose place is unknown (a terminated postcode, one the lookup
/// does not know, none given).
fn mixed_file(n: usize, seed: i64) -> String {
    let mut file = String::from(HEADER);
    for i in 0..n {
        let (postcode, district) = match (i as i64 + seed) % 8 {
            0 => ("B69 1AA", ""),
            1 => ("B1 1AA", ""),
            2 => ("CV34 4AA", ""),
            3 => ("B70 9ZZ", ""),
            4 => ("ZZ9 9ZZ", ""),
            5 => ("", "E08000028"),
            6 => ("", "E07000218"),
            _ => ("", ""),
        };
        let p = (i as i64 * 7919 + seed * 104_729) % 5_000_000 + 1;
        file.push_str(&format!(
            "Fictional Supplier {i} Ltd,CH{i},{postcode},{district},{}.{:02},,,,,\n",
            p / 100,
            p % 100
        ));
    }
    file
}

/// The sums a file's lines come to, worked out here from the CSV itself: (total, in the
/// network's districts, in the region's districts).
fn expected_sums(
    file: &str,
    lookup: &std::collections::HashMap<&str, Option<&str>>,
    local: &std::collections::HashSet<String>,
    region: &std::collections::HashSet<String>,
) -> [i64; 3] {
    let mut sums = [0i64; 3];
    for line in file.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let amount = pence(f[4]);
        let district = if f[2].is_empty() {
            (!f[3].is_empty()).then_some(f[3])
        } else {
            lookup.get(f[2]).copied().flatten()
        };
        sums[0] += amount;
        if let Some(d) = district {
            sums[1] += if local.contains(d) { amount } else { 0 };
            sums[2] += if region.contains(d) { amount } else { 0 };
        }
    }
    sums
}

/// Issue 14, part B: a return's local and regional spend are derived from its spend lines
/// when a file is switched in, as a new version of the return: equal to the sums over the
/// lines (worked out here from the CSV), the same file twice restating nothing, a new file
/// restating them again, and the earlier version kept.
async fn a_return_s_spend_is_derived_from_its_lines(backend: Backend) {
    let app = spawn_app(backend).await;
    let pc = |pcds: &str, laua: &'static str, doterm: &'static str| Pc {
        pcds: pcds.into(),
        laua,
        lsoa: "E01009001".into(),
        doterm,
    };
    load_postcodes(
        &app.db,
        nspl(
            NSPL_2025,
            &[
                pc("B69 1AA", "E08000028", ""),
                pc("B1 1AA", "E08000025", ""),
                pc("CV34 4AA", "E07000222", ""),
                pc("B70 9ZZ", "E08000028", "202001"),
            ],
        ),
    )
    .await;
    // Where each postcode is for 2023/24: the terminated one and the unknown one nowhere.
    let lookup: std::collections::HashMap<&str, Option<&str>> = [
        ("B69 1AA", Some("E08000028")),
        ("B1 1AA", Some("E08000025")),
        ("CV34 4AA", Some("E07000222")),
        ("B70 9ZZ", None),
        ("ZZ9 9ZZ", None),
    ]
    .into();
    let local = codes(
        &app.db,
        "SELECT nd.district_code FROM network_districts nd JOIN networks n \
         ON n.id = nd.network_id WHERE n.key = 'sandwell'",
    )
    .await;
    let region = codes(
        &app.db,
        "SELECT rd.district_code FROM region_districts rd JOIN networks n \
         ON n.region_id = rd.region_id WHERE n.key = 'sandwell'",
    )
    .await;
    assert!(local.contains("E08000028") && !local.contains("E08000025"));
    assert!(region.contains("E08000025") && !region.contains("E07000222"));

    let token = app.token(As::Admin("sandwell"), "").await;
    let first = mixed_file(400, 1);
    let want = expected_sums(&first, &lookup, &local, &region);
    assert!(
        want[0] > want[2] && want[2] > want[1] && want[1] > 0,
        "{want:?}"
    );
    let (_, job) = import(&app, &token, COLLEGE, first.clone().into_bytes()).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let (v1, basis, got, method) = derived_return(&app.db).await;
    assert_eq!(got, want, "the derived spend is the sum over the lines");
    assert_eq!(basis, "derived from 400 spend lines");
    assert!(method.contains("spend lines version 1"), "{method}");

    // The same file again derives nothing new.
    let (_, again) = import(&app, &token, COLLEGE, first.into_bytes()).await;
    assert_eq!(again["result"]["replayed"], true);
    assert_eq!(derived_return(&app.db).await.0, v1);

    // A new file restates the return as its next version; the earlier one stays.
    let second = mixed_file(250, 5);
    let want2 = expected_sums(&second, &lookup, &local, &region);
    assert_ne!(want2, want);
    let (_, job) = import(&app, &token, COLLEGE, second.into_bytes()).await;
    assert_eq!(job["result"]["version"], 2, "{job}");
    let (v2, basis, got, method) = derived_return(&app.db).await;
    assert_eq!(v2, v1 + 1);
    assert_eq!(got, want2);
    assert_eq!(basis, "derived from 250 spend lines");
    assert!(method.contains("spend lines version 2"), "{method}");
    let kept = count(
        &app.db,
        &format!(
            "SELECT v.value FROM return_values v JOIN returns r ON r.id = v.return_id \
             JOIN institutions i ON i.id = r.institution_id WHERE i.key = 'sandwell-college' \
             AND r.period = '2023/24' AND r.version = {v1} \
             AND v.metric_code = 'procurement_spend_local'"
        ),
    )
    .await;
    assert_eq!(kept, want[1], "the earlier version keeps what it derived");

    // Read through the API as returns are: the steward network sees the derived values.
    let d = app
        .query_as(
            &token,
            "{ returns(filter: { period: \"2023/24\" }, first: 50) { nodes { institution { key } version basis \
               values { metric { code } value method } } } }",
            json!({}),
        )
        .await;
    let ours = d["returns"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["institution"]["key"] == "sandwell-college")
        .unwrap_or_else(|| panic!("{d}"))
        .clone();
    assert_eq!(ours["basis"], "derived from 250 spend lines", "{ours}");
    let local_value = ours["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"]["code"] == "procurement_spend_local")
        .unwrap()
        .clone();
    assert_eq!(
        local_value["value"],
        format!("{}.{:02}", want2[1] / 100, want2[1] % 100),
        "{local_value}"
    );
}

both_databases!(a_return_s_spend_is_derived_from_its_lines);

/// The demo's spend lines: the 2022/23 returns of a few fictional Sandwell institutions have
/// their spend derived from the sample lines (their other values carried over), equal to the
/// sums worked out here from the sample files; loading again writes nothing.
async fn the_demo_derives_returns_spend_from_its_lines(backend: Backend) {
    use anchorfed::ingest::spend::demo;
    let app = spawn_app(backend).await;
    anchorfed::ingest::demo::load(&app.db).await.unwrap();
    assert_eq!(demo::load(&app.db).await.unwrap(), demo::INSTITUTIONS.len());
    assert_eq!(
        demo::load(&app.db).await.unwrap(),
        0,
        "loading again writes nothing"
    );
    // The sample lookup, read here: postcode → district, unless terminated before 2022/23.
    let nspl = std::fs::read_to_string(format!(
        "{}/demo/geography/nspl-sample.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let rows: Vec<Vec<String>> = nspl
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|f| f.trim_matches('"').to_owned())
                .collect()
        })
        .collect();
    let lookup: std::collections::HashMap<&str, Option<&str>> = rows
        .iter()
        .map(|f| {
            let live = f[4].is_empty() || f[4].as_str() >= "202204";
            (f[2].as_str(), live.then_some(f[12].as_str()))
        })
        .collect();
    let local = codes(
        &app.db,
        "SELECT nd.district_code FROM network_districts nd JOIN networks n \
         ON n.id = nd.network_id WHERE n.key = 'sandwell'",
    )
    .await;
    let region = codes(
        &app.db,
        "SELECT rd.district_code FROM region_districts rd JOIN networks n \
         ON n.region_id = rd.region_id WHERE n.key = 'sandwell'",
    )
    .await;
    let mut seen = vec![];
    for (key, nth, times) in demo::INSTITUTIONS {
        let want = expected_sums(&demo::varied(nth, times), &lookup, &local, &region);
        assert!(
            want[1] > 0 && want[2] > want[1] && want[0] > want[2],
            "{want:?}"
        );
        let value = |metric: &str| {
            format!(
                "SELECT v.value FROM return_values v JOIN returns r ON r.id = v.return_id \
                 JOIN institutions i ON i.id = r.institution_id WHERE i.key = '{key}' \
                 AND r.period = '2022/23' AND r.current_published AND v.metric_code = '{metric}'"
            )
        };
        let got = [
            count(&app.db, &value("procurement_spend_total")).await,
            count(&app.db, &value("procurement_spend_local")).await,
            count(&app.db, &value("procurement_spend_region")).await,
        ];
        assert_eq!(got, want, "{key}");
        assert!(!seen.contains(&got), "each institution's lines differ");
        seen.push(got);
        let carried = count(
            &app.db,
            &format!(
                "SELECT COUNT(*) FROM return_values v JOIN returns r ON r.id = v.return_id \
                 JOIN institutions i ON i.id = r.institution_id WHERE i.key = '{key}' \
                 AND r.period = '2022/23' AND r.current_published \
                 AND v.metric_code IN ('headcount', 'land_owned', 'emissions_scope1')"
            ),
        )
        .await;
        assert_eq!(carried, 3, "{key}'s other values are carried over");
        let versions = count(
            &app.db,
            &format!(
                "SELECT COUNT(*) FROM returns r JOIN institutions i ON i.id = r.institution_id \
                 WHERE i.key = '{key}' AND r.period = '2022/23'"
            ),
        )
        .await;
        assert_eq!(
            versions, 2,
            "{key}: the synthetic return and the derived one"
        );
    }
    // What the README shows for the college.
    let d = app
        .query_as(
            &app.token(As::Admin("sandwell"), "").await,
            "{ returns(filter: { institution: \"sandwell-college\", period: \"2022/23\" }, first: 1) \
               { nodes { version basis values { metric { code } value method } } } }",
            json!({}),
        )
        .await;
    let r = &d["returns"]["nodes"][0];
    assert_eq!(r["basis"], "derived from 27 spend lines", "{d}");
    let local = r["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"]["code"] == "procurement_spend_local")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(local["value"], "183100.64", "{d}");
    assert_eq!(
        local["method"],
        "derived from spend lines version 1 (27 lines, 3 of them place unknown)"
    );
}

both_databases!(the_demo_derives_returns_spend_from_its_lines);

/// A spend file for `topSuppliers`: named suppliers with several lines each (two with equal
/// totals, so ties are ordered), and sole traders, whose names must never be shown.
fn suppliers_file() -> String {
    let mut file = String::from(HEADER);
    let named = [
        (
            "Fictional Alpha Ltd",
            "CH001",
            "E08000028",
            "yes",
            "no",
            "no",
        ),
        (
            "Fictional Beta Trust",
            "CC002",
            "E08000025",
            "no",
            "yes",
            "no",
        ),
        ("Fictional Gamma College", "UKPRN3", "", "no", "no", "yes"),
        (
            "Fictional Delta Ltd",
            "CH004",
            "E07000222",
            "yes",
            "no",
            "no",
        ),
        (
            "Fictional Epsilon Ltd",
            "CH005",
            "E08000028",
            "no",
            "no",
            "no",
        ),
    ];
    let sole = [
        ("Jane Quillfeather Plumbing", "ST-A"),
        ("Owen Marchbank Joinery", "ST-B"),
    ];
    for i in 0..24usize {
        if i % 6 == 5 {
            let (name, id) = sole[i % 2];
            file.push_str(&format!(
                "{name},{id},,E08000028,{}.{:02},Repairs,yes,no,yes,no\n",
                100 + i * 13,
                i * 7 % 100
            ));
            continue;
        }
        let (name, id, district, sme, vcse, anchor) = named[i % 5];
        // Alpha (0) and Epsilon (4) come to the same total: four lines of 1500.00 each.
        let amount = match i % 5 {
            0 | 4 => "1500.00".to_owned(),
            k => format!("{}.{:02}", 300 + k * 211 + i * 17, (i * 31) % 100),
        };
        file.push_str(&format!(
            "{name},{id},,{district},{amount},Goods,{sme},{vcse},no,{anchor}\n"
        ));
    }
    file
}

/// The suppliers a file comes to, worked out here from the CSV: (name, id, district, total
/// in pence, lines, sme, vcse, anchor), largest total first, ties by first line.
#[allow(clippy::type_complexity)]
fn expected_suppliers(
    file: &str,
) -> Vec<(
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    bool,
    bool,
    bool,
)> {
    // key -> (first line, name, id, district, total, lines, sme, vcse, anchor)
    let mut rows: Vec<(
        usize,
        String,
        Option<String>,
        Option<String>,
        i64,
        i64,
        bool,
        bool,
        bool,
    )> = vec![];
    let yes = |s: &str| s == "yes";
    for (n, line) in file.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let sole = yes(f[8]);
        let id = (!sole).then(|| f[1].to_owned());
        let row = match rows.iter_mut().find(|r| r.2 == id) {
            Some(r) => r,
            None => {
                rows.push((
                    n,
                    if sole {
                        "sole trader".into()
                    } else {
                        f[0].into()
                    },
                    id.clone(),
                    (!sole && !f[3].is_empty()).then(|| f[3].to_owned()),
                    0,
                    0,
                    false,
                    false,
                    false,
                ));
                rows.last_mut().unwrap()
            }
        };
        row.4 += pence(f[4]);
        row.5 += 1;
        row.6 |= yes(f[6]);
        row.7 |= yes(f[7]);
        row.8 |= yes(f[9]);
    }
    rows.sort_by_key(|r| (-r.4, r.0));
    rows.into_iter()
        .map(|r| (r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8))
        .collect()
}

const SUPPLIERS: &str = "query($i: ID!, $p: FinancialYear!, $n: Int!, $a: String) { \
    topSuppliers(institution: $i, period: $p, first: $n, after: $a) { totalCount \
      pageInfo { hasNextPage endCursor } \
      edges { cursor node { name supplierId district totalAmount lineCount soleTrader sme vcse anchor } } } }";

/// Every page of `topSuppliers` for sandwell-college's 2022/23 lines, `n` at a time, with
/// the raw answers (to search for names).
async fn all_suppliers(app: &TestApp, token: &str, n: i64) -> (Vec<Value>, Vec<Value>) {
    let mut nodes = vec![];
    let mut answers = vec![];
    let mut after = Value::Null;
    loop {
        let d = app
            .query_as(
                token,
                SUPPLIERS,
                json!({"i": "sandwell-college", "p": "2022/23", "n": n, "a": after}),
            )
            .await;
        let conn = d["topSuppliers"].clone();
        let edges = conn["edges"].as_array().unwrap().clone();
        assert!(edges.len() as i64 <= n, "{conn}");
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        answers.push(d.clone());
        if conn["pageInfo"]["hasNextPage"] != true {
            return (nodes, answers);
        }
        after = conn["pageInfo"]["endCursor"].clone();
        assert!(answers.len() < 50, "pages never end");
    }
}

/// `topSuppliers`: an institution's suppliers from its current spend lines, equal to the sums
/// worked out from the CSV, largest first, by pages; sole traders never named; shown only to
/// those who see the institution's returns at DETAIL with spend, every read logged.
async fn top_suppliers_are_sums_for_detail_readers_only(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let file = suppliers_file();
    let (_, job) = import(
        &app,
        &admin,
        "institution=sandwell-college&period=2022/23",
        file.clone().into_bytes(),
    )
    .await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let want = expected_suppliers(&file);
    assert_eq!(
        want.len(),
        6,
        "five named suppliers and the sole traders' row"
    );
    assert_eq!(want[0].3, want[1].3, "a tie at the top: {want:?}");

    // All of it, in pages of 1, 4 and 100: the same list each time, the sums from the CSV.
    for n in [1, 4, 100] {
        let (nodes, answers) = all_suppliers(&app, &admin, n).await;
        assert_eq!(
            answers.len(),
            want.len().div_ceil(n as usize),
            "pages of {n}"
        );
        assert_eq!(answers[0]["topSuppliers"]["totalCount"], 6);
        let got: Vec<_> = nodes
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["supplierId"].as_str().map(str::to_owned),
                    v["district"].as_str().map(str::to_owned),
                    pence(v["totalAmount"].as_str().unwrap()),
                    v["lineCount"].as_i64().unwrap(),
                    v["sme"].as_bool().unwrap(),
                    v["vcse"].as_bool().unwrap(),
                    v["anchor"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "pages of {n}");
        let sole: Vec<_> = nodes.iter().filter(|v| v["soleTrader"] == true).collect();
        assert_eq!(sole.len(), 1);
        assert!(sole[0]["supplierId"].is_null() && sole[0]["district"].is_null());
        let text = serde_json::to_string(&answers).unwrap();
        for name in ["Quillfeather", "Marchbank", "ST-A", "ST-B"] {
            assert!(!text.contains(name), "a sole trader named in {text}");
        }
    }
    // Alpha's 6000.00 first: tied with Epsilon, and before it in the file.
    assert_eq!(want[0].0, "Fictional Alpha Ltd");
    assert_eq!(want[1].0, "Fictional Epsilon Ltd");
    assert_eq!(want[0].3, 600_000);
    let bad = app
        .error_as(
            &admin,
            SUPPLIERS,
            json!({"i": "sandwell-college", "p": "2022/23", "n": 2, "a": "bm90LWEtY3Vyc29y"}),
        )
        .await;
    assert_eq!(bad, "BAD_USER_INPUT");

    // Who may read them: DETAIL readers of the college's 2022/23 returns, spend included.
    create_org(&app, "spend-research").await;
    create_org(&app, "other-research").await;
    let grant = |grantee: Value, level: &str, group: &str| {
        json!({"i": {
            "networkId": "sandwell",
            "grantee": grantee,
            "level": level,
            "metricGroups": [group],
            "fromYear": "2020/21",
            "toYear": "2022/23",
            "expiresAt": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
            "agreement": {
                "reference": "DSA-2026-077",
                "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
                "purpose": "Supplier analysis",
                "reviewDate": (chrono::Utc::now() + chrono::Duration::days(20)).date_naive().to_string()
            }
        }})
    };
    for (grantee, level, group) in [
        (json!({"region": "E47000007"}), "AGGREGATE", "SPEND"),
        (json!({"organisation": "spend-research"}), "DETAIL", "SPEND"),
        (
            json!({"organisation": "other-research"}),
            "DETAIL",
            "EMISSIONS",
        ),
    ] {
        let g = app
            .query_as(
                &admin,
                "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
                grant(grantee, level, group),
            )
            .await;
        assert!(g["grantAccess"]["id"].is_string(), "{g}");
    }
    let vars = json!({"i": "sandwell-college", "p": "2022/23", "n": 10});
    let allowed = [
        app.token(As::Submitter("sandwell"), "").await,
        // A fellow member network's admin: the college was in the Black Country on 2023-03-31.
        app.token(As::Admin("black-country"), "").await,
        app.token(As::Researcher("spend-research"), "").await,
        app.token(
            As::Researcher("spend-research"),
            "metrics:spend read:returns",
        )
        .await,
    ];
    for token in &allowed {
        let d = app.query_as(token, SUPPLIERS, vars.clone()).await;
        assert_eq!(d["topSuppliers"]["totalCount"], 6, "{d}");
        assert_eq!(
            d["topSuppliers"]["edges"][0]["node"]["name"],
            "Fictional Alpha Ltd"
        );
    }
    let refused = [
        app.token(As::Admin("birmingham"), "").await,
        app.token(As::Analyst("E47000007"), "").await,
        app.token(As::Researcher("other-research"), "").await,
        app.token(As::Admin("sandwell"), "metrics:emissions").await,
        app.token(As::Researcher("spend-research"), "read:impact")
            .await,
    ];
    for token in &refused {
        let (_, body) = app.post_as(token, SUPPLIERS, vars.clone()).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{body}"
        );
        assert!(
            body["data"].is_null() || body["data"]["topSuppliers"].is_null(),
            "{body}"
        );
        assert!(!body.to_string().contains("Alpha"), "{body}");
    }
    let (code, body) = app.error_code(SUPPLIERS, vars.clone()).await;
    assert_eq!(code, "FORBIDDEN", "anonymous: {body}");
    // A grant that does not reach the year refuses too: the researcher's ends in 2022/23.
    let (_, job) = import(
        &app,
        &admin,
        "institution=sandwell-college&period=2023/24",
        file.into_bytes(),
    )
    .await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let later = json!({"i": "sandwell-college", "p": "2023/24", "n": 10});
    let (_, body) = app.post_as(&allowed[2], SUPPLIERS, later.clone()).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let d = app.query_as(&admin, SUPPLIERS, later).await;
    assert_eq!(d["topSuppliers"]["totalCount"], 6, "{d}");

    // Every read logged against the college's steward network: 6 refused (5 tokens and the
    // anonymous caller) plus the later year's, and the allowed ones.
    // The pages of 1, 4 and 100, each allowed token's read, and the admin's of the later year.
    let allowed_reads: i64 =
        [1i64, 4, 100].iter().map(|n| (6 + n - 1) / n).sum::<i64>() + allowed.len() as i64 + 1;
    let url = app.settings.database_url();
    app.stop().await;
    let db = sea_orm::Database::connect(url.expose_secret().to_owned())
        .await
        .unwrap();
    let logged = |refused: bool| {
        format!(
            "SELECT COUNT(*) FROM access_log a WHERE a.operation = 'topSuppliers' AND {} \
               AND EXISTS (SELECT 1 FROM access_log_networks an JOIN networks n ON n.id = an.network_id \
                 WHERE an.entry_id = a.id AND n.key = 'sandwell')",
            if refused {
                "a.refused"
            } else {
                "NOT a.refused"
            }
        )
    };
    assert_eq!(count(&db, &logged(true)).await, 7, "refused reads");
    assert_eq!(
        count(&db, &logged(false)).await,
        allowed_reads,
        "allowed reads"
    );
}

both_databases!(top_suppliers_are_sums_for_detail_readers_only);

pub(crate) async fn create_org(app: &TestApp, key: &str) {
    let op = app.token(As::Operator, "").await;
    app.query_as(
        &op,
        "mutation($k: String!) { createOrganisation(input: {key: $k, name: \"A research group\"}) { id } }",
        json!({ "k": key }),
    )
    .await;
}
