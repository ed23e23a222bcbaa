//! The binary as a newcomer runs it: `serve` on a fresh directory, settings from the
//! environment, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn anchorfed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_anchorfed"));
    c.env_remove("DATABASE_URL").env_remove("ANCHORFED_CONFIG");
    c
}

#[test]
fn bad_settings_stop_the_service_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = anchorfed()
        .current_dir(dir.path())
        .env("ANCHORFED_LIMITS__DEPTH", "0")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.depth"), "{err}");

    let out = anchorfed()
        .current_dir(dir.path())
        .env("ANCHORFED_BIND", "not-an-address")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("bind")
    );

    let out = anchorfed()
        .current_dir(dir.path())
        .env("DATABASE_URL", "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));

    let out = anchorfed()
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn settings_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("anchorfed.toml"), "[limits]\naliases = 0\n").unwrap();
    let out = anchorfed()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.aliases"));
}

struct Served {
    child: std::process::Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, demo: bool) -> Served {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
    if demo {
        args.push("--demo");
    }
    let mut child = anchorfed()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Served { child, address }
}

async fn viewer_status(address: &str, token: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{address}graphql"))
        .bearer_auth(token)
        .json(&serde_json::json!({"query": "{ viewer { role network { key } scopes } }"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[test]
fn token_issue_and_revoke_at_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);
    let out = anchorfed()
        .current_dir(dir.path())
        .args([
            "token",
            "issue",
            "--role",
            "NETWORK_ADMIN",
            "--network",
            "black-country",
            "--scope",
            "metrics:spend",
            "--ttl",
            "2h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let note = String::from_utf8(out.stderr).unwrap();
    let jti = note
        .lines()
        .find(|l| l.starts_with("token "))
        .unwrap_or_else(|| panic!("no token line in {note}"))
        .split_whitespace()
        .nth(1)
        .map(|s| s.trim_end_matches(','))
        .unwrap()
        .to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, body) = viewer_status(&server.address, &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["viewer"]["network"]["key"], "black-country");
        assert_eq!(
            body["data"]["viewer"]["scopes"],
            serde_json::json!(["metrics:spend"])
        );
    });
    let out = anchorfed()
        .current_dir(dir.path())
        .args(["token", "revoke", &jti])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(async {
        let (status, _) = viewer_status(&server.address, &token).await;
        assert_eq!(status, 401, "a revoked token stops on the next request");
    });

    // Scopes outside the grammar, and roles without their anchor, are refused at issue.
    let out = anchorfed()
        .current_dir(dir.path())
        .args([
            "token",
            "issue",
            "--role",
            "REGION_ANALYST",
            "--region",
            "E47000007",
            "--scope",
            "admin:everything",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope `admin:everything`"));
    let out = anchorfed()
        .current_dir(dir.path())
        .args(["token", "issue", "--role", "RESEARCHER"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--organisation"));
}

#[test]
fn serve_on_a_fresh_directory_then_stop_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path(), true);
    let address = served.address.clone();
    let child = &mut served.child;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        assert_eq!(
            c.get(format!("{address}healthz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
        let body: serde_json::Value = c
            .post(format!("{address}graphql"))
            .json(&serde_json::json!({"query": "{ networks(first: 10) { totalCount } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"]["networks"]["totalCount"], 5);
        // The demo's public AGGREGATE grants answer an anonymous regional query, under
        // disclosure control, and reveal no returns.
        let body: serde_json::Value = c
            .post(format!("{address}graphql"))
            .json(&serde_json::json!({"query": "{ impact(input: {region: \"E47000007\", years: [\"2022/23\"], \
                metrics: [\"procurement_spend_total\"]}) { withheldNetworks { key } cells { value suppressed contributors eligible } } \
                returns(first: 10) { totalCount } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cell = &body["data"]["impact"]["cells"][0];
        assert!(cell["contributors"].as_i64().unwrap() >= 3, "{body}");
        assert_eq!(cell["suppressed"], false, "{body}");
        assert!(cell["value"].is_string(), "{body}");
        assert_eq!(body["data"]["impact"]["withheldNetworks"], serde_json::json!([]));
        assert_eq!(body["data"]["returns"]["totalCount"], 0, "{body}");
    });
    // The embedded database is a SQLite file in ./data, in WAL mode.
    assert!(dir.path().join("data/anchorfed.sqlite").exists());
    assert!(dir.path().join("data/anchorfed.sqlite-wal").exists());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "a SIGTERM stop must exit cleanly, got {s}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn documents_are_registered_at_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("regions.graphql");
    std::fs::write(&doc, "query Regions { regions { code } }").unwrap();
    let registry = dir.path().join("trusted.json");
    let out = anchorfed()
        .current_dir(dir.path())
        .env("ANCHORFED_TRUSTED_DOCUMENTS__FILE", &registry)
        .args(["documents", "add"])
        .arg(&doc)
        .args(["--id", "dashboard-regions"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "dashboard-regions"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&registry).unwrap()).unwrap();
    assert_eq!(
        saved["dashboard-regions"],
        "query Regions { regions { code } }"
    );
    // Without a registry configured, the command says which setting to give.
    let out = anchorfed()
        .current_dir(dir.path())
        .args(["documents", "add"])
        .arg(&doc)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted_documents.file"));
}
