//! Connecting to the database (embedded SQLite or PostgreSQL) and migrating it.

pub mod single;

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};

use crate::telemetry::Metrics;

/// Opens a pool on `url`, counting every statement into `metrics`. For SQLite the file's
/// directory is created and the journal switched to WAL, so readers never wait for a writer.
pub async fn connect(
    url: &SecretString,
    max_connections: u32,
    metrics: Option<&Metrics>,
) -> anyhow::Result<DatabaseConnection> {
    connect_limited(url, max_connections, metrics, None).await
}

/// `connect`, with every statement on PostgreSQL ended by the server after
/// `statement_timeout` (the server's: a statement whose request was dropped stops too). On
/// SQLite a statement runs to its end.
pub async fn connect_limited(
    url: &SecretString,
    max_connections: u32,
    metrics: Option<&Metrics>,
    statement_timeout: Option<Duration>,
) -> anyhow::Result<DatabaseConnection> {
    let raw = url.expose_secret();
    if let Some(path) = sqlite_path(raw)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create the data directory {}", dir.display()))?;
    }
    let mut opts = ConnectOptions::new(raw.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // Every statement here is prepared, and none has a best plan that depends on its
        // parameters' values (ids, keys, dates, the reader's network): plan each once per
        // connection instead of on every execution. For the impact statement, planning cost
        // as much as running it (BENCHMARKS.md).
        .map_sqlx_postgres_opts(move |o| {
            let o = o.options([("plan_cache_mode", "force_generic_plan")]);
            match statement_timeout {
                Some(t) => o.options([("statement_timeout", format!("{}ms", t.as_millis()))]),
                None => o,
            }
        });
    let mut db = Database::connect(opts)
        .await
        .context("Failed to connect to the database (check database_url / DATABASE_URL)")?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .context("Failed to switch SQLite to WAL mode")?;
    }
    if let Some(m) = metrics {
        let m = m.clone();
        db.set_metric_callback(move |info| {
            m.record_statement(info.elapsed.as_secs_f64());
            // Off by default; `log_level = "info,anchorfed::sql=debug"` shows each statement
            // with its time, for finding where a request's time goes.
            tracing::debug!(
                target: "anchorfed::sql",
                micros = u64::try_from(info.elapsed.as_micros()).unwrap_or(u64::MAX),
                failed = info.failed,
                sql = %info.statement.sql,
            );
        });
    }
    Ok(db)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("Failed to apply database migrations")
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (path != ":memory:" && !path.is_empty()).then_some(path)
}

/// Begins a transaction that writes. On SQLite it takes the write lock at `BEGIN` (waiting up
/// to the busy timeout for another writer), rather than at its first write: a transaction that
/// read first and then found another connection had committed since could not upgrade, and
/// failed at once with "database is locked". PostgreSQL ignores the mode.
pub async fn begin_write(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::TransactionTrait as _;
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_path("sqlite://data/a.sqlite?mode=rwc"),
            Some("data/a.sqlite")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
