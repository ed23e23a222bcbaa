//! The impact benchmark: builds the national generator's federation (`common/national.rs`:
//! 10 regions, 100 networks, 3,000 institutions with overlapping memberships, 10 years of
//! returns) on SQLite or PostgreSQL, then prints `impact` latency (p50, p99) for a regional and a national
//! query from one client, throughput and p99 for a dashboard mix at 16 concurrent connections,
//! and the regional aggregate against hand-written SQL on the same database, as a ratio.
//!
//! Usage: bench_impact sqlite | bench_impact postgres://…/postgres   (see scripts/bench)
//! A PostgreSQL URL naming a database an earlier run generated (`…/bench_…`, which runs leave
//! in place) measures it again without generating. With `BENCH_ONLY=aggregate`, only the
//! library-against-SQL comparison runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/national.rs"]
mod national;

use std::time::{Duration, Instant};

use anchorfed::auth::{self, Caller, Keys};
use anchorfed::config::Settings;
use anchorfed::domain::{FinancialYear, Role};
use anchorfed::server::Application;

use entity::vocab::{AccessLevel, GranteeKind, MembershipStatus};
use entity::{institutions, memberships, networks};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use secrecy::SecretString;
use serde_json::{Value, json};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
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
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(SecretString::from(
            common::database_url(&arg, dir.path()).await,
        )),
        db_max_connections: 16,
        ..Settings::default()
    };
    let app = Application::build(settings.clone(), false).await.unwrap();
    let db = app.db().clone();
    let address = format!("http://127.0.0.1:{}/graphql", app.port());
    let analyst_address = address.clone();
    tokio::spawn(app.run_until_stopped());
    let started = Instant::now();
    let by_region = if common::reused(&arg) {
        // Generation inserts in id order: region r's networks are r * 10 + 1 ..= r * 10 + 10.
        (0..national::REGIONS as i64)
            .map(|r| {
                (1..=national::NETWORKS_PER_REGION as i64)
                    .map(|n| r * 10 + n)
                    .collect()
            })
            .collect()
    } else {
        national::generate(&db).await
    };
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    let count = |t: &str| format!("SELECT COUNT(*) FROM {t}");
    let mut sizes = vec![];
    for t in [
        "networks",
        "institutions",
        "memberships",
        "returns",
        "return_values",
    ] {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), count(t)))
            .await
            .unwrap()
            .unwrap();
        sizes.push(format!("{} {t}", row.try_get_by_index::<i64>(0).unwrap()));
    }
    println!(
        "{backend}: generated {} in {:.1} s",
        sizes.join(", "),
        started.elapsed().as_secs_f64()
    );

    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "disclosure") {
        disclosure(&db, backend).await;
        return;
    }

    // The reader: the admin of one network, as the policy stands (steward and fellow rules).
    let keys = Keys::load(&settings.auth, &settings.data_dir).unwrap();
    let token = common::token(&db, &keys, Role::NetworkAdmin, "r0-n0").await;
    let client = reqwest::Client::new();
    let query = "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { metric { code } year network { key } sector value contributors eligible coverage } } }";
    let all: Vec<String> = (0..national::REGIONS)
        .flat_map(|r| (0..national::NETWORKS_PER_REGION).map(move |n| format!("r{r}-n{n}")))
        .collect();
    let regional = json!({"region": "E47000100", "years": ["2022/23"], "metrics": ["procurement_spend_total", "headcount", "local_spend_share"]});
    let national = json!({"networkIds": all, "years": ["2022/23"], "metrics": ["procurement_spend_total", "headcount", "local_spend_share"]});
    let mix = [
        regional.clone(),
        json!({"region": "E47000100", "years": ["2020/21", "2021/22", "2022/23"], "metrics": ["procurement_spend_total", "procurement_spend_local"], "groupBy": ["NETWORK"]}),
        json!({"networkIds": all, "years": ["2022/23"], "metrics": ["headcount", "land_owned"], "groupBy": ["SECTOR"]}),
        json!({"region": "E47000100", "years": ["2022/23"], "metrics": ["emissions_scope1"], "groupBy": ["DISTRICT"]}),
    ];
    let bearer = token.clone();
    let call = move |input: Value| {
        let (client, address, token) = (client.clone(), address.clone(), bearer.clone());
        async move {
            let t = Instant::now();
            let r = client
                .post(&address)
                .bearer_auth(&token)
                .json(&json!({"query": query, "variables": {"i": input}}))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert!(v.get("errors").is_none(), "{v}");
            t.elapsed()
        }
    };
    let only_aggregate = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "aggregate");
    for (name, input) in [("regional", &regional), ("national", &national)] {
        if only_aggregate {
            break;
        }
        for _ in 0..10 {
            call(input.clone()).await;
        }
        let mut times = vec![];
        for _ in 0..200 {
            times.push(call(input.clone()).await);
        }
        times.sort();
        println!(
            "{backend}: impact {name}, 1 client: p50 {:.1} ms, p99 {:.1} ms (200 requests)",
            pct(&times, 0.5),
            pct(&times, 0.99)
        );
    }
    let started = Instant::now();
    let mut tasks = vec![];
    for c in 0..if only_aggregate { 0 } else { 16 } {
        let call = call.clone();
        let mix = mix.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = vec![];
            for k in 0..40 {
                t.push(call(mix[(c + k) % mix.len()].clone()).await);
            }
            t
        }));
    }
    let mut times = vec![];
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    times.sort();
    if !only_aggregate {
        println!(
            "{backend}: dashboard mix, 16 connections: {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms ({} requests)",
            times.len() as f64 / secs,
            pct(&times, 0.5),
            pct(&times, 0.99),
            times.len()
        );
    }

    // The regional aggregate in the library against hand-written SQL for the same cells.
    let noise = anchorfed::analytics::release::noise_key(&db).await.unwrap();
    let caller = Caller::Token(Box::new(
        auth::authenticate(&db, &keys, &token)
            .await
            .map_err(|e| e.detail())
            .unwrap(),
    ));
    let catalogue = anchorfed::catalogue::load(&db)
        .await
        .map_err(|e| e.message())
        .unwrap();
    let spec = anchorfed::analytics::impact::Spec {
        networks: by_region[0].clone(),
        years: vec!["2022/23".parse().unwrap()],
        metrics: vec![
            catalogue["procurement_spend_total"].clone(),
            catalogue["headcount"].clone(),
        ],
        ratio_parts: Default::default(),
        by_network: false,
        by_sector: false,
        by_district: false,
        as_of: anchorfed::domain::AsOf::Now,
        panel: false,
        lines: None,
    };
    let reader = by_region[0][0];
    let nets = by_region[0]
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let hand = format!(
        "WITH e AS (SELECT DISTINCT i.id AS inst FROM institutions i JOIN memberships m ON m.institution_id = i.id \
           WHERE m.network_id IN ({nets}) AND m.status = 'ACTIVE' AND m.from_date <= '2023-03-31' \
             AND (m.to_date IS NULL OR m.to_date >= '2023-03-31') AND i.year_end_month = 3 \
           UNION SELECT i.id FROM institutions i JOIN memberships m ON m.institution_id = i.id \
           WHERE m.network_id IN ({nets}) AND m.status = 'ACTIVE' AND m.from_date <= '2023-07-31' \
             AND (m.to_date IS NULL OR m.to_date >= '2023-07-31') AND i.year_end_month = 7) \
         SELECT v.metric_code, COUNT(DISTINCT r.institution_id) AS n, SUM(v.value) AS total, (SELECT COUNT(*) FROM e) AS eligible \
         FROM e JOIN returns r ON r.institution_id = e.inst JOIN institutions i ON i.id = r.institution_id \
         JOIN return_values v ON v.return_id = r.id \
         WHERE r.period = '2022/23' AND v.metric_code IN ('procurement_spend_total', 'headcount') AND v.breakdown = '' AND v.value IS NOT NULL \
           AND (i.steward_network_id = {reader} OR EXISTS (SELECT 1 FROM memberships f WHERE f.institution_id = i.id AND f.network_id = {reader} \
                AND f.status = 'ACTIVE' AND f.from_date <= r.period_end AND (f.to_date IS NULL OR f.to_date >= r.period_end))) \
           AND r.version = (SELECT MAX(r2.version) FROM returns r2 WHERE r2.institution_id = r.institution_id AND r2.period = r.period) \
         GROUP BY v.metric_code"
    );
    let mut lib = vec![];
    let mut sql = vec![];
    for k in 0..110 {
        let t = Instant::now();
        anchorfed::analytics::impact::run(&db, &caller, &spec, &noise)
            .await
            .map_err(|e| e.message())
            .unwrap();
        let a = t.elapsed();
        let t = Instant::now();
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            hand.clone(),
        ))
        .await
        .unwrap();
        let b = t.elapsed();
        if k >= 10 {
            lib.push(a);
            sql.push(b);
        }
    }
    lib.sort();
    sql.sort();
    println!(
        "{backend}: regional aggregate, library p50 {:.2} ms vs hand-written SQL p50 {:.2} ms: ratio {:.2}",
        pct(&lib, 0.5),
        pct(&sql, 0.5),
        pct(&lib, 0.5) / pct(&sql, 0.5)
    );

    // The sharing rules' cost: region 0's networks grant its analysts, half at DETAIL and
    // half at AGGREGATE (so disclosure control runs), every group, every year.
    for (k, &network) in by_region[0].iter().enumerate() {
        let level = if k < 5 {
            AccessLevel::Detail
        } else {
            AccessLevel::Aggregate
        };
        let region = Some("E47000100".to_owned());
        national::grant_every_group(&db, network, GranteeKind::Region, region, None, level).await;
    }
    let analyst = common::analyst_token(&db, &keys, "E47000100").await;
    let analyst_caller = Caller::Token(Box::new(
        auth::authenticate(&db, &keys, &analyst)
            .await
            .map_err(|e| e.detail())
            .unwrap(),
    ));
    let mut as_admin = vec![];
    let mut as_analyst = vec![];
    for k in 0..110 {
        let t = Instant::now();
        anchorfed::analytics::impact::run(&db, &caller, &spec, &noise)
            .await
            .map_err(|e| e.message())
            .unwrap();
        let a = t.elapsed();
        let t = Instant::now();
        let r = anchorfed::analytics::impact::run(&db, &analyst_caller, &spec, &noise)
            .await
            .map_err(|e| e.message())
            .unwrap();
        let b = t.elapsed();
        assert!(
            r.cells.iter().any(|c| c.aggregate_only > 0),
            "disclosure control ran"
        );
        if k >= 10 {
            as_admin.push(a);
            as_analyst.push(b);
        }
    }
    as_admin.sort();
    as_analyst.sort();
    println!(
        "{backend}: regional aggregate, library p50: admin (rules 1-2, {} contributors) {:.2} ms, \
         analyst with grants and disclosure control (rule 3) {:.2} ms",
        anchorfed::analytics::impact::run(&db, &caller, &spec, &noise)
            .await
            .map_err(|e| e.message())
            .unwrap()
            .cells
            .first()
            .map_or(0, |c| c.contributors),
        pct(&as_admin, 0.5),
        pct(&as_analyst, 0.5)
    );
    let analyst_call = {
        let client = reqwest::Client::new();
        let address = analyst_address;
        move |input: Value| {
            let (client, address, token) = (client.clone(), address.clone(), analyst.clone());
            async move {
                let t = Instant::now();
                let r = client
                    .post(&address)
                    .bearer_auth(&token)
                    .json(&json!({"query": query, "variables": {"i": input}}))
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                assert!(v.get("errors").is_none(), "{v}");
                t.elapsed()
            }
        }
    };
    let mut times = vec![];
    for k in 0..210 {
        let t = analyst_call(regional.clone()).await;
        if k >= 10 {
            times.push(t);
        }
    }
    times.sort();
    println!(
        "{backend}: impact regional as the analyst (grants, disclosure control, access log), 1 client: \
         p50 {:.1} ms, p99 {:.1} ms (200 requests)",
        pct(&times, 0.5),
        pct(&times, 0.99)
    );

    // The access log: what a read pays to hand its entry over, and what the writer sustains.
    let log = anchorfed::access_log::AccessLog::start(db.clone());
    let n = 20_000;
    let mut handover = Vec::with_capacity(n);
    let started = Instant::now();
    for k in 0..n {
        let t = Instant::now();
        log.record(anchorfed::access_log::Entry::new(
            &analyst_caller,
            "impact",
            vec![by_region[0][k % 10], by_region[0][(k + 1) % 10]],
            false,
        ))
        .await;
        handover.push(t.elapsed());
    }
    log.flush().await;
    let secs = started.elapsed().as_secs_f64();
    handover.sort();
    println!(
        "{backend}: access log: hand-over per read p50 {:.1} us, p99 {:.1} us; {n} entries written in {:.2} s ({:.0} entries/s)",
        pct(&handover, 0.5) * 1000.0,
        pct(&handover, 0.99) * 1000.0,
        secs,
        n as f64 / secs
    );
    disclosure(&db, backend).await;
}

/// Disclosure control on the national data, read by the public: every network grants the
/// public AGGREGATE (added once), then each region's total and network totals are set against
/// the exact totals from the tables, and the release step (published dimensions, the
/// differencing guard) is timed cold (every cell new to the guard) and warm.
async fn disclosure(db: &DatabaseConnection, backend: &str) {
    use anchorfed::analytics::impact::{self, Spec, Value2};
    use anchorfed::analytics::release::{self, Asked};
    use std::collections::{BTreeMap, BTreeSet};

    let all_networks = networks::Entity::find().all(db).await.unwrap();
    // Removed again at the end, so a rerun on the same database measures the same rules.
    let drop_public = "DELETE FROM grant_metric_groups WHERE grant_id IN \
        (SELECT id FROM grants WHERE grantee_kind = 'PUBLIC'); \
        DELETE FROM grants WHERE grantee_kind = 'PUBLIC'";
    for statement in drop_public.split("; ") {
        db.execute_unprepared(statement).await.unwrap();
    }
    for n in &all_networks {
        national::grant_every_group(
            db,
            n.id,
            GranteeKind::Public,
            None,
            None,
            AccessLevel::Aggregate,
        )
        .await;
    }
    db.execute_unprepared("DELETE FROM released_cells")
        .await
        .unwrap();

    // The truth, from the tables: members on the period's last day, the published values.
    let year: FinancialYear = "2022/23".parse().unwrap();
    let metric = "procurement_spend_total";
    let insts: BTreeMap<i64, i16> = institutions::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.year_end_month))
        .collect();
    let mut member_of: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for m in memberships::Entity::find().all(db).await.unwrap() {
        let end = year
            .end_date(u8::try_from(insts[&m.institution_id]).unwrap())
            .unwrap();
        if m.status == MembershipStatus::Active
            && m.from_date <= end
            && m.to_date.is_none_or(|t| t >= end)
        {
            member_of
                .entry(m.network_id)
                .or_default()
                .insert(m.institution_id);
        }
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT r.institution_id, v.value FROM returns r JOIN return_values v ON v.return_id = r.id \
                 WHERE r.period = '2022/23' AND v.metric_code = '{metric}' AND v.breakdown = '' \
                 AND v.value IS NOT NULL AND r.published_at IS NOT NULL AND r.version = \
                 (SELECT MAX(r2.version) FROM returns r2 WHERE r2.institution_id = r.institution_id \
                  AND r2.period = r.period AND r2.published_at IS NOT NULL)"
            ),
        ))
        .await
        .unwrap();
    let values: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index::<i64>(0).unwrap(),
                r.try_get_by_index::<i64>(1).unwrap(),
            )
        })
        .collect();
    let exact = |nets: &[i64]| -> (usize, i64) {
        let who: BTreeSet<i64> = nets
            .iter()
            .flat_map(|n| member_of.get(n).into_iter().flatten().copied())
            .filter(|i| values.contains_key(i))
            .collect();
        (who.len(), who.iter().map(|i| values[i]).sum())
    };

    let noise = release::noise_key(db).await.unwrap();
    let catalogue = anchorfed::catalogue::load(db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    let mut by_region: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for n in &all_networks {
        by_region.entry(n.region_id).or_default().push(n.id);
    }
    let anonymous = Caller::Anonymous;
    let asked = Asked {
        published_scope: true,
        past_as_of: false,
    };
    let mut deviations = vec![];
    let (mut shown, mut withheld, mut small) = (0, 0, 0);
    let (mut run_time, mut cold, mut warm) = (vec![], vec![], vec![]);
    for (by_sector, by_network) in [(false, false), (false, true), (true, true)] {
        for nets in by_region.values() {
            let spec = Spec {
                networks: nets.clone(),
                years: vec![year],
                metrics: vec![catalogue[metric].clone()],
                ratio_parts: Default::default(),
                by_network,
                by_sector,
                by_district: false,
                as_of: anchorfed::domain::AsOf::Now,
                panel: false,
                lines: None,
            };
            let t = Instant::now();
            let report = impact::run(db, &anonymous, &spec, &noise)
                .await
                .map_err(|e| e.message())
                .unwrap();
            run_time.push(t.elapsed());
            let mut cells = report.cells.clone();
            let t = Instant::now();
            release::release(db, &anonymous, &spec, &noise, asked, &mut cells)
                .await
                .map_err(|e| e.message())
                .unwrap();
            cold.push(t.elapsed());
            let mut again = report.cells;
            let t = Instant::now();
            release::release(db, &anonymous, &spec, &noise, asked, &mut again)
                .await
                .map_err(|e| e.message())
                .unwrap();
            warm.push(t.elapsed());
            if by_sector {
                continue;
            }
            for c in &cells {
                let scope = if c.key.network == 0 {
                    nets.clone()
                } else {
                    vec![c.key.network]
                };
                let (n, total) = exact(&scope);
                match &c.value {
                    Some(Value2::Sum(v)) if n >= 10 => {
                        shown += 1;
                        deviations.push((*v - total).abs() as f64 / total as f64 * 100.0);
                    }
                    Some(_) => small += 1,
                    None => withheld += 1,
                }
            }
        }
    }
    deviations.sort_by(f64::total_cmp);
    run_time.sort();
    cold.sort();
    warm.sort();
    let released: i64 = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM released_cells",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let q = |p: f64| deviations[((deviations.len() - 1) as f64 * p) as usize];
    println!(
        "{backend}: disclosure, public reader, {metric} 2022/23: {shown} region and network totals \
         of 10 or more contributors shown, {withheld} withheld, {small} smaller shown; distance from \
         the exact total: median {:.2}%, p90 {:.2}%, max {:.2}%, {} over 2%",
        q(0.5),
        q(0.9),
        q(1.0),
        deviations.iter().filter(|d| **d > 2.0).count()
    );
    println!(
        "{backend}: disclosure, release step (published dimensions and the guard) per answer of \
         {} region/network/sector answers: cold p50 {:.2} ms max {:.2} ms, warm p50 {:.2} ms \
         max {:.2} ms; the statement itself p50 {:.2} ms; {released} releases remembered",
        cold.len(),
        pct(&cold, 0.5),
        pct(&cold, 1.0),
        pct(&warm, 0.5),
        pct(&warm, 1.0),
        pct(&run_time, 0.5),
    );
    for statement in drop_public.split("; ") {
        db.execute_unprepared(statement).await.unwrap();
    }
}
