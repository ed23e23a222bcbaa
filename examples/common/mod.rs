//! What the benchmarks share: a fresh database to run against, and a token for it.

use anchorfed::auth::{self, IssueRequest, Keys};
use anchorfed::domain::{IdOrKey, Role};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// A fresh database: a SQLite file in `dir`, or a new database on the PostgreSQL server at
/// `arg` (`postgres://…/postgres`).
pub async fn database_url(arg: &str, dir: &std::path::Path) -> String {
    if arg == "sqlite" {
        return format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display());
    }
    if reused(arg) {
        return arg.to_owned();
    }
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(arg).await.expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the benchmark database");
    format!(
        "{}/{name}",
        arg.rsplit_once('/').map(|(b, _)| b).unwrap_or(arg)
    )
}

/// Issues a token for `role` in `network`, as the console would.
pub async fn token(db: &DatabaseConnection, keys: &Keys, role: Role, network: &str) -> String {
    issue(db, keys, role, Some(network), None).await
}

/// Issues a region analyst's token.
#[allow(
    dead_code,
    reason = "shared by the benchmarks; only bench_impact reads as an analyst"
)]
pub async fn analyst_token(db: &DatabaseConnection, keys: &Keys, region: &str) -> String {
    issue(db, keys, Role::RegionAnalyst, None, Some(region)).await
}

async fn issue(
    db: &DatabaseConnection,
    keys: &Keys,
    role: Role,
    network: Option<&str>,
    region: Option<&str>,
) -> String {
    let resolved = IssueRequest {
        role,
        network: network.map(|n| IdOrKey::parse(n).expect("a network key")),
        region: region.map(|r| anchorfed::domain::GssCode::parse(r).expect("a GSS code")),
        organisation: None,
        scopes: None,
        ttl_seconds: None,
        subject: Some("bench".into()),
        issued_by: "bench".into(),
    }
    .resolve(db, keys)
    .await
    .unwrap_or_else(|e| panic!("{}", e.message()));
    auth::issue(db, keys, resolved)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()))
        .token
}

/// Whether `arg` names a database an earlier run generated (`…/bench_…`), to measure again
/// without generating.
pub fn reused(arg: &str) -> bool {
    arg.rsplit('/')
        .next()
        .is_some_and(|db| db.starts_with("bench_"))
}

/// A small deterministic generator (xorshift): the benchmarks' data is the same on every run.
#[allow(dead_code, reason = "not every benchmark draws data")]
pub struct Rng(pub u64);
#[allow(dead_code, reason = "not every benchmark draws data")]
impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
