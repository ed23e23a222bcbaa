//! Spend lines at scale (issue 14), against PostgreSQL, with the release server in its own
//! process (`anchorfed serve`), as it runs:
//!
//! 1. **Ingest ratio**: rows a second of a generated spend-line CSV of 1,000,000 lines sent to
//!    `POST /imports/spend`, from the first byte sent until `importJob(id)` says SUCCEEDED
//!    (read, checked, staged, switched in with each postcode looked up, the return restated),
//!    against PostgreSQL's own `COPY bare_spend FROM STDIN (FORMAT csv, HEADER)` of the same
//!    file into a bare table of the same ten columns (all text, no index, no key), on the same
//!    server in the same run.
//! 2. **Peak RSS**: the server's peak resident memory (`VmHWM`) while importing a 100 MB file and
//!    a 1 GB file, a fresh server process for each.
//! 3. **Local-spend share over 10 million lines**: 500 institutions in 5 networks of one region,
//!    20,000 lines each, imported through the API; then `spendAnalysis` with
//!    `SHARE_IN_GEOGRAPHY` over the region as a region analyst to whom every network granted
//!    DETAIL on SPEND for 2023/24 (the response cache off), against a hand-written SQL
//!    statement for the same figure: the median of several runs of each, one at a time, the
//!    two in turn.
//!
//! The files are realistic: suppliers with Companies House-like ids (charity numbers for the
//! VCSE ones, none for sole traders but a reference), real-format postcodes of which most
//! resolve through a postcode lookup loaded first (`anchorfed geography load nspl` on a
//! generated file in the NSPL's layout), some terminated before the period, some unknown,
//! some lines with a district instead of a postcode and some with neither; amounts in pounds
//! and pence, categories, the four flags, and supplier names that need CSV quoting. They are
//! written once, streaming, under `target/bench-spend/` and reused when there with their size.
//!
//! Usage: bench_spend postgres://…/postgres   (run by `scripts/bench spend`). Environment:
//! - `BENCH_SPEND_DIR`: where the files go (default `target/bench-spend`);
//! - `BENCH_SPEND_ONLY`: the parts to run, from `ingest,rss,share` (default all three);
//! - `BENCH_SPEND_RUNS`: the timed runs of each side of part 3 (default 7);
//! - `BENCH_SPEND_SQL`: statements (`;`-separated) run on each database once it is prepared,
//!   to try an index (name it `bench_…`: its size is printed) or a setting;
//! - `BENCH_SPEND_PG_LOG`: the PostgreSQL server's log; when given and part 3's ratio is
//!   over 1.3, the plans of the analysis' slow statements (auto_explain) are copied from it
//!   to `plans.txt` in `BENCH_SPEND_DIR`.
//!
//! A URL naming a database an earlier part 3 left (`…/bench_…`) is measured again without
//! loading (part 3 only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(
    dead_code,
    reason = "this benchmark issues its tokens at the console, as an operator would"
)]
mod common;
#[path = "common/process.rs"]
mod process;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::sqlx::{AssertSqlSafe, Connection, Row, postgres::PgConnection};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

use common::Rng;
use process::{Stopped, anchorfed, console, free_port, status_kb};

const REGION: &str = "E47000100";
const ELSEWHERE: &str = "E47000101";
const PERIOD: &str = "2023/24";
const NETWORKS: usize = 5;
const PER_NETWORK: usize = 100;
const LINES_PER_INSTITUTION: usize = 20_000;
const INGEST_NETWORK: &str = "bench-ingest";
/// Districts 0-9 are the region's, 10-19 elsewhere; each has an area of its own.
const AREAS: [&str; 20] = [
    "B", "CV", "DY", "WS", "WV", "WR", "ST", "TF", "HR", "NN", "M", "LS", "BS", "NE", "L", "S",
    "NG", "LE", "OX", "RG",
];
/// Letters of the inward code.
const LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
/// Postcodes in the lookup, a district; the last of them terminated in 2015.
const LOADED: u64 = 2500;
const TERMINATED_FROM: u64 = 2450;
/// Postcodes of the right form the lookup does not know, a district.
const UNKNOWN: u64 = 500;
const SUPPLIERS: usize = 40_000;
const CATEGORIES: [&str; 14] = [
    "Facilities management",
    "Construction",
    "Professional services",
    "ICT",
    "Catering",
    "Cleaning",
    "Medical supplies",
    "Transport",
    "Energy",
    "Agency staff",
    "Social care",
    "Highways",
    "Waste",
    "Printing, stationery and office supplies",
];
const SHARE_QUERY: &str = "{ spendAnalysis(input: {region: \"E47000100\", years: [\"2023/24\"], measures: [SHARE_IN_GEOGRAPHY]}) { cells { measure year value suppressed contributors eligible } } }";

fn district(d: usize) -> String {
    let n = if d < 10 { d } else { 100 + d - 10 };
    format!("E08{:06}", 100_000 + n)
}

/// The `k`th postcode of district `d`: `B7 3LA`.
fn postcode(d: usize, k: u64) -> (String, String) {
    let outward = format!("{}{}", AREAS[d], 1 + k % 20);
    let j = (k / 20) as usize;
    let inward = format!(
        "{}{}{}",
        j % 10,
        LETTERS[(j / 10) % 20] as char,
        LETTERS[d % 20] as char
    );
    (outward, inward)
}

fn quoted(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One supplier, its fields written as the CSV has them.
struct Supplier {
    name: String,
    id: String,
    postcode: String,
    district: String,
    flags: &'static str,
}

fn suppliers() -> Vec<Supplier> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let words = [
        "Midland",
        "Northfield",
        "Crown",
        "Oak",
        "Severn",
        "Forge",
        "Canal",
        "Beacon",
        "Albion",
        "Victoria",
        "Heath",
        "Priory",
    ];
    let trades = [
        "Engineering",
        "Services",
        "Construction",
        "Catering",
        "Supplies",
        "Consulting",
        "Care",
        "Logistics",
    ];
    (0..SUPPLIERS)
        .map(|s| {
            let vcse = rng.below(100) < 8;
            let sole = !vcse && rng.below(100) < 6;
            let sme = sole || rng.below(100) < 55;
            let anchor = !sole && !vcse && rng.below(100) < 3;
            let w = words[rng.below(words.len() as u64) as usize];
            let t = trades[rng.below(trades.len() as u64) as usize];
            let name = if sole {
                format!("J {w}son {s} t/a {w} {t}")
            } else if vcse {
                format!("{w} Community {t} Trust {s}")
            } else {
                match rng.below(30) {
                    0 => format!("{w}, {t} & Partners {s} LLP"),
                    1 => format!("\"{w}\" {t} {s} Ltd"),
                    _ => format!("{w} {t} {s} Limited"),
                }
            };
            let id = if sole {
                format!("ST{s:06}")
            } else if vcse {
                format!("{}", 1_000_000 + (s * 131) % 999_999)
            } else {
                match rng.below(12) {
                    0 => format!("SC{:06}", (s * 7) % 1_000_000),
                    1 => format!("NI{:06}", (s * 11) % 1_000_000),
                    _ => format!("{:08}", 1_000_000 + (s * 337) % 14_000_000),
                }
            };
            let d = if rng.below(100) < 45 {
                rng.below(10) as usize
            } else {
                10 + rng.below(10) as usize
            };
            let (postcode, district_given) = match rng.below(100) {
                0..80 => {
                    let (o, i) = postcode(d, rng.below(LOADED));
                    (format!("{o} {i}"), String::new())
                }
                80..85 => {
                    let (o, i) = postcode(d, LOADED + rng.below(UNKNOWN));
                    (format!("{o} {i}"), String::new())
                }
                85..95 => (String::new(), district(d)),
                _ => (String::new(), String::new()),
            };
            let yes = |b: bool| if b { "true" } else { "false" };
            let flags: &'static str = Box::leak(
                format!("{},{},{},{}", yes(sme), yes(vcse), yes(sole), yes(anchor))
                    .into_boxed_str(),
            );
            Supplier {
                name: quoted(&name),
                id,
                postcode: postcode_case(&postcode, s),
                district: district_given,
                flags,
            }
        })
        .collect()
}

/// Postcodes as finance systems write them: most as published, some in lower case or
/// without the space (the import normalises them).
fn postcode_case(p: &str, s: usize) -> String {
    match s % 20 {
        0 => p.to_lowercase(),
        1 => p.replace(' ', ""),
        _ => p.to_owned(),
    }
}

const HEADER: &str =
    "supplier,supplier_id,postcode,district,amount,category,sme,vcse,sole_trader,anchor\n";

/// Writes lines drawn from `suppliers` until `more(lines, bytes)` says stop; returns the lines.
fn write_lines(
    w: &mut impl Write,
    suppliers: &[Supplier],
    seed: u64,
    more: impl Fn(u64, u64) -> bool,
) -> u64 {
    let mut rng = Rng(seed | 1);
    let n = suppliers.len() as u64;
    w.write_all(HEADER.as_bytes()).unwrap();
    let (mut lines, mut bytes) = (0u64, HEADER.len() as u64);
    let mut line = Vec::with_capacity(256);
    while more(lines, bytes) {
        // Skewed: a few suppliers take many lines.
        let s = &suppliers[(rng.below(n) * rng.below(n) / n) as usize];
        let pence = match rng.below(100) {
            0..50 => 1_000 + rng.below(99_000),
            50..85 => 100_000 + rng.below(1_900_000),
            85..98 => 2_000_000 + rng.below(18_000_000),
            _ => 20_000_000 + rng.below(480_000_000),
        };
        let category = match rng.below(20) {
            0 => "",
            c => CATEGORIES[(c as usize + s.id.len()) % CATEGORIES.len()],
        };
        line.clear();
        writeln!(
            line,
            "{},{},{},{},{}.{:02},{},{}",
            s.name,
            s.id,
            s.postcode,
            s.district,
            pence / 100,
            pence % 100,
            quoted(category),
            s.flags
        )
        .unwrap();
        w.write_all(&line).unwrap();
        lines += 1;
        bytes += line.len() as u64;
    }
    lines
}

/// A generated file: reused when a complete one (written whole, then renamed) is there.
fn ensure_file(path: &Path, suppliers: &[Supplier], seed: u64, stop: Stop) -> (u64, u64) {
    let lines_of = |p: &Path| {
        let mut f = std::io::BufReader::with_capacity(1 << 20, File::open(p).unwrap());
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = f.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
        }
        n - 1
    };
    if let Ok(meta) = std::fs::metadata(path) {
        let fits = match stop {
            Stop::Bytes(b) => meta.len() >= b && meta.len() < b + 4096,
            Stop::Lines(_) => true,
        };
        if fits {
            let lines = lines_of(path);
            if !matches!(stop, Stop::Lines(l) if l != lines) {
                return (lines, meta.len());
            }
        }
    }
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).unwrap());
    let lines = write_lines(&mut w, suppliers, seed, |l, b| match stop {
        Stop::Lines(n) => l < n,
        Stop::Bytes(n) => b < n,
    });
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
    (lines, std::fs::metadata(path).unwrap().len())
}

#[derive(Clone, Copy)]
enum Stop {
    Lines(u64),
    Bytes(u64),
}

/// The postcode lookup in the NSPL's layout (its 2025 columns, as ONS publishes them).
fn nspl(path: &Path) -> u64 {
    if path.exists() {
        return 20 * LOADED;
    }
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::new(File::create(&tmp).unwrap());
    writeln!(w, "\"pcd\",\"pcd2\",\"pcds\",\"dointr\",\"doterm\",\"usertype\",\"oseast1m\",\"osnrth1m\",\"osgrdind\",\"oa21\",\"cty\",\"ced\",\"laua\",\"ward\",\"nhser\",\"ctry\",\"rgn\",\"pcon\",\"ttwa\",\"itl\",\"park\",\"lsoa21\",\"msoa21\",\"wz11\",\"sicbl\",\"bua24\",\"ruc21\",\"oac11\",\"lat\",\"long\",\"lep1\",\"lep2\",\"pfa\",\"imd\",\"icb\"").unwrap();
    for d in 0..20 {
        for k in 0..LOADED {
            let (o, i) = postcode(d, k);
            let doterm = if k >= TERMINATED_FROM { "201506" } else { "" };
            let lsoa = format!("E01{:06}", 30_000 + d * 100 + (k % 100) as usize);
            writeln!(
                w,
                "\"{o:<4}{i}\",\"{o:<5}{i}\",\"{o} {i}\",\"198001\",\"{doterm}\",\"0\",\"{}\",\"{}\",\"1\",\"E00{:06}\",\"E99999999\",\"E99999999\",\"{}\",\"E05000001\",\"E40000008\",\"E92000001\",\"E12000005\",\"E14001234\",\"E30000169\",\"E06000001\",\"E65000001\",\"{lsoa}\",\"E02000001\",\"E33000001\",\"E38000001\",\"E63000001\",\"UN1\",\"3B1\",\"52.48\",\"-1.89\",\"E37000051\",\"\",\"E23000014\",\"15843\",\"E54000055\"",
                400_000 + d * 1000,
                280_000 + k,
                d * 10_000 + k as usize,
                district(d)
            )
            .unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
    20 * LOADED
}

/// `anchorfed serve`, release build, its own process, on a port of its own.
struct Server {
    process: Stopped,
    port: u16,
    /// Its log (stdout and stderr), quoted when an import fails.
    logs: [PathBuf; 2],
}

impl Server {
    async fn start(dir: &Path, url: &str, cache: bool, name: &str) -> Server {
        let port = free_port();
        let budget = "2000000000";
        let err = dir.join(format!("{name}.err"));
        let process = Stopped(
            anchorfed(dir, url)
                .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
                .env("ANCHORFED_CACHE__ENABLED", cache.to_string())
                .env("ANCHORFED_RATE_LIMIT__ANONYMOUS_BURST", budget)
                .env("ANCHORFED_RATE_LIMIT__ANONYMOUS_PER_MINUTE", budget)
                .env("ANCHORFED_RATE_LIMIT__TOKEN_BURST", budget)
                .env("ANCHORFED_RATE_LIMIT__TOKEN_PER_MINUTE", budget)
                .stdout(File::create(dir.join(format!("{name}.log"))).unwrap())
                .stderr(File::create(&err).unwrap())
                .spawn()
                .expect("start anchorfed serve"),
        );
        let client = reqwest::Client::new();
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < end,
                "anchorfed did not come up in 60 s; its log:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server {
            process,
            port,
            logs: [dir.join(format!("{name}.log")), err],
        }
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    fn graphql(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }
}

async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut r = client.post(url).header("accept", "application/json");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.json(body).send().await.unwrap();
    let bytes = r.bytes().await.unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"errors": [{"message": String::from_utf8_lossy(&bytes)}]}))
}

async fn data(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let v = post(client, url, Some(token), body).await;
    assert!(v.get("errors").is_none() && v.get("data").is_some(), "{v}");
    v["data"].clone()
}

/// Sends `body` (`len` bytes) to `POST /imports/spend` over a plain HTTP/1.1 connection,
/// streamed as it is read; returns the job's id.
fn send_spend(port: u16, institution: &str, token: &str, body: impl Read, len: u64) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    write!(
        s,
        "POST /imports/spend?institution={institution}&period={PERIOD} HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = std::io::BufReader::with_capacity(1 << 20, body);
    std::io::copy(&mut body, &mut s).expect("send the file");
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap_or_default();
    let json_at = answer.find('{').unwrap_or(answer.len());
    let json_end = answer.rfind('}').map_or(answer.len(), |e| e + 1);
    let v: Value = serde_json::from_str(&answer[json_at..json_end.max(json_at)])
        .unwrap_or_else(|_| panic!("POST /imports/spend: {answer}"));
    assert!(
        status == "202" || status == "200",
        "POST /imports/spend answered {status}: {v}"
    );
    v["jobId"].as_str().unwrap().to_owned()
}

/// Follows `importJob(id)` until it ends; panics unless it SUCCEEDED.
async fn wait_job(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
    logs: &[PathBuf],
) -> Value {
    let body = json!({
        "query": "query($id: ID!) { importJob(id: $id) { state rowsRead failure result { lines placeUnknownLines } } }",
        "variables": {"id": id}
    });
    loop {
        let job = data(client, url, token, &body).await["importJob"].clone();
        match job["state"].as_str() {
            Some("SUCCEEDED") => return job,
            Some("FAILED") => {
                let mut tail = String::new();
                for l in logs {
                    let text = std::fs::read_to_string(l).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    tail += &lines[lines.len().saturating_sub(20)..].join("\n");
                }
                panic!("import job {id} failed: {job}; the server's log ends:\n{tail}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// How long an import took: from the first byte sent until the answer (the body read, checked
/// and staged), and until the job SUCCEEDED (switched in); and the job.
struct Imported {
    staged: f64,
    secs: f64,
    job: Value,
}

/// Imports the file at `path` for `institution`.
async fn import_file(server: &Server, institution: &str, token: &str, path: &Path) -> Imported {
    let client = reqwest::Client::new();
    let (port, inst, tok, p) = (
        server.port,
        institution.to_owned(),
        token.to_owned(),
        path.to_owned(),
    );
    let started = Instant::now();
    let id = tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&p).unwrap().len();
        send_spend(port, &inst, &tok, File::open(&p).unwrap(), len)
    })
    .await
    .unwrap();
    let staged = started.elapsed().as_secs_f64();
    let job = wait_job(&client, &server.graphql(), token, &id, &server.logs).await;
    Imported {
        staged,
        secs: started.elapsed().as_secs_f64(),
        job,
    }
}

/// The statements PostgreSQL counted in this database since the last reset, by time
/// (pg_stat_statements, when the server loads it; utility statements such as COPY are not
/// counted): the top `n`, printed under `label`; then reset.
async fn top_statements(db: &DatabaseConnection, label: &str, n: usize, width: usize) {
    let Ok(rows) = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT CAST(calls AS BIGINT), total_exec_time, \
                   left(regexp_replace(query, '\\s+', ' ', 'g'), {width}) \
                 FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND query NOT ILIKE '%pg_stat_statements%' \
                 ORDER BY total_exec_time DESC LIMIT {n}"
            ),
        ))
        .await
    else {
        return;
    };
    println!("{label} (pg_stat_statements, by time):");
    let prefix = label.split(':').next().unwrap_or(label);
    for r in rows {
        println!(
            "{prefix}:   {} call(s), {:.0} ms: {}",
            r.try_get_by_index::<i64>(0).unwrap(),
            r.try_get_by_index::<f64>(1).unwrap(),
            r.try_get_by_index::<String>(2).unwrap()
        );
    }
    reset_statements(db).await;
}

/// Whether pg_stat_statements is there (created in this database and reset).
async fn reset_statements(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .is_ok()
        && db
            .execute_unprepared("SELECT pg_stat_statements_reset()")
            .await
            .is_ok()
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The directory: the region (10 districts) with 5 networks of 100 institutions each (every
/// tenth also a member of the next network), and elsewhere (10 districts) a network whose
/// institutions parts 1 and 2 import for.
async fn directory(db: &DatabaseConnection) {
    let mut geos = vec![
        format!("('{REGION}', 'Bench region', 'E47', 2023, NULL)"),
        format!("('{ELSEWHERE}', 'Bench elsewhere', 'E47', 2023, NULL)"),
    ];
    for d in 0..20 {
        geos.push(format!(
            "('{}', 'Bench district {d}', 'E08', 2023, NULL)",
            district(d)
        ));
    }
    let in_region = (0..10)
        .map(|d| format!("'{}'", district(d)))
        .collect::<Vec<_>>()
        .join(", ");
    let statements = [
        format!(
            "INSERT INTO geographies (code, name, kind, vintage, parent_code) VALUES {}",
            geos.join(", ")
        ),
        format!(
            "INSERT INTO regions (code, name, created_at) VALUES ('{REGION}', 'Bench region', now()), \
             ('{ELSEWHERE}', 'Bench elsewhere', now())"
        ),
        format!(
            "INSERT INTO region_districts (region_id, district_code) \
             SELECT r.id, g.code FROM regions r, geographies g WHERE g.kind = 'E08' \
               AND ((r.code = '{REGION}' AND g.code IN ({in_region})) \
                 OR (r.code = '{ELSEWHERE}' AND g.code NOT IN ({in_region})))"
        ),
        format!(
            "INSERT INTO networks (key, name, short_name, region_id, established, population, model, \
               membership_rule, governance, imd_rank, imd_rank_of, requires_approval, created_at, updated_at) \
             SELECT 'bench-n' || n, 'Bench network ' || n, 'BN' || n, r.id, 2015, 400000, '', '', '', \
               NULL, NULL, false, now(), now() \
             FROM regions r, generate_series(0, {}) n WHERE r.code = '{REGION}' ORDER BY n",
            NETWORKS - 1
        ),
        format!(
            "INSERT INTO networks (key, name, short_name, region_id, established, population, model, \
               membership_rule, governance, imd_rank, imd_rank_of, requires_approval, created_at, updated_at) \
             SELECT '{INGEST_NETWORK}', 'Bench ingest network', 'BI', r.id, 2015, 400000, '', '', '', \
               NULL, NULL, false, now(), now() FROM regions r WHERE r.code = '{ELSEWHERE}'"
        ),
        // Two districts each.
        "INSERT INTO network_districts (network_id, district_code) \
         SELECT n.id, 'E08' || lpad(CAST(100000 + d AS TEXT), 6, '0') \
         FROM networks n, generate_series(0, 9) d \
         WHERE n.key LIKE 'bench-n%' AND d / 2 = CAST(substr(n.key, 8) AS INTEGER)"
            .to_owned(),
        format!(
            "INSERT INTO network_districts (network_id, district_code) \
             SELECT id, '{}' FROM networks WHERE key = '{INGEST_NETWORK}'",
            district(10)
        ),
        format!(
            "INSERT INTO institutions (key, name, sector, home_district_code, year_end_month, \
               steward_network_id, record_key, created_at, updated_at) \
             SELECT n.key || '-i' || k, 'Fictional institution ' || n.key || ' ' || k, \
               (ARRAY['LOCAL_AUTHORITY', 'NHS_TRUST', 'UNIVERSITY', 'FE_COLLEGE', \
                 'HOUSING_ASSOCIATION', 'POLICE'])[k % 6 + 1], \
               'E08' || lpad(CAST(100000 + 2 * CAST(substr(n.key, 8) AS INTEGER) + k % 2 AS TEXT), 6, '0'), \
               CASE WHEN k % 6 = 2 THEN 7 ELSE 3 END, n.id, CAST(floor(random() * 256) AS SMALLINT), \
               now(), now() \
             FROM networks n, generate_series(0, {}) k WHERE n.key LIKE 'bench-n%' ORDER BY n.id, k",
            PER_NETWORK - 1
        ),
        format!(
            "INSERT INTO institutions (key, name, sector, home_district_code, year_end_month, \
               steward_network_id, record_key, created_at, updated_at) \
             SELECT '{INGEST_NETWORK}-i' || k, 'Fictional ingest institution ' || k, 'NHS_TRUST', \
               '{}', 3, n.id, CAST(floor(random() * 256) AS SMALLINT), now(), now() \
             FROM networks n, generate_series(0, 4) k WHERE n.key = '{INGEST_NETWORK}'",
            district(10)
        ),
        "INSERT INTO memberships (institution_id, network_id, from_date, to_date, status, created_at, accepted_at) \
         SELECT id, steward_network_id, DATE '2015-04-01', NULL, 'ACTIVE', now(), now() \
         FROM institutions WHERE key LIKE 'bench-%'"
            .to_owned(),
        format!(
            "INSERT INTO memberships (institution_id, network_id, from_date, to_date, status, created_at, accepted_at) \
             SELECT i.id, n2.id, DATE '2018-04-01', NULL, 'ACTIVE', now(), now() \
             FROM institutions i JOIN networks n ON n.id = i.steward_network_id \
             JOIN networks n2 ON n2.key = 'bench-n' || ((CAST(substr(n.key, 8) AS INTEGER) + 1) % {NETWORKS}) \
             WHERE n.key LIKE 'bench-n%' AND i.id % 10 = 0"
        ),
        "INSERT INTO stewardships (institution_id, network_id, from_at, to_at, changed_by) \
         SELECT id, steward_network_id, now(), NULL, 'bench' FROM institutions WHERE key LIKE 'bench-%'"
            .to_owned(),
    ];
    for s in statements {
        db.execute_unprepared(&s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// A fresh database, migrated, with the directory and the postcode lookup.
async fn prepared_database(
    arg: &str,
    dir: &Path,
    lookup: &Path,
) -> (String, DatabaseConnection, bool) {
    let url = common::database_url(arg, dir).await;
    console(dir, &url, &["migrate"]);
    let db = Database::connect(&url).await.unwrap();
    let fresh = scalar(&db, "SELECT COUNT(*) FROM networks").await == 0;
    if fresh {
        directory(&db).await;
        let loaded = console(
            dir,
            &url,
            &["geography", "load", "nspl", lookup.to_str().unwrap()],
        );
        println!("spend: {} {loaded}", url.rsplit('/').next().unwrap());
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    if let Ok(extra) = std::env::var("BENCH_SPEND_SQL") {
        for s in extra.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            db.execute_unprepared(s)
                .await
                .unwrap_or_else(|e| panic!("BENCH_SPEND_SQL: {s}: {e}"));
            println!("spend: applied (BENCH_SPEND_SQL): {s}");
        }
    }
    (url, db, fresh)
}

/// The indexes this benchmark's runs added (`BENCH_SPEND_SQL`, named `bench_…`), with their
/// sizes.
async fn added_indexes(db: &DatabaseConnection) -> String {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(c.relname AS TEXT), CAST(pg_relation_size(c.oid) AS BIGINT) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'i' AND n.nspname = 'public' AND c.relname LIKE 'bench\\_%' \
             ORDER BY 1",
        ))
        .await
        .unwrap();
    if rows.is_empty() {
        return "none".into();
    }
    rows.iter()
        .map(|r| {
            format!(
                "{} {:.0} MB",
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<i64>(1).unwrap() as f64 / 1e6
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn token(dir: &Path, url: &str, network: &str) -> String {
    console(
        dir,
        url,
        &[
            "token",
            "issue",
            "--role",
            "NETWORK_ADMIN",
            "--network",
            network,
        ],
    )
}

/// Drops a database this run created (`…/bench_…` under the server's URL).
async fn drop_database(arg: &str, url: &str) {
    let name = url.rsplit('/').next().unwrap();
    if common::reused(arg) || !name.starts_with("bench_") {
        return;
    }
    let admin = Database::connect(arg).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Part 1: the ingest ratio.
async fn ingest(
    dir: &Path,
    db: &DatabaseConnection,
    url: &str,
    file: &Path,
    lines: u64,
    bytes: u64,
) {
    let token = token(dir, url, INGEST_NETWORK);
    let server = Server::start(dir, url, true, "serve-ingest").await;
    let pgss = reset_statements(db).await;
    let Imported { staged, secs, job } =
        import_file(&server, &format!("{INGEST_NETWORK}-i0"), &token, file).await;
    let peak = status_kb(server.pid(), "VmHWM:");
    drop(server);
    let ours = lines as f64 / secs;
    println!(
        "spend (1): anchorfed POST /imports/spend: {lines} lines ({:.0} MB) in {secs:.2} s until SUCCEEDED: {ours:.0} rows/s ({} of them place unknown; the answer, the file read, checked and staged, after {staged:.2} s, the switch {:.2} s more; server peak RSS {:.0} MB)",
        bytes as f64 / 1e6,
        job["result"]["placeUnknownLines"],
        secs - staged,
        mb(peak)
    );
    if pgss {
        top_statements(db, "spend (1): the import's statements", 6, 160).await;
    }

    db.execute_unprepared(
        "CREATE TABLE bare_spend (supplier text, supplier_id text, postcode text, district text, \
         amount text, category text, sme text, vcse text, sole_trader text, anchor text)",
    )
    .await
    .unwrap();
    let mut conn = PgConnection::connect(url).await.unwrap();
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bare_spend FROM STDIN (FORMAT csv, HEADER)")
        .await
        .unwrap();
    let mut f = File::open(file).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await.unwrap();
    }
    let copied = copy.finish().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    conn.close().await.unwrap();
    db.execute_unprepared("DROP TABLE bare_spend")
        .await
        .unwrap();
    assert_eq!(copied, lines, "COPY took every line");
    let theirs = lines as f64 / secs;
    println!(
        "spend (1): PostgreSQL COPY bare_spend FROM STDIN (FORMAT csv, HEADER), the same file, 10 text columns, no index: {copied} rows in {secs:.2} s: {theirs:.0} rows/s"
    );
    println!(
        "spend (1): ingest ratio anchorfed / COPY = {:.2} (target >= 0.5)",
        ours / theirs
    );
}

/// Part 2: the server's peak RSS importing a 100 MB file and a 1 GB file, a fresh server each.
async fn rss(dir: &Path, url: &str, files: &[(PathBuf, u64, u64)]) {
    let token = token(dir, url, INGEST_NETWORK);
    let mut peaks = vec![];
    for (k, (file, lines, bytes)) in files.iter().enumerate() {
        let server = Server::start(dir, url, true, &format!("serve-rss-{k}")).await;
        let pid = server.pid();
        let at_start = status_kb(pid, "VmRSS:");
        // Sampled too, to show the curve is flat, not only its top.
        let stop = Arc::new(AtomicBool::new(false));
        let sampled = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, sampled) = (stop.clone(), sampled.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    sampled.fetch_max(status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let Imported { secs, .. } = import_file(
            &server,
            &format!("{INGEST_NETWORK}-i{}", k + 1),
            &token,
            file,
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        sampler.await.unwrap();
        let peak = status_kb(pid, "VmHWM:");
        drop(server);
        println!(
            "spend (2): {:.0} MB file ({lines} lines) imported in {secs:.1} s ({:.0} rows/s): server RSS {:.0} MB after start, peak {:.0} MB (VmHWM; largest sample of VmRSS every 50 ms: {:.0} MB)",
            *bytes as f64 / 1e6,
            *lines as f64 / secs,
            mb(at_start),
            mb(peak),
            mb(sampled.load(Ordering::Relaxed))
        );
        peaks.push(peak);
    }
    println!(
        "spend (2): peak RSS importing {}: {} (target under 150 MB and flat)",
        files
            .iter()
            .map(|(_, _, b)| format!("{:.0} MB", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(" / "),
        peaks
            .iter()
            .map(|p| format!("{:.0} MB", mb(*p)))
            .collect::<Vec<_>>()
            .join(" / ")
    );
}

/// The hand-written statement for the region's local-spend share: over the current (latest)
/// 2023/24 spend file of each institution that is a member of one of the region's networks on
/// its period's last day, the amounts of lines whose district is the region's, over all
/// amounts. Also the contributors (institutions with a file) and the eligible institutions.
fn hand_sql() -> String {
    format!(
        "WITH m AS (SELECT DISTINCT i.id FROM institutions i \
           JOIN memberships ms ON ms.institution_id = i.id \
           JOIN networks n ON n.id = ms.network_id JOIN regions r ON r.id = n.region_id \
           WHERE r.code = '{REGION}' AND ms.status = 'ACTIVE' \
             AND ms.from_date <= CASE WHEN i.year_end_month = 7 THEN DATE '2024-07-31' ELSE DATE '2024-03-31' END \
             AND (ms.to_date IS NULL OR ms.to_date >= CASE WHEN i.year_end_month = 7 THEN DATE '2024-07-31' ELSE DATE '2024-03-31' END)), \
         f AS (SELECT DISTINCT ON (sf.institution_id) sf.id FROM spend_files sf \
           WHERE sf.period = '{PERIOD}' AND sf.institution_id IN (SELECT id FROM m) \
           ORDER BY sf.institution_id, sf.version DESC) \
         SELECT CAST(SUM(l.amount) FILTER (WHERE l.district_code IN \
             (SELECT rd.district_code FROM region_districts rd JOIN regions r ON r.id = rd.region_id \
              WHERE r.code = '{REGION}')) AS BIGINT) AS local, \
           CAST(SUM(l.amount) AS BIGINT) AS total, \
           (SELECT COUNT(*) FROM f) AS contributors, (SELECT COUNT(*) FROM m) AS eligible \
         FROM spend_lines l WHERE l.file_id IN (SELECT id FROM f)"
    )
}

/// One institution's file for part 3: its own draw of 20,000 lines.
fn institution_file(suppliers: &[Supplier], seed: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(LINES_PER_INSTITUTION * 100);
    write_lines(&mut body, suppliers, seed, |l, _| {
        l < LINES_PER_INSTITUTION as u64
    });
    body
}

/// Part 3: the local-spend share over 10 million lines.
async fn share(arg: &str, dir: &Path, lookup: &Path, suppliers: Arc<Vec<Supplier>>, files: &Path) {
    let started = Instant::now();
    let (url, db, _) = prepared_database(arg, dir, lookup).await;
    let name = url.rsplit('/').next().unwrap().to_owned();
    let runs: usize = std::env::var("BENCH_SPEND_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let keys: Vec<String> = (0..NETWORKS).map(|n| format!("bench-n{n}")).collect();
    let tokens: Vec<String> = keys.iter().map(|k| token(dir, &url, k)).collect();
    let analyst = console(
        dir,
        &url,
        &[
            "token",
            "issue",
            "--role",
            "REGION_ANALYST",
            "--region",
            REGION,
        ],
    );
    let mut server = Server::start(dir, &url, false, "serve-share").await;
    let client = reqwest::Client::new();
    let have = scalar(
        &db,
        &format!("SELECT COUNT(*) FROM spend_files WHERE period = '{PERIOD}'"),
    )
    .await;
    if have == 0 {
        // Every network grants the region's analysts DETAIL on SPEND for the year.
        let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let review = (chrono::Utc::now() + chrono::Duration::days(30))
            .date_naive()
            .to_string();
        for (k, t) in keys.iter().zip(&tokens) {
            data(
                &client,
                &server.graphql(),
                t,
                &json!({
                    "query": "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
                    "variables": {"i": {
                        "networkId": k, "grantee": {"region": REGION}, "level": "DETAIL",
                        "metricGroups": ["SPEND"], "fromYear": PERIOD, "toYear": PERIOD,
                        "expiresAt": expires,
                        "agreement": {"reference": "BENCH-14", "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
                          "purpose": "Benchmark", "reviewDate": review}
                    }}
                }),
            )
            .await;
        }
        // 500 files of 20,000 lines through the API, two at a time (two cores).
        let loading = Instant::now();
        let work: Vec<(usize, usize)> = (0..NETWORKS)
            .flat_map(|n| (0..PER_NETWORK).map(move |k| (n, k)))
            .collect();
        let work = Arc::new(std::sync::Mutex::new(work.into_iter()));
        let mut workers = vec![];
        for _ in 0..2 {
            let (work, suppliers, tokens, gql, port, logs) = (
                work.clone(),
                suppliers.clone(),
                tokens.clone(),
                server.graphql(),
                server.port,
                server.logs.clone(),
            );
            workers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let Some((n, k)) = work.lock().unwrap().next() else {
                        break;
                    };
                    let (sup, tok) = (suppliers.clone(), tokens[n].clone());
                    let id = tokio::task::spawn_blocking(move || {
                        let body = institution_file(&sup, 1000 + (n * PER_NETWORK + k) as u64);
                        let len = body.len() as u64;
                        send_spend(
                            port,
                            &format!("bench-n{n}-i{k}"),
                            &tok,
                            body.as_slice(),
                            len,
                        )
                    })
                    .await
                    .unwrap();
                    wait_job(&client, &gql, &tokens[n], &id, &logs).await;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let secs = loading.elapsed().as_secs_f64();
        let lines = NETWORKS * PER_NETWORK * LINES_PER_INSTITUTION;
        println!(
            "spend (3): {lines} lines imported through POST /imports/spend as {} files of {LINES_PER_INSTITUTION} (two at a time) in {secs:.0} s: {:.0} rows/s",
            NETWORKS * PER_NETWORK,
            lines as f64 / secs
        );
        db.execute_unprepared("VACUUM ANALYZE").await.unwrap();
    }
    let lines = scalar(&db, "SELECT COUNT(*) FROM spend_lines").await;
    let sizes = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(pg_table_size('spend_lines') AS BIGINT), \
               CAST(pg_indexes_size('spend_lines') AS BIGINT), \
               CAST(pg_database_size(current_database()) AS BIGINT)",
        ))
        .await
        .unwrap()
        .unwrap();
    let size = |i| sizes.try_get_by_index::<i64>(i).unwrap() as f64 / 1e6;
    println!(
        "spend (3): database {name}: {lines} spend lines ({:.0} MB, its indexes {:.0} MB, the database {:.0} MB); indexes added by this benchmark: {}",
        size(0),
        size(1),
        size(2),
        added_indexes(&db).await
    );

    // A warm-up of each (anchorfed with its response cache off; the hand-written statement on
    // one connection over TCP, as the server's are), then the timed runs one at a time, in
    // turn, so that both meet the same load from whatever else runs on the machine.
    let body = json!({ "query": SHARE_QUERY });
    let first = post(&client, &server.graphql(), Some(&analyst), &body).await;
    let measured = first.get("errors").is_none();
    if !measured {
        println!(
            "spend (3): spendAnalysis answered errors (not in this build yet?): {}",
            first["errors"]
        );
    }
    let sql = hand_sql();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let row = sea_orm::sqlx::query(AssertSqlSafe(sql.clone()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (local, total, contributors, eligible): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (mut ours_times, mut times) = (vec![], vec![]);
    for _ in 0..runs {
        if measured {
            let t = Instant::now();
            let v = post(&client, &server.graphql(), Some(&analyst), &body).await;
            ours_times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(v.get("errors").is_none(), "{v}");
        }
        let t = Instant::now();
        sea_orm::sqlx::query(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let ours = measured.then(|| {
        (
            median(ours_times.clone()),
            ours_times,
            first["data"]["spendAnalysis"]["cells"].clone(),
        )
    });
    let sql_ms = median(times.clone());
    let fmt_times = |t: &[f64]| {
        t.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let share = local as f64 / total as f64;
    println!(
        "spend (3): hand-written SQL: share {share:.6} ({local} / {total} pence), {contributors} contributors of {eligible} eligible: median {sql_ms:.0} ms of {runs} runs ({} ms)",
        fmt_times(&times)
    );
    match ours {
        Some((ms, t, cells)) => {
            println!(
                "spend (3): spendAnalysis SHARE_IN_GEOGRAPHY as the region's analyst, cache off: {cells}: median {ms:.0} ms of {runs} runs ({} ms)",
                fmt_times(&t)
            );
            let value = cells[0]["value"]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| if v > 1.0 { v / 100.0 } else { v });
            println!(
                "spend (3): the same figure: {} (anchorfed {value:?}, SQL {share:.6})",
                value.is_some_and(|v| (v - share).abs() < 0.000_051)
            );
            let ratio = ms / sql_ms;
            println!(
                "spend (3): spendAnalysis / hand-written SQL = {ratio:.2}x (target within 1.3x)"
            );
            if ratio > 1.3 {
                server = diagnose(dir, &url, &db, server, &client, &analyst, &body, files).await;
            }
        }
        None => println!("spend (3): spendAnalysis not measured"),
    }
    drop(server);
    conn.close().await.unwrap();
    println!(
        "spend (3): took {:.0} s (database {name}; on a server that outlives the run, BENCH_SPEND_ONLY=share bench_spend {}/{name} measures again without loading)",
        started.elapsed().as_secs_f64(),
        arg.rsplit_once('/').map_or(arg, |(b, _)| b)
    );
}

/// Where the analysis' time goes: its statements by time (pg_stat_statements, when the
/// server loads it) over one more request, and their plans (auto_explain, in the server's
/// log when `BENCH_SPEND_PG_LOG` names it).
#[allow(clippy::too_many_arguments)]
async fn diagnose(
    dir: &Path,
    url: &str,
    db: &DatabaseConnection,
    server: Server,
    client: &reqwest::Client,
    analyst: &str,
    body: &Value,
    files: &Path,
) -> Server {
    if reset_statements(db).await {
        let t = Instant::now();
        post(client, &server.graphql(), Some(analyst), body).await;
        println!(
            "spend (3): one more spendAnalysis request: {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        top_statements(
            db,
            "spend (3): one spendAnalysis request's statements",
            6,
            400,
        )
        .await;
    }
    let Ok(log) = std::env::var("BENCH_SPEND_PG_LOG") else {
        return server;
    };
    let name = url.rsplit('/').next().unwrap();
    for s in [
        format!("ALTER DATABASE {name} SET session_preload_libraries = 'auto_explain'"),
        format!("ALTER DATABASE {name} SET auto_explain.log_min_duration = 50"),
        format!("ALTER DATABASE {name} SET auto_explain.log_analyze = on"),
        format!("ALTER DATABASE {name} SET auto_explain.log_buffers = on"),
    ] {
        db.execute_unprepared(&s).await.unwrap();
    }
    let before = std::fs::metadata(&log).map_or(0, |m| m.len());
    drop(server);
    let server = Server::start(dir, url, false, "serve-explain").await;
    post(client, &server.graphql(), Some(analyst), body).await;
    let mut conn = PgConnection::connect(url).await.unwrap();
    sea_orm::sqlx::query(AssertSqlSafe(hand_sql()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    db.execute_unprepared(&format!("ALTER DATABASE {name} RESET ALL"))
        .await
        .unwrap();
    let mut text = String::new();
    if let Ok(mut f) = File::open(&log) {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(before)).unwrap();
        f.read_to_string(&mut text).unwrap();
    }
    let out = files.join("plans.txt");
    std::fs::write(&out, &text).unwrap();
    println!(
        "spend (3): plans of the statements over 50 ms (auto_explain, the analysis then the SQL) in {}",
        out.display()
    );
    server
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let arg = std::env::args()
        .nth(1)
        .expect("usage: bench_spend postgres://…/postgres");
    assert!(
        arg.starts_with("postgres"),
        "bench_spend runs on PostgreSQL only"
    );
    let only = std::env::var("BENCH_SPEND_ONLY").unwrap_or_else(|_| "ingest,rss,share".into());
    let part = |p: &str| only.split(',').any(|o| o.trim() == p);
    let started = Instant::now();
    let files = PathBuf::from(
        std::env::var("BENCH_SPEND_DIR").unwrap_or_else(|_| "target/bench-spend".into()),
    );
    std::fs::create_dir_all(&files).unwrap();
    let files = files.canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suppliers = Arc::new(suppliers());
    let lookup = files.join("nspl-bench.csv");
    let postcodes = nspl(&lookup);

    let gen_started = Instant::now();
    let mut made = vec![];
    for (name, seed, stop) in [
        ("spend-1m-lines.csv", 1, Stop::Lines(1_000_000)),
        ("spend-100mb.csv", 2, Stop::Bytes(100_000_000)),
        ("spend-1gb.csv", 3, Stop::Bytes(1_000_000_000)),
    ] {
        let wanted = match name {
            "spend-1m-lines.csv" => part("ingest"),
            _ => part("rss"),
        };
        if !wanted {
            continue;
        }
        let path = files.join(name);
        let (lines, bytes) = ensure_file(&path, &suppliers, seed, stop);
        made.push((path, lines, bytes));
    }
    println!(
        "spend: files in {} ({postcodes} postcodes in the lookup; {}) ready in {:.1} s",
        files.display(),
        made.iter()
            .map(|(p, l, b)| format!(
                "{}: {l} lines, {:.0} MB",
                p.file_name().unwrap().to_string_lossy(),
                *b as f64 / 1e6
            ))
            .collect::<Vec<_>>()
            .join("; "),
        gen_started.elapsed().as_secs_f64()
    );

    if part("ingest") || part("rss") {
        assert!(
            !common::reused(&arg),
            "parts 1 and 2 need a fresh database: give the server's URL"
        );
        let (url, db, _) = prepared_database(&arg, dir.path(), &lookup).await;
        if part("ingest") {
            let (file, lines, bytes) = &made[0];
            ingest(dir.path(), &db, &url, file, *lines, *bytes).await;
        }
        if part("rss") {
            let rss_files: Vec<_> = made
                .iter()
                .filter(|(p, _, _)| !p.ends_with("spend-1m-lines.csv"))
                .cloned()
                .collect();
            rss(dir.path(), &url, &rss_files).await;
        }
        db.close().await.unwrap();
        drop_database(&arg, &url).await;
    }
    if part("share") {
        share(&arg, dir.path(), &lookup, suppliers.clone(), &files).await;
    }
    println!("spend: took {:.0} s", started.elapsed().as_secs_f64());
}
