//! Ordinary reads while 8 clients send abusive requests (issue 12): the latency of a
//! dashboard's reads alone and then under attack, what the attackers got back, and the
//! server's peak RSS. The server is the release binary (`anchorfed serve --demo`) in its own
//! process with default settings, so its RSS is its own. Run with `scripts/bench abuse`.
//!
//! Usage: bench_abuse sqlite | bench_abuse postgres://…/postgres

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(
    dead_code,
    reason = "this benchmark issues its token at the console, as an operator would"
)]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ATTACKERS: usize = 8;
const BASELINE: Duration = Duration::from_secs(10);
const ATTACK: Duration = Duration::from_secs(30);

const ORDINARY: [&str; 2] = [
    "{ impact(input: { region: \"E47000007\", years: [\"2022/23\"], metrics: [\"procurement_spend_total\", \"procurement_spend_region\", \"headcount\", \"land_owned\"] }) { withheldNetworks { key } cells { metric { code unit } year value contributors eligible coverage equivalences { name value } } } }",
    "{ networks(first: 10) { edges { node { key name established population districts { code name } members(first: 100) { totalCount } } } } }",
];

const METRICS: &str = "\"procurement_spend_total\", \"procurement_spend_local\", \"procurement_spend_region\", \"spend_sme\", \"spend_vcse\", \"local_spend_share\", \"region_spend_share\", \"headcount\", \"fte\", \"apprentices\", \"living_wage_employees\", \"land_owned\", \"emissions_scope1\", \"emissions_scope2\", \"employees_by_residence\"";

fn impact_operation(fields: usize, years: usize, group_by: &str) -> String {
    let years: Vec<String> = (0..years)
        .map(|i| format!("\"{}/{:02}\"", 2022 - i, (23 - i) % 100))
        .collect();
    let input = format!(
        "{{ region: \"E47000007\", years: [{}], metrics: [{METRICS}], groupBy: [{group_by}] }}",
        years.join(", ")
    );
    let body: String = (0..fields)
        .map(|i| format!("i{i}: impact(input: {input}) {{ withheldNetworks {{ key }} cells {{ metric {{ code }} year network {{ key }} sector district {{ code }} value suppressed contributors eligible coverage }} }} "))
        .collect();
    format!("{{ {body} }}")
}

fn fragment_explosion(levels: usize) -> String {
    let mut q = String::from("query { ...F0 }");
    for i in 0..levels {
        q += &format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1);
    }
    q + &format!(" fragment F{levels} on Query {{ __typename }}")
}

/// The attacks each attacker cycles through, as JSON bodies.
fn attacks() -> Vec<(&'static str, String)> {
    let batch = Value::Array(vec![
        json!({"query": impact_operation(20, 20, "NETWORK, SECTOR, DISTRICT")});
        10
    ]);
    vec![
        (
            "fragment explosion",
            json!({"query": fragment_explosion(40)}).to_string(),
        ),
        ("10 x 20 impact batch", batch.to_string()),
        (
            "heaviest admitted impact",
            json!({"query": impact_operation(1, 4, "NETWORK")}).to_string(),
        ),
        (
            "1 MB body",
            json!({"query": format!("{{ regions {{ code }} }} #{}", "x".repeat(1 << 20))})
                .to_string(),
        ),
    ]
}

fn binary() -> std::path::PathBuf {
    // target/release/examples/bench_abuse -> target/release/anchorfed
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("anchorfed")
}

fn anchorfed(dir: &std::path::Path, url: &str) -> Command {
    let mut c = Command::new(binary());
    c.env_remove("ANCHORFED_CONFIG")
        .env("DATABASE_URL", url)
        .env("ANCHORFED_DATA_DIR", dir)
        .env("ANCHORFED_LOG_LEVEL", "error")
        .current_dir(dir);
    c
}

/// Starts the server and reads its address from the line it prints.
fn serve(dir: &std::path::Path, url: &str) -> (Child, String) {
    let mut child = anchorfed(dir, url)
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anchorfed serve (build it: cargo build --release)");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let at = line.find("http://").expect("the serving line");
    let base = line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    (child, format!("{base}/graphql"))
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Reads a dashboard makes: 10 a second, well within a token's budget of cost.
const PACE: Duration = Duration::from_millis(100);

/// One dashboard reading at `PACE` for `d`: the latency of each read.
async fn ordinary(client: &reqwest::Client, url: &str, token: &str, d: Duration) -> Vec<Duration> {
    let mut lat = vec![];
    let end = Instant::now() + d;
    let mut i = 0;
    while Instant::now() < end {
        let t = Instant::now();
        let r = client
            .post(url)
            .bearer_auth(token)
            .json(&json!({"query": ORDINARY[i % 2]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(v.get("errors").is_none(), "{v}");
        lat.push(t.elapsed());
        i += 1;
        tokio::time::sleep(PACE.saturating_sub(t.elapsed())).await;
    }
    lat.sort();
    lat
}

fn summary(name: &str, lat: &[Duration]) -> String {
    format!(
        "{name}: {} reads, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(lat, 0.5),
        percentile(lat, 0.95),
        percentile(lat, 0.99),
        percentile(lat, 1.0)
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "sqlite".into());
    let backend = if arg == "sqlite" {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(&arg, dir.path()).await;
    let (mut server, graphql) = serve(dir.path(), &url);
    let pid = server.id();
    let out = anchorfed(dir.path(), &url)
        .args([
            "token",
            "issue",
            "--role",
            "REGION_ANALYST",
            "--region",
            "E47000007",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();

    let alone = ordinary(&client, &graphql, &token, BASELINE).await;
    let rss_before = status_kb(pid, "VmRSS:");

    // BENCH_ATTACK=<name> plays one attack alone, to see what each costs the server.
    let only = std::env::var("BENCH_ATTACK").ok();
    let attacks: Vec<_> = attacks()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| name.contains(o)))
        .collect();
    let mut attackers = vec![];
    for a in 0..ATTACKERS {
        let (client, url, attacks) = (reqwest::Client::new(), graphql.clone(), attacks.clone());
        attackers.push(tokio::spawn(async move {
            let mut seen: BTreeMap<(String, u16), usize> = BTreeMap::new();
            let end = Instant::now() + ATTACK;
            let mut i = a;
            while Instant::now() < end {
                let (name, body) = &attacks[i % attacks.len()];
                let status = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                *seen.entry(((*name).to_owned(), status)).or_default() += 1;
                i += 1;
            }
            seen
        }));
    }
    let attacked = ordinary(&client, &graphql, &token, ATTACK).await;
    let mut seen: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for a in attackers {
        for (k, n) in a.await.unwrap() {
            *seen.entry(k).or_default() += n;
        }
    }
    let peak = status_kb(pid, "VmHWM:");
    let _ = server.kill();
    let _ = server.wait();

    println!(
        "{}",
        summary(
            &format!("{backend}: ordinary reads alone ({} s)", BASELINE.as_secs()),
            &alone
        )
    );
    println!(
        "{}",
        summary(
            &format!(
                "{backend}: ordinary reads with {ATTACKERS} attackers ({} s)",
                ATTACK.as_secs()
            ),
            &attacked
        )
    );
    let answers: Vec<String> = seen
        .iter()
        .map(|((name, status), n)| format!("{name} -> {status}: {n}"))
        .collect();
    println!("{backend}: attackers' answers: {}", answers.join("; "));
    println!(
        "{backend}: server RSS {} MB before the attack, peak {} MB",
        rss_before / 1024,
        peak / 1024
    );
}
