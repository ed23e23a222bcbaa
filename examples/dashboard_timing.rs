//! The dashboard's first render on the demo data and the size of its assets, for
//! BENCHMARKS.md (not a test: timings never live in the tests).
//!
//! `cargo run --release --example dashboard_timing [-- LOADS]` starts the server as
//! `serve --demo` does (SQLite in a temporary directory, the demo directory, synthetic
//! returns and public grants), fetches every embedded asset gzip-compressed and counts its
//! bytes, then opens `/dashboard` in headless Chromium LOADS times (default 10) in one fresh
//! profile (the first load is the cold one), and reads how long after navigation the page had every
//! figure, chart and table drawn (`document.body.dataset.renderMs`, `performance.now()` when
//! the last section rendered). Needs Debian's chromium and chromium-driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)]
mod driver;

use anchorfed::config::Settings;
use anchorfed::server::Application;
use secrecy::SecretString;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let loads: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("LOADS is a number"))
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(SecretString::from(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("anchorfed.sqlite").display()
        ))),
        ..Settings::default()
    };
    let app = Application::build(settings, true).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    println!("machine: {}", machine());
    let http = reqwest::Client::new();
    let (mut raw, mut gz) = (0, 0);
    for (path, size) in anchorfed::dashboard::assets() {
        let r = http
            .get(format!("{base}{path}"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let encoded = r.headers().get("content-encoding").cloned();
        let bytes = r.bytes().await.unwrap().len();
        println!(
            "asset {path}: {size} bytes, {bytes} bytes sent ({})",
            encoded
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
        );
        raw += size;
        gz += bytes;
    }
    println!(
        "assets: {} files, {raw} bytes ({:.0} KiB), {gz} bytes gzip-compressed as served ({:.0} KiB)",
        anchorfed::dashboard::assets().count(),
        raw as f64 / 1024.0,
        gz as f64 / 1024.0
    );

    let b = driver::Browser::start(1280, 2700).await;
    let mut times = Vec::new();
    for i in 0..loads {
        // Away and back, so each load starts from nothing of the previous page.
        if i > 0 {
            b.client.goto("about:blank").await.unwrap();
        }
        b.client.goto(&format!("{base}/dashboard")).await.unwrap();
        b.wait_ready("true").await;
        let ms: f64 = b
            .js("return Number(document.body.dataset.renderMs)")
            .await
            .as_f64()
            .unwrap();
        times.push(ms);
    }
    b.close().await;
    handle.stop(true).await;
    let first = times[0];
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "first render (navigation start to every section drawn), {loads} loads: first {first:.0} ms, median {:.0} ms, max {:.0} ms",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores, {model}")
}
