//! Reads against PostGraphile (issue 13): one PostgreSQL database holding the national
//! generator's data (`common/national.rs`), with grants so that a researcher and a region
//! analyst have returns to read, served at once by `anchorfed serve` (the release binary, in its
//! own process) and by PostGraphile v5 (amber preset, Node.js 22). Each read is loaded on each in
//! turn by one load generator, wrk (2 threads, 16 connections, POST), and the figures are
//! printed side by side: requests a second, p50 and p99 latency, the ratio, and the SQL
//! statements each read runs. The `impact` mix, which PostGraphile has no counterpart for, is set
//! against hand-written SQL statements for the same cells run by pgbench at the same
//! concurrency. At the end: the peak RSS (`VmHWM`) of the anchorfed server over the whole run.
//!
//! Usage: bench_reads postgres://…/postgres   (run by `scripts/bench reads`, which installs
//! Node.js, PostGraphile and wrk first). Environment:
//! - `BENCH_READS_DIR` (required): the folder holding `node/bin/node` and
//!   `postgraphile/` (with `node_modules` and `graphile.config.mjs`);
//! - `PG_BIN`: where `pgbench` is (default: the PATH);
//! - `BENCH_READS_SECONDS` (default 10) and `BENCH_READS_WARMUP` (default 2): each load's
//!   length and the unmeasured warm-up before it;
//! - `BENCH_READS_ONLY`: the reads to run, by letter (`c,g`);
//! - `BENCH_READS_LOG_LEVEL`: anchorfed's `log_level` (default: its default, `info`);
//! - `BENCH_READS_CACHE=off`: anchorfed with its response cache off (`cache.enabled = false`),
//!   so every request is worked out; on by default, as the service runs.
//!
//! A URL naming a database an earlier run left (`…/bench_…`) is measured again without
//! generating.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(
    dead_code,
    reason = "this benchmark issues its tokens at the console, as an operator would"
)]
mod common;
#[path = "common/national.rs"]
mod national;
#[path = "common/process.rs"]
mod process;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anchorfed::domain::FinancialYear;
use entity::vocab::{AccessLevel, GranteeKind};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

use process::{Stopped, anchorfed, console, free_port, status_kb};

const THREADS: u32 = 2;
const CONNECTIONS: u32 = 16;
/// Sequential requests over which the statements of a read are counted.
const COUNTED: i64 = 10;

/// The region the analyst and the network admin are in (region 0), and the one the
/// researcher's grants come from (region 1).
const REGION: &str = "E47000100";
const ADMIN_NETWORK: &str = "r0-n0";
const ORGANISATION: &str = "bench-research";
/// Region 0's networks 1-3 grant its analysts DETAIL; region 1's networks 0-2 grant the
/// researcher's organisation DETAIL.
const ANALYST_GRANTORS: std::ops::Range<usize> = 1..4;
const RESEARCHER_GRANTORS: std::ops::Range<usize> = 0..3;
const PERIOD: &str = "2022/23";

/// What a read is set against.
enum Other {
    /// The same data through PostGraphile, in PostGraphile's names.
    PostGraphile(String),
    /// Hand-written SQL statements, run by pgbench (one picked at random per transaction).
    Sql(Vec<String>),
}

/// Whose token a read carries.
#[derive(Clone, Copy)]
enum Who {
    Anonymous,
    Admin,
    Researcher,
    Analyst,
}

struct Read {
    letter: &'static str,
    name: &'static str,
    who: Who,
    /// Request bodies, sent in turn.
    bodies: Vec<Value>,
    other: Other,
    /// What to count in each answer: a label, then the field that marks one such object in
    /// anchorfed's answer and in PostGraphile's.
    count: Vec<(&'static str, &'static str, &'static str)>,
}

/// One load's figures.
#[derive(Debug, Default, Clone)]
struct Load {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx answers and socket errors (wrk), failed transactions (pgbench).
    errors: u64,
}

/// Waits until `ready` answers true, or panics after a minute with the server's log.
async fn wait_for(what: &str, log: &Path, mut ready: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what} did not come up in 60 s; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The database's additions for these reads: identifiers (one or two an institution), the
/// researchers' organisation, and the grants the researcher and the analyst read under.
async fn prepare(db: &DatabaseConnection, by_region: &[Vec<i64>]) {
    db.execute_unprepared(
        "INSERT INTO institution_identifiers (institution_id, scheme, value) \
         SELECT id, CASE sector WHEN 'NHS_TRUST' THEN 'ODS' WHEN 'UNIVERSITY' THEN 'UKPRN' \
           WHEN 'FE_COLLEGE' THEN 'UKPRN' WHEN 'LOCAL_AUTHORITY' THEN 'GSS' \
           ELSE 'COMPANIES_HOUSE' END, 'B' || LPAD(id::text, 7, '0') FROM institutions",
    )
    .await
    .unwrap();
    db.execute_unprepared(
        "INSERT INTO institution_identifiers (institution_id, scheme, value) \
         SELECT id, 'CHARITY', 'C' || LPAD(id::text, 7, '0') FROM institutions \
         WHERE sector IN ('UNIVERSITY', 'HOUSING_ASSOCIATION')",
    )
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO organisations (key, name, created_at) \
         VALUES ('{ORGANISATION}', 'Benchmark research unit', now())"
    ))
    .await
    .unwrap();
    let organisation = scalar(
        db,
        &format!("SELECT id FROM organisations WHERE key = '{ORGANISATION}'"),
    )
    .await;
    for k in ANALYST_GRANTORS {
        national::grant_every_group(
            db,
            by_region[0][k],
            GranteeKind::Region,
            Some(REGION.to_owned()),
            None,
            AccessLevel::Detail,
        )
        .await;
    }
    for k in RESEARCHER_GRANTORS {
        national::grant_every_group(
            db,
            by_region[1][k],
            GranteeKind::Organisation,
            None,
            Some(organisation),
            AccessLevel::Detail,
        )
        .await;
    }
}

/// One input of the dashboard's `impact` mix (bench_impact's), and the networks it covers.
struct Mix {
    input: Value,
    networks: Vec<i64>,
    years: Vec<&'static str>,
    metrics: Vec<&'static str>,
    group: Option<&'static str>,
}

fn mix(by_region: &[Vec<i64>]) -> Vec<Mix> {
    let all_keys: Vec<String> = (0..national::REGIONS)
        .flat_map(|r| (0..national::NETWORKS_PER_REGION).map(move |n| format!("r{r}-n{n}")))
        .collect();
    let all: Vec<i64> = by_region.iter().flatten().copied().collect();
    let region = by_region[0].clone();
    vec![
        Mix {
            input: json!({"region": REGION, "years": ["2022/23"], "metrics": ["procurement_spend_total", "headcount", "local_spend_share"]}),
            networks: region.clone(),
            years: vec!["2022/23"],
            metrics: vec!["procurement_spend_total", "headcount", "local_spend_share"],
            group: None,
        },
        Mix {
            input: json!({"region": REGION, "years": ["2020/21", "2021/22", "2022/23"], "metrics": ["procurement_spend_total", "procurement_spend_local"], "groupBy": ["NETWORK"]}),
            networks: region.clone(),
            years: vec!["2020/21", "2021/22", "2022/23"],
            metrics: vec!["procurement_spend_total", "procurement_spend_local"],
            group: Some("NETWORK"),
        },
        Mix {
            input: json!({"networkIds": all_keys, "years": ["2022/23"], "metrics": ["headcount", "land_owned"], "groupBy": ["SECTOR"]}),
            networks: all,
            years: vec!["2022/23"],
            metrics: vec!["headcount", "land_owned"],
            group: Some("SECTOR"),
        },
        Mix {
            input: json!({"region": REGION, "years": ["2022/23"], "metrics": ["emissions_scope1"], "groupBy": ["DISTRICT"]}),
            networks: region,
            years: vec!["2022/23"],
            metrics: vec!["emissions_scope1"],
            group: Some("DISTRICT"),
        },
    ]
}

/// A hand-written statement for the cells of `m` as the admin of network `reader` may count
/// them: eligible institutions (members of the networks in scope on their period's last day,
/// once a cell), and the sum and contributors of the values of current returns of those the
/// reader sees (their steward, or a fellow member on the period's last day); a ratio over the
/// institutions that reported both parts. Disclosure control has nothing to do for this
/// reader, so it is left out.
fn hand_sql(m: &Mix, reader: i64) -> String {
    let quote = |s: &[&str]| {
        s.iter()
            .map(|x| format!("'{x}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut last_days = vec![];
    for y in &m.years {
        let fy: FinancialYear = y.parse().unwrap();
        for month in [3, 7] {
            last_days.push(format!(
                "('{y}', {month}, DATE '{}')",
                fy.end_date(month).unwrap()
            ));
        }
    }
    let group = match m.group {
        Some("NETWORK") => "CAST(m.network_id AS TEXT)",
        Some("SECTOR") => "i.sector",
        Some("DISTRICT") => "i.home_district_code",
        _ => "''",
    };
    let ratio = m.metrics.contains(&"local_spend_share");
    let mut base: Vec<&str> = m
        .metrics
        .iter()
        .copied()
        .filter(|c| *c != "local_spend_share")
        .collect();
    if ratio {
        for part in ["procurement_spend_local", "procurement_spend_total"] {
            if !base.contains(&part) {
                base.push(part);
            }
        }
    }
    let nets = m
        .networks
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "WITH pe (period, month, last_day) AS (VALUES {last_days}), \
         e AS (SELECT DISTINCT pe.period, {group} AS g, i.id AS inst \
           FROM institutions i JOIN pe ON pe.month = i.year_end_month \
           JOIN memberships m ON m.institution_id = i.id \
           WHERE m.network_id IN ({nets}) AND m.status = 'ACTIVE' AND m.from_date <= pe.last_day \
             AND (m.to_date IS NULL OR m.to_date >= pe.last_day)), \
         n AS (SELECT period, g, COUNT(*) AS eligible FROM e GROUP BY period, g), \
         v AS (SELECT r.institution_id AS inst, r.period, rv.metric_code, rv.value \
           FROM returns r JOIN institutions i ON i.id = r.institution_id \
           JOIN return_values rv ON rv.return_id = r.id \
           WHERE r.period IN ({years}) AND rv.metric_code IN ({metrics}) AND rv.breakdown = '' \
             AND rv.value IS NOT NULL AND r.institution_id IN (SELECT inst FROM e) \
             AND (i.steward_network_id = {reader} OR EXISTS (SELECT 1 FROM memberships f \
               WHERE f.institution_id = i.id AND f.network_id = {reader} AND f.status = 'ACTIVE' \
                 AND f.from_date <= r.period_end AND (f.to_date IS NULL OR f.to_date >= r.period_end))) \
             AND r.version = (SELECT MAX(r2.version) FROM returns r2 \
               WHERE r2.institution_id = r.institution_id AND r2.period = r.period)) \
         SELECT e.period, e.g, v.metric_code, COUNT(*) AS contributors, SUM(v.value) AS total, \
           CAST(NULL AS NUMERIC) AS denominator, n.eligible \
         FROM e JOIN v ON v.inst = e.inst AND v.period = e.period \
         JOIN n ON n.period = e.period AND n.g = e.g \
         WHERE v.metric_code IN ({asked}) \
         GROUP BY e.period, e.g, v.metric_code, n.eligible",
        last_days = last_days.join(", "),
        years = quote(&m.years),
        metrics = quote(&base),
        asked = quote(
            &m.metrics
                .iter()
                .copied()
                .filter(|c| *c != "local_spend_share")
                .collect::<Vec<_>>()
        ),
    );
    if ratio {
        sql += " UNION ALL SELECT e.period, e.g, 'local_spend_share', COUNT(*), SUM(p.num), SUM(p.den), n.eligible \
           FROM e JOIN (SELECT inst, period, \
               MAX(value) FILTER (WHERE metric_code = 'procurement_spend_local') AS num, \
               MAX(value) FILTER (WHERE metric_code = 'procurement_spend_total') AS den \
             FROM v GROUP BY inst, period) p \
             ON p.inst = e.inst AND p.period = e.period AND p.num IS NOT NULL AND p.den IS NOT NULL \
           JOIN n ON n.period = e.period AND n.g = e.g \
           GROUP BY e.period, e.g, n.eligible";
    }
    sql
}

fn reads(by_region: &[Vec<i64>], only: Option<&str>) -> Vec<Read> {
    let q = |query: &str| json!({"query": query});
    let returns_selection = "nodes { id period version status institution { key } values { metric { code } value notReported breakdown } }";
    let pg_returns = format!(
        "returnsByInstitutionId(condition: {{ period: \"{PERIOD}\" }}, orderBy: PRIMARY_KEY_ASC) \
         {{ nodes {{ id period version status returnValuesByReturnId(orderBy: PRIMARY_KEY_ASC) \
         {{ nodes {{ metricCode value notReported breakdown }} }} }} }}"
    );
    let returns_query = format!(
        "query($f: ReturnFilterInput) {{ returns(filter: $f, first: 100) {{ {returns_selection} }} }}"
    );
    // The generator registers region r's networks in turn (PostGraphile's `NetworkCondition`
    // has no `regionId`: the column has no index of its own).
    let offset = |region: usize, k: usize| region * national::NETWORKS_PER_REGION + k;
    let counted_returns = vec![
        ("returns", "institution", "returnValuesByReturnId"),
        ("values", "notReported", "notReported"),
    ];
    let reader = by_region[0][0];
    let all = vec![
        Read {
            letter: "a",
            name: "100 networks, key and name",
            who: Who::Anonymous,
            bodies: vec![q("{ networks(first: 100) { nodes { key name } } }")],
            other: Other::PostGraphile(
                "{ allNetworks(first: 100, orderBy: PRIMARY_KEY_ASC) { nodes { key name } } }".into(),
            ),
            count: vec![("networks", "name", "name")],
        },
        Read {
            letter: "b",
            name: "20 networks x 50 members, sector and home district",
            who: Who::Anonymous,
            bodies: vec![q(
                "{ networks(first: 20) { nodes { key name members(first: 50) { nodes { key name sector homeDistrict { code name } } } } } }",
            )],
            other: Other::PostGraphile(
                "{ allNetworks(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { key name \
                 membershipsByNetworkId(first: 50, orderBy: PRIMARY_KEY_ASC) { nodes { \
                 institutionByInstitutionId { key name sector geographyByHomeDistrictCode { code name } } } } } } }"
                    .into(),
            ),
            count: vec![("members", "sector", "sector")],
        },
        Read {
            letter: "c",
            name: "a network admin's returns for one period, with values",
            who: Who::Admin,
            bodies: vec![json!({"query": returns_query, "variables": {"f": {"network": ADMIN_NETWORK, "period": PERIOD}}})],
            other: Other::PostGraphile(format!(
                "{{ networkByKey(key: \"{ADMIN_NETWORK}\") {{ membershipsByNetworkId(orderBy: PRIMARY_KEY_ASC) \
                 {{ nodes {{ institutionByInstitutionId {{ key {pg_returns} }} }} }} }} }}"
            )),
            count: counted_returns.clone(),
        },
        Read {
            letter: "d",
            name: "a researcher's returns under grants (3 networks, one period)",
            who: Who::Researcher,
            bodies: vec![json!({"query": returns_query, "variables": {"f": {"period": PERIOD}}})],
            other: Other::PostGraphile(format!(
                "{{ allNetworks(offset: {}, first: {}, orderBy: PRIMARY_KEY_ASC) \
                 {{ nodes {{ key institutionsByStewardNetworkId(orderBy: PRIMARY_KEY_ASC) {{ nodes {{ key {pg_returns} }} }} }} }} }}",
                offset(1, RESEARCHER_GRANTORS.start),
                RESEARCHER_GRANTORS.len()
            )),
            count: counted_returns.clone(),
        },
        Read {
            letter: "e",
            name: "an analyst's returns under grants (3 networks, one period)",
            who: Who::Analyst,
            bodies: vec![json!({"query": returns_query, "variables": {"f": {"period": PERIOD}}})],
            other: Other::PostGraphile(format!(
                "{{ allNetworks(offset: {}, first: {}, orderBy: PRIMARY_KEY_ASC) \
                 {{ nodes {{ key institutionsByStewardNetworkId(orderBy: PRIMARY_KEY_ASC) {{ nodes {{ key {pg_returns} }} }} }} }} }}",
                offset(0, ANALYST_GRANTORS.start),
                ANALYST_GRANTORS.len()
            )),
            count: counted_returns,
        },
        Read {
            letter: "f",
            name: "institutions page (100) with memberships and identifiers",
            who: Who::Anonymous,
            bodies: vec![q(
                "{ institutions(first: 100) { nodes { key name sector homeDistrict { code name } steward { key } \
                 identifiers { scheme value } memberships { from to status network { key } } } } }",
            )],
            other: Other::PostGraphile(
                "{ allInstitutions(first: 100, orderBy: PRIMARY_KEY_ASC) { nodes { key name sector \
                 geographyByHomeDistrictCode { code name } networkByStewardNetworkId { key } \
                 institutionIdentifiersByInstitutionId(orderBy: PRIMARY_KEY_ASC) { nodes { scheme value } } \
                 membershipsByInstitutionId(orderBy: PRIMARY_KEY_ASC) { nodes { fromDate toDate status networkByNetworkId { key } } } } } }"
                    .into(),
            ),
            count: vec![
                ("institutions", "sector", "sector"),
                ("identifiers", "scheme", "scheme"),
                ("memberships", "status", "status"),
            ],
        },
        {
            let query = "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { metric { code } year network { key } sector district { code } value contributors eligible coverage } } }";
            let mix = mix(by_region);
            Read {
                letter: "g",
                name: "dashboard impact mix (4 inputs in turn), as a network admin",
                who: Who::Admin,
                bodies: mix
                    .iter()
                    .map(|m| json!({"query": query, "variables": {"i": m.input}}))
                    .collect(),
                other: Other::Sql(mix.iter().map(|m| hand_sql(m, reader)).collect()),
                count: vec![("cells", "contributors", "contributors")],
            }
        },
    ];
    all.into_iter()
        .filter(|r| only.is_none_or(|o| o.split(',').any(|l| l.trim() == r.letter)))
        .collect()
}

/// Network keys by id, as the generator names them.
fn network_keys(by_region: &[Vec<i64>]) -> std::collections::HashMap<String, String> {
    by_region
        .iter()
        .enumerate()
        .flat_map(|(r, ids)| {
            ids.iter()
                .enumerate()
                .map(move |(n, id)| (id.to_string(), format!("r{r}-n{n}")))
        })
        .collect()
}

/// Whether a row of a hand-written statement is one of anchorfed's `cells`: the same period,
/// grouping, metric, contributors, eligible institutions and value (anchorfed's decimal with
/// the point taken out is the stored integer sum; a ratio is compared to 4 places).
fn same_cell(
    row: &sea_orm::QueryResult,
    cells: &Value,
    keys: &std::collections::HashMap<String, String>,
) -> bool {
    let text = |i: usize| row.try_get_by_index::<Option<String>>(i).unwrap();
    let int = |i: usize| row.try_get_by_index::<i64>(i).unwrap();
    let (period, g, metric) = (text(0).unwrap(), text(1).unwrap(), text(2).unwrap());
    let (contributors, total, denominator, eligible) = (int(3), text(4), text(5), int(6));
    cells.as_array().into_iter().flatten().any(|c| {
        let dims = [
            c["network"]["key"].as_str().map(str::to_owned),
            c["sector"].as_str().map(str::to_owned),
            c["district"]["code"].as_str().map(str::to_owned),
        ];
        let group = match dims.iter().flatten().next() {
            Some(d) => keys
                .iter()
                .find(|(_, k)| *k == d)
                .map_or(d.clone(), |(id, _)| id.clone()),
            None => String::new(),
        };
        let value = c["value"].as_str().unwrap_or_default();
        let value_equal = match (&total, &denominator) {
            (Some(n), Some(d)) => {
                let ratio = n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap();
                (value.parse::<f64>().unwrap_or(f64::NAN) - ratio).abs() < 0.000_051
            }
            (Some(n), None) => value.replace('.', "").trim_start_matches('0') == n,
            _ => false,
        };
        c["year"] == period.as_str()
            && group == g
            && c["metric"]["code"] == metric.as_str()
            && c["contributors"] == contributors
            && c["eligible"] == eligible
            && value_equal
    })
}

/// Objects in `v` (at any depth) that have the field `key`.
fn count_key(v: &Value, key: &str) -> usize {
    match v {
        Value::Object(o) => {
            usize::from(o.contains_key(key)) + o.values().map(|x| count_key(x, key)).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(|x| count_key(x, key)).sum(),
        _ => 0,
    }
}

/// Posts `body` and returns the answer's data and size, panicking on any error.
async fn answer(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (Value, usize) {
    let mut r = client.post(url).header("accept", "application/json");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.json(body).send().await.unwrap();
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(
        status.is_success() && v.get("errors").is_none() && v.get("data").is_some(),
        "{url}: HTTP {status}: {}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
    );
    (v["data"].clone(), bytes.len())
}

/// Runs wrk against `url` with `bodies` in turn; the figures from its `done` hook.
fn wrk(
    dir: &Path,
    name: &str,
    url: &str,
    bodies: &[Value],
    token: Option<&str>,
    secs: u64,
) -> Load {
    let mut lua = String::from(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Accept\"] = \"application/json\"\n",
    );
    if let Some(t) = token {
        writeln!(lua, "wrk.headers[\"Authorization\"] = \"Bearer {t}\"").unwrap();
    }
    let long = |s: &str| {
        assert!(!s.contains("]==]"));
        format!("[==[{s}]==]")
    };
    if let [body] = bodies {
        writeln!(lua, "wrk.body = {}", long(&body.to_string())).unwrap();
    } else {
        lua += "local bodies = {\n";
        for b in bodies {
            writeln!(lua, "  {},", long(&b.to_string())).unwrap();
        }
        lua += "}\nlocal n = 0\n\
                request = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])\nend\n";
    }
    lua += "done = function(summary, latency, requests)\n\
            local e = summary.errors\n\
            io.write(string.format(\"WRKJSON {\\\"requests\\\": %d, \\\"duration_us\\\": %d, \\\"p50_us\\\": %d, \\\"p99_us\\\": %d, \\\"errors\\\": %d}\\n\",\n\
              summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),\n\
              e.connect + e.read + e.write + e.status + e.timeout))\n\
            end\n";
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(&script, lua).unwrap();
    let out = Command::new("wrk")
        .args([
            &format!("-t{THREADS}"),
            &format!("-c{CONNECTIONS}"),
            &format!("-d{secs}s"),
            "--timeout",
            "30s",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRKJSON "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no figures: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let v: Value = serde_json::from_str(line).unwrap();
    let requests = v["requests"].as_u64().unwrap();
    Load {
        requests,
        rps: requests as f64 / (v["duration_us"].as_f64().unwrap() / 1e6),
        p50_ms: v["p50_us"].as_f64().unwrap() / 1000.0,
        p99_ms: v["p99_us"].as_f64().unwrap() / 1000.0,
        errors: v["errors"].as_u64().unwrap(),
    }
}

fn pgbench_binary() -> PathBuf {
    std::env::var_os("PG_BIN")
        .map(|b| PathBuf::from(b).join("pgbench"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

/// Runs `statements` through pgbench (prepared, each transaction one of them at random) at
/// wrk's concurrency; latency percentiles from its per-transaction log.
fn pgbench(dir: &Path, name: &str, url: &str, statements: &[String], secs: u64) -> Load {
    let logs = dir.join(format!("{name}-log"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = Command::new(pgbench_binary());
    cmd.args([
        "-n",
        "-M",
        "prepared",
        &format!("-c{CONNECTIONS}"),
        &format!("-j{THREADS}"),
        &format!("-T{secs}"),
        "-l",
        "--log-prefix",
    ])
    .arg(logs.join("tx"));
    for (k, s) in statements.iter().enumerate() {
        let file = dir.join(format!("{name}-{k}.sql"));
        std::fs::write(&file, format!("{s};\n")).unwrap();
        cmd.arg("-f").arg(file);
    }
    let out = cmd.arg(url).output().expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let mut latencies: Vec<u64> = vec![];
    for f in std::fs::read_dir(&logs).unwrap() {
        let path = f.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|x| x.parse().ok()) {
                latencies.push(us);
            }
        }
        std::fs::remove_file(path).unwrap();
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    };
    Load {
        requests: after("number of transactions actually processed:") as u64,
        rps: after("tps ="),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        errors: after("number of failed transactions:") as u64,
    }
}

/// Statements PostgreSQL has counted in this database (pg_stat_statements, when the server
/// loads it): all, and those that touch the access log; none when it is not loaded.
async fn pg_statements(db: &DatabaseConnection) -> Option<(i64, i64)> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT), \
               CAST(COALESCE(SUM(calls) FILTER (WHERE query ILIKE '%access_log%'), 0) AS BIGINT) \
             FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND query NOT ILIKE '%pg_stat_statements%'",
        ))
        .await
        .ok()??;
    Some((row.try_get_by_index(0).ok()?, row.try_get_by_index(1).ok()?))
}

/// anchorfed's own count of the statements it has run (`db_statements_total` on /metrics).
async fn service_statements(client: &reqwest::Client, metrics: &str) -> i64 {
    let text = client
        .get(metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("anchorfed_db_statements_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("db_statements_total on /metrics") as i64
}

/// Statements of each of `COUNTED` requests sent one at a time.
struct Counted {
    /// By anchorfed's own counter.
    service: Vec<i64>,
    /// By PostgreSQL: all, and those of the access log.
    pg: Vec<(i64, i64)>,
}

async fn count_statements(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    bodies: &[Value],
    metrics: Option<&str>,
) -> Counted {
    for b in bodies {
        answer(client, url, token, b).await;
    }
    // The access log's writer takes its entries from a channel, just after the answer.
    let settle = Duration::from_millis(150);
    tokio::time::sleep(settle).await;
    let mut counted = Counted {
        service: vec![],
        pg: vec![],
    };
    for k in 0..COUNTED {
        let service_before = match metrics {
            Some(m) => Some(service_statements(client, m).await),
            None => None,
        };
        let pg_before = pg_statements(db).await;
        answer(client, url, token, &bodies[k as usize % bodies.len()]).await;
        tokio::time::sleep(settle).await;
        if let (Some(m), Some(b)) = (metrics, service_before) {
            counted
                .service
                .push(service_statements(client, m).await - b);
        }
        if let (Some((a0, l0)), Some((a1, l1))) = (pg_before, pg_statements(db).await) {
            counted.pg.push((a1 - a0, l1 - l0));
        }
    }
    counted
}

/// The mean, and the range when requests differ.
fn spread(counts: &[i64]) -> String {
    let mean = counts.iter().sum::<i64>() as f64 / counts.len().max(1) as f64;
    match (counts.iter().min(), counts.iter().max()) {
        (Some(lo), Some(hi)) if lo != hi => format!("{mean:.1} ({lo}-{hi})"),
        _ => format!("{mean:.0}"),
    }
}

fn fmt_count(c: &Counted) -> String {
    if !c.pg.is_empty() {
        let all: Vec<i64> = c.pg.iter().map(|p| p.0).collect();
        let log: Vec<i64> = c.pg.iter().map(|p| p.1).collect();
        if log.iter().any(|l| *l > 0) {
            return format!("{}, {} access log", spread(&all), spread(&log));
        }
        return spread(&all);
    }
    if !c.service.is_empty() {
        return spread(&c.service);
    }
    "?".into()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let arg = std::env::args()
        .nth(1)
        .expect("usage: bench_reads postgres://…/postgres");
    assert!(
        arg.starts_with("postgres"),
        "bench_reads runs on PostgreSQL only"
    );
    let tools = PathBuf::from(std::env::var_os("BENCH_READS_DIR").expect(
        "BENCH_READS_DIR: the folder scripts/bench reads installs Node.js and PostGraphile in",
    ));
    let env_u64 = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let secs = env_u64("BENCH_READS_SECONDS", 10);
    let warmup = env_u64("BENCH_READS_WARMUP", 2);
    let only = std::env::var("BENCH_READS_ONLY").ok();
    let cache_on = std::env::var("BENCH_READS_CACHE").map_or(true, |v| v != "off");
    println!(
        "reads: anchorfed's response cache {}",
        if cache_on { "on (the default)" } else { "off" }
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(&arg, dir.path()).await;

    // The database: migrated by the console, then the national generator's data.
    console(dir.path(), &url, &["migrate"]);
    let db = Database::connect(&url).await.unwrap();
    let by_region: Vec<Vec<i64>> = if scalar(&db, "SELECT COUNT(*) FROM networks").await == 0 {
        national::generate(&db).await
    } else {
        // Generation inserts in id order: region r's networks are r * 10 + 1 ..= r * 10 + 10.
        (0..national::REGIONS as i64)
            .map(|r| {
                (1..=national::NETWORKS_PER_REGION as i64)
                    .map(|n| r * 10 + n)
                    .collect()
            })
            .collect()
    };
    let organisation = format!("SELECT COUNT(*) FROM organisations WHERE key = '{ORGANISATION}'");
    if scalar(&db, &organisation).await == 0 {
        prepare(&db, &by_region).await;
    }
    db.execute_unprepared("ANALYZE").await.unwrap();
    let mut sizes = vec![];
    for t in [
        "networks",
        "institutions",
        "memberships",
        "institution_identifiers",
        "returns",
        "return_values",
        "grants",
    ] {
        sizes.push(format!(
            "{} {t}",
            scalar(&db, &format!("SELECT COUNT(*) FROM {t}")).await
        ));
    }
    println!(
        "reads: database {} with {} ({:.1} s)",
        url.rsplit('/').next().unwrap_or_default(),
        sizes.join(", "),
        started.elapsed().as_secs_f64()
    );
    let pgss = db
        .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .is_ok()
        && pg_statements(&db).await.is_some();

    // Tokens, at the console.
    let admin = console(
        dir.path(),
        &url,
        &[
            "token",
            "issue",
            "--role",
            "NETWORK_ADMIN",
            "--network",
            ADMIN_NETWORK,
        ],
    );
    let researcher = console(
        dir.path(),
        &url,
        &[
            "token",
            "issue",
            "--role",
            "RESEARCHER",
            "--org",
            ORGANISATION,
        ],
    );
    let analyst = console(
        dir.path(),
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
    let token = |w: Who| match w {
        Who::Anonymous => None,
        Who::Admin => Some(admin.as_str()),
        Who::Researcher => Some(researcher.as_str()),
        Who::Analyst => Some(analyst.as_str()),
    };

    // anchorfed: defaults (access rules, access log, limits, rate limits on), but for the
    // rate limits' budgets, raised so that the load generator, one caller, is never refused;
    // /metrics on an address of its own, for its statement counter.
    let port = free_port();
    let metrics_port = free_port();
    let log = dir.path().join("anchorfed.log");
    let budget = "2000000000";
    let mut cmd = anchorfed(dir.path(), &url);
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("ANCHORFED_METRICS__ENABLED", "true")
        .env("ANCHORFED_CACHE__ENABLED", cache_on.to_string())
        .env(
            "ANCHORFED_METRICS__BIND",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("ANCHORFED_RATE_LIMIT__ANONYMOUS_BURST", budget)
        .env("ANCHORFED_RATE_LIMIT__ANONYMOUS_PER_MINUTE", budget)
        .env("ANCHORFED_RATE_LIMIT__TOKEN_BURST", budget)
        .env("ANCHORFED_RATE_LIMIT__TOKEN_PER_MINUTE", budget)
        .stdout(File::create(&log).unwrap())
        .stderr(File::create(dir.path().join("anchorfed.err")).unwrap());
    if let Ok(level) = std::env::var("BENCH_READS_LOG_LEVEL") {
        cmd.env("ANCHORFED_LOG_LEVEL", level);
    }
    let server = Stopped(cmd.spawn().expect("start anchorfed serve"));
    let pid = server.0.id();
    let ours = format!("http://127.0.0.1:{port}/graphql");
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let client = reqwest::Client::new();
    wait_for("anchorfed", &dir.path().join("anchorfed.err"), async || {
        client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let rss_start = status_kb(pid, "VmRSS:");

    // PostGraphile, from the folder scripts/bench filled.
    let pg_port = free_port();
    let pg_dir = tools.join("postgraphile");
    let pg_log = dir.path().join("postgraphile.log");
    let postgraphile = Stopped(
        Command::new(tools.join("node/bin/node"))
            .arg(pg_dir.join("node_modules/postgraphile/dist/cli-run.js"))
            .arg("-C")
            .arg(pg_dir.join("graphile.config.mjs"))
            .current_dir(&pg_dir)
            .env("DATABASE_URL", &url)
            .env("PORT", pg_port.to_string())
            .env("NODE_ENV", "production")
            .stdout(File::create(&pg_log).unwrap())
            .stderr(File::create(dir.path().join("postgraphile.err")).unwrap())
            .spawn()
            .expect("start PostGraphile (scripts/bench reads installs it)"),
    );
    let node_pid = postgraphile.0.id();
    let theirs = format!("http://127.0.0.1:{pg_port}/graphql");
    wait_for(
        "PostGraphile",
        &dir.path().join("postgraphile.err"),
        async || {
            client
                .post(&theirs)
                .json(&json!({"query": "{ __typename }"}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    let node_version = Command::new(tools.join("node/bin/node"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let pg_version = std::fs::read_to_string(pg_dir.join("node_modules/postgraphile/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let sql_url = url.clone();

    println!(
        "reads: anchorfed serve (release; access rules, access log, limits and rate limiting on, \
         rate-limit budgets raised to {budget} so one load generator is never refused) against \
         PostGraphile {pg_version} (amber preset, Node.js {node_version}, pool 16; no access \
         rules: it reads the tables directly as the database owner); wrk {THREADS} threads, \
         {CONNECTIONS} connections, {secs} s, POST, each after an unmeasured {warmup} s warm-up; \
         the impact mix against hand-written SQL run by pgbench (-M prepared, -c {CONNECTIONS} \
         -j {THREADS}, -T {secs}, the 4 statements picked at random)"
    );

    let mut rows = vec![];
    for read in reads(&by_region, only.as_deref()) {
        let t = token(read.who);
        // Each side answers, and the answers hold the same data.
        let mut ours_counts = vec![0; read.count.len()];
        let mut ours_bytes = 0;
        for b in &read.bodies {
            let (data, bytes) = answer(&client, &ours, t, b).await;
            ours_bytes += bytes;
            for (k, (_, key, _)) in read.count.iter().enumerate() {
                ours_counts[k] += count_key(&data, key);
            }
        }
        let mut seen = format!(
            "anchorfed {} ({:.1} KB)",
            read.count
                .iter()
                .zip(&ours_counts)
                .map(|((label, _, _), n)| format!("{n} {label}"))
                .collect::<Vec<_>>()
                .join(", "),
            ours_bytes as f64 / 1024.0 / read.bodies.len() as f64
        );
        match &read.other {
            Other::PostGraphile(query) => {
                let (data, bytes) = answer(&client, &theirs, None, &json!({"query": query})).await;
                let counts: Vec<String> = read
                    .count
                    .iter()
                    .map(|(label, _, key)| format!("{} {label}", count_key(&data, key)))
                    .collect();
                write!(
                    seen,
                    "; PostGraphile {} ({:.1} KB)",
                    counts.join(", "),
                    bytes as f64 / 1024.0
                )
                .unwrap();
            }
            Other::Sql(statements) => {
                let mut answers = vec![];
                for b in &read.bodies {
                    answers.push(answer(&client, &ours, t, b).await.0);
                }
                let keys = network_keys(&by_region);
                let (mut rows_out, mut equal) = (0, 0);
                for (s, data) in statements.iter().zip(&answers) {
                    let rows = db
                        .query_all_raw(Statement::from_string(
                            db.get_database_backend(),
                            format!(
                                "SELECT period, g, metric_code, contributors, CAST(total AS TEXT), \
                                 CAST(denominator AS TEXT), eligible FROM ({s}) AS x"
                            ),
                        ))
                        .await
                        .unwrap();
                    rows_out += rows.len();
                    equal += rows
                        .iter()
                        .filter(|r| same_cell(r, &data["impact"]["cells"], &keys))
                        .count();
                }
                let empty: usize = answers
                    .iter()
                    .map(|d| {
                        d["impact"]["cells"]
                            .as_array()
                            .map_or(0, |c| c.iter().filter(|c| c["contributors"] == 0).count())
                    })
                    .sum();
                write!(
                    seen,
                    "; hand-written SQL {rows_out} rows, {equal} of them equal to anchorfed's cell \
                     (value, contributors, eligible); anchorfed's other {empty} cells have no contributors"
                )
                .unwrap();
            }
        }
        if ours_counts.first() == Some(&0) {
            write!(seen, " -- WARNING: anchorfed answered nothing to count").unwrap();
        }
        println!("reads ({}): {}: {seen}", read.letter, read.name);

        // The load: anchorfed, then the other, back to back.
        let tag = |side: &str| format!("{}-{side}", read.letter);
        if warmup > 0 {
            wrk(dir.path(), &tag("af-warm"), &ours, &read.bodies, t, warmup);
        }
        let a = wrk(dir.path(), &tag("af"), &ours, &read.bodies, t, secs);
        let b = match &read.other {
            Other::PostGraphile(query) => {
                let body = [json!({"query": query})];
                if warmup > 0 {
                    wrk(dir.path(), &tag("pg-warm"), &theirs, &body, None, warmup);
                }
                wrk(dir.path(), &tag("pg"), &theirs, &body, None, secs)
            }
            Other::Sql(statements) => {
                if warmup > 0 {
                    pgbench(dir.path(), &tag("sql-warm"), &sql_url, statements, warmup);
                }
                pgbench(dir.path(), &tag("sql"), &sql_url, statements, secs)
            }
        };

        // Statements per request, one request at a time.
        let ours_statements =
            count_statements(&db, &client, &ours, t, &read.bodies, Some(&metrics)).await;
        let theirs_statements = match &read.other {
            Other::PostGraphile(query) => fmt_count(
                &count_statements(
                    &db,
                    &client,
                    &theirs,
                    None,
                    &[json!({"query": query})],
                    None,
                )
                .await,
            ),
            Other::Sql(_) => "1".into(),
        };
        rows.push((read, a, b, ours_statements, theirs_statements));
    }

    let peak = status_kb(pid, "VmHWM:");
    let rss_end = status_kb(pid, "VmRSS:");
    let node_peak = status_kb(node_pid, "VmHWM:");
    drop(server);
    drop(postgraphile);

    println!();
    println!(
        "| read | anchorfed req/s | p50 ms | p99 ms | PostGraphile (g: SQL) req/s | p50 ms | p99 ms | ratio | anchorfed SQL/request | other SQL/request |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut notes = vec![];
    for (read, a, b, ours_statements, theirs_statements) in &rows {
        println!(
            "| ({}) {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {} | {} |",
            read.letter,
            read.name,
            a.rps,
            a.p50_ms,
            a.p99_ms,
            b.rps,
            b.p50_ms,
            b.p99_ms,
            a.rps / b.rps,
            fmt_count(ours_statements),
            theirs_statements
        );
        if a.errors > 0 || b.errors > 0 {
            notes.push(format!(
                "({}) errors during the load: anchorfed {} of {}, other {} of {}",
                read.letter, a.errors, a.requests, b.errors, b.requests
            ));
        }
        let by_pg: Vec<i64> = ours_statements.pg.iter().map(|p| p.0).collect();
        if !by_pg.is_empty() && by_pg != ours_statements.service {
            notes.push(format!(
                "({}) anchorfed's own statement counter (db_statements_total) says {} a request",
                read.letter,
                spread(&ours_statements.service)
            ));
        }
    }
    println!();
    for n in notes {
        println!("reads: {n}");
    }
    if !pgss {
        println!(
            "reads: pg_stat_statements is not loaded by this server: statements are anchorfed's own counter, PostGraphile's are not counted"
        );
    } else {
        println!(
            "reads: SQL/request: the statements PostgreSQL counted (pg_stat_statements; utility statements such as BEGIN and COMMIT not counted) for each of {COUNTED} requests sent one at a time, the access log's writes included: the mean, and the range where requests differ; anchorfed's own counter (db_statements_total) agrees unless said above"
        );
    }
    println!(
        "reads: anchorfed server RSS {} MB after start, {} MB at the end, peak (VmHWM) {} MB over the whole benchmark; PostGraphile (node) peak {} MB",
        rss_start / 1024,
        rss_end / 1024,
        peak / 1024,
        node_peak / 1024
    );
    println!("reads: took {:.0} s", started.elapsed().as_secs_f64());
}
