use std::sync::Once;

use anchorfed::auth::{self, IssueRequest, Keys};
use anchorfed::config::Settings;
use anchorfed::domain::{GssCode, IdOrKey, Role};
use anchorfed::server::Application;
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Runs a test function once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )+};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    /// `/metrics`'s own address, when `metrics.bind` gave it one.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub db: sea_orm::DatabaseConnection,
    pub handle: actix_web::dev::ServerHandle,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub settings: Settings,
    pub keys: Keys,
    _dir: tempfile::TempDir,
}

static TRACING: Once = Once::new();

/// A fresh, empty database of the given kind: a SQLite file in `dir`, or a new PostgreSQL
/// database on the test server.
pub async fn fresh_database_url(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("test.sqlite").display()),
        Backend::Postgres => {
            let admin = std::env::var("PG_TEST_URL").expect(
                "PG_TEST_URL is not set: run the tests with scripts/test, which starts \
                 a throwaway PostgreSQL, or point it at a server you own (postgres://…/postgres)",
            );
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

pub fn test_settings(database_url: String, dir: &std::path::Path) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        database_url: Some(SecretString::from(database_url)),
        db_max_connections: 4,
        // Tests send many requests from one address at once; the tests of rate limits
        // switch them on with budgets of their own.
        rate_limit: anchorfed::config::RateLimits {
            enabled: false,
            ..Default::default()
        },
        metrics: anchorfed::config::MetricsSettings {
            enabled: true,
            bind: None,
            token: Some(SecretString::from(METRICS_TOKEN)),
        },
        ..Settings::default()
    }
}

/// The bearer token test servers serve `/metrics` behind.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// A server on the demo directory with the demo's synthetic returns (2020/21 to 2022/23).
pub async fn with_demo_returns(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    anchorfed::ingest::demo::load(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    app
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, true, |_| {}).await
}

pub async fn spawn_with(
    backend: Backend,
    demo: bool,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            anchorfed::telemetry::init(&Settings::default());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let mut settings = test_settings(url, dir.path());
    tweak(&mut settings);
    // The demo directory, without the synthetic returns (tests that want those load them).
    let app = Application::build(settings.clone(), false)
        .await
        .expect("build the app");
    if demo {
        anchorfed::directory::demo::load(app.db())
            .await
            .expect("load the demo directory");
    }
    let keys = Keys::load(&settings.auth, &settings.data_dir).expect("load the same keys");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let db = app.db().clone();
    let handle = app.handle();
    let running = Some(tokio::spawn(app.run_until_stopped()));
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::new(),
        db,
        handle,
        running,
        settings,
        keys,
        _dir: dir,
    }
}

/// What a test token is for: a role and its anchor.
pub enum As<'a> {
    Operator,
    Admin(&'a str),
    Submitter(&'a str),
    Analyst(&'a str),
    Researcher(&'a str),
}

impl TestApp {
    /// Issues a token straight through the library (as the CLI does).
    pub async fn token(&self, who: As<'_>, scopes: &str) -> String {
        self.issue(who, scopes, None).await.0
    }

    /// Issues a token and returns it with its id.
    pub async fn issue(&self, who: As<'_>, scopes: &str, ttl: Option<u64>) -> (String, String) {
        let key = |k: &str| Some(IdOrKey::parse(k).unwrap());
        let (role, network, region, organisation) = match who {
            As::Operator => (Role::Operator, None, None, None),
            As::Admin(n) => (Role::NetworkAdmin, key(n), None, None),
            As::Submitter(n) => (Role::NetworkSubmitter, key(n), None, None),
            As::Analyst(r) => (
                Role::RegionAnalyst,
                None,
                Some(GssCode::parse(r).unwrap()),
                None,
            ),
            As::Researcher(o) => (Role::Researcher, None, None, key(o)),
        };
        let resolved = IssueRequest {
            role,
            network,
            region,
            organisation,
            scopes: (!scopes.is_empty()).then(|| scopes.to_owned()),
            ttl_seconds: ttl,
            subject: None,
            issued_by: "test".into(),
        }
        .resolve(&self.db, &self.keys)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
        let issued = auth::issue(&self.db, &self.keys, resolved)
            .await
            .unwrap_or_else(|e| panic!("{}", e.message()));
        (issued.token, issued.row.id)
    }

    /// POSTs a query with a bearer token.
    pub async fn post_as(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// A query with a token that must succeed; returns `data`.
    pub async fn query_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post_as(token, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// The first error code of a query with a token that must fail.
    pub async fn error_as(&self, token: &str, query: &str, variables: Value) -> String {
        let (_, body) = self.post_as(token, query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {body}"))
            .to_owned()
    }

    /// POSTs a query and returns the status and JSON body.
    pub async fn post_graphql(&self, query: &str, variables: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/graphql", self.address))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// POSTs a query that must succeed and returns its `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post_graphql(query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// The first error's `extensions.code` of a query that must fail.
    pub async fn error_code(&self, query: &str, variables: Value) -> (String, Value) {
        let (_, body) = self.post_graphql(query, variables).await;
        let code = body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {body}"))
            .to_owned();
        (code, body)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// The server's `/metrics` text, fetched with the metrics token.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.address))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    }

    /// The number of SQL statements the server has run so far, from its own metrics.
    pub async fn statements(&self) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix("anchorfed_db_statements_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no statement counter in /metrics:\n{text}"))
    }
}

impl TestApp {
    /// Stops the server gracefully, as SIGTERM does, and waits until it has finished
    /// (the access log flushed, the pool closed). `db` is closed afterwards.
    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop without waiting; the runtime ends with the test.
        drop(handle.stop(false));
    }
}

/// Members of `network` on 2023-03-31 (the demo's 2022/23 year-end), with their stewards.
pub async fn members_with_stewards(app: &TestApp, network: &str) -> Vec<(String, String)> {
    let d = app
        .query(
            "query($n: ID!) { network(id: $n) { members(first: 100, on: \"2023-03-31\") { edges { node { key steward { key } } } } } }",
            json!({"n": network}),
        )
        .await;
    d["network"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["key"].as_str().unwrap().to_owned(),
                e["node"]["steward"]["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
