//! Throughput of returns ingestion: `submitReturns` over HTTP (returns and values per second,
//! one client and four) and CSV import (rows per second). Run with `scripts/bench`, which
//! builds it in release mode and runs it against SQLite and a throwaway PostgreSQL.
//!
//! Usage: bench_returns sqlite | bench_returns postgres://…/postgres

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use anchorfed::auth::Keys;
use anchorfed::config::Settings;
use anchorfed::domain::{IdOrKey, Role};
use anchorfed::server::Application;
use secrecy::SecretString;
use serde_json::{Value, json};

const PERIODS: [&str; 4] = ["2020/21", "2021/22", "2022/23", "2023/24"];

fn a_return(inst: &str, period: &str, n: u64) -> Value {
    let total = 1_000_000 + n * 37;
    json!({"institution": inst, "period": period, "basis": "bench", "values": [
        {"metric": "procurement_spend_total", "value": format!("{total}.17")},
        {"metric": "procurement_spend_local", "value": format!("{}.05", total / 4)},
        {"metric": "procurement_spend_region", "value": format!("{}.99", total / 3)},
        {"metric": "spend_sme", "value": format!("{}.00", total / 5)},
        {"metric": "spend_vcse", "value": format!("{}.00", total / 50)},
        {"metric": "headcount", "value": "1200"},
        {"metric": "fte", "value": "1031.50"},
        {"metric": "apprentices", "value": "31"},
        {"metric": "living_wage_employees", "value": "1100"},
        {"metric": "employees_by_residence", "value": "640", "breakdown": "district:E08000028"},
        {"metric": "employees_by_residence", "value": "200", "breakdown": "imd_decile:1"},
        {"metric": "employees_by_residence", "value": "180", "breakdown": "imd_decile:2"},
        {"metric": "land_owned", "value": "12.75"},
        {"metric": "emissions_scope1", "value": "912000", "method": "DESNZ 2023 factors"},
        {"metric": "emissions_scope2", "value": "641000", "method": "DESNZ 2023 factors, location-based"},
    ]})
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "sqlite".into());
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(&arg, dir.path()).await;
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(SecretString::from(url)),
        ..Settings::default()
    };
    let app = Application::build(settings.clone(), false).await.unwrap();
    anchorfed::directory::demo::load(app.db()).await.unwrap();
    let db = app.db().clone();
    let address = format!("http://127.0.0.1:{}/graphql", app.port());
    tokio::spawn(app.run_until_stopped());
    let keys = Keys::load(&settings.auth, &settings.data_dir).unwrap();
    let token = common::token(&db, &keys, Role::NetworkSubmitter, "sandwell").await;
    let stewarded: Vec<String> = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let net = anchorfed::directory::network(&db, &IdOrKey::parse("sandwell").unwrap())
            .await
            .map_err(|e| e.message())
            .unwrap()
            .unwrap();
        entity::institutions::Entity::find()
            .filter(entity::institutions::Column::StewardNetworkId.eq(net.id))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect()
    };
    let backend = if arg == "sqlite" {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let client = reqwest::Client::new();
    let query = "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { replayed returns { id } } }";
    let batch = |k: String| {
        let mut returns = vec![];
        for (n, inst) in stewarded.iter().enumerate() {
            for p in PERIODS {
                returns.push(a_return(inst, p, n as u64));
            }
        }
        json!({"query": query, "variables": {"i": {"networkId": "sandwell", "idempotencyKey": k, "returns": returns}}})
    };
    let per_batch = stewarded.len() * PERIODS.len();

    // Warm up, then one client.
    let post = move |body: Value| {
        let client = client.clone();
        let address = address.clone();
        let token = token.clone();
        async move {
            let r = client
                .post(&address)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert!(v.get("errors").is_none(), "{v}");
        }
    };
    post(batch("warm".into())).await;
    let batches = 30;
    let started = Instant::now();
    for b in 0..batches {
        post(batch(format!("one-{b}"))).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let returns = (batches * per_batch) as f64;
    println!(
        "{backend}: submitReturns, 1 client: {:.0} returns/s ({:.0} values/s; {batches} batches of {per_batch} returns x 15 values, {:.1} ms a batch)",
        returns / secs,
        returns * 15.0 / secs,
        secs * 1000.0 / batches as f64
    );
    let started = Instant::now();
    let mut tasks = vec![];
    for c in 0..4 {
        let post = post.clone();
        let bodies: Vec<Value> = (0..batches / 2)
            .map(|b| batch(format!("four-{c}-{b}")))
            .collect();
        tasks.push(tokio::spawn(async move {
            for body in bodies {
                post(body).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let returns = (4 * (batches / 2) * per_batch) as f64;
    println!(
        "{backend}: submitReturns, 4 clients: {:.0} returns/s ({:.0} values/s)",
        returns / secs,
        returns * 15.0 / secs
    );

    // CSV import: every stewarded institution and period, 2,000 values a return.
    let file = dir.path().join("bench.csv");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "institution,period,metric,value,breakdown,method").unwrap();
        for inst in &stewarded {
            for p in PERIODS {
                writeln!(w, "{inst},{p},headcount,5000000,,").unwrap();
                for d in 1..2000 {
                    writeln!(
                        w,
                        "{inst},{p},employees_by_residence,{},district:E08{:06},",
                        d % 97,
                        d
                    )
                    .unwrap();
                }
            }
        }
    }
    let rows = stewarded.len() * PERIODS.len() * 2000;
    let started = Instant::now();
    let report = anchorfed::cli::import_returns(
        &settings,
        "sandwell",
        &file,
        Some("bench-csv".into()),
        false,
    )
    .await
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(matches!(
        report,
        anchorfed::cli::ImportReport::Written { .. }
    ));
    println!(
        "{backend}: CSV import: {:.0} rows/s ({rows} rows in {:.2} s, one transaction)",
        rows as f64 / secs,
        secs
    );
}
