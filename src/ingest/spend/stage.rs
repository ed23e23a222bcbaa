//! Staging: a file's good lines go into `spend_staging`, tagged with their job, as they are
//! read. On PostgreSQL they stream through `COPY … FROM STDIN` on a connection of their own,
//! which also holds the job's advisory lock until the job ends (see `ingest::jobs`); the copy
//! is one statement, so a file refused or a process killed leaves no row of it. On SQLite they
//! go in by a prepared multi-row insert, committed every [`ROWS_PER_COMMIT`] rows so that
//! other writers get the database between commits; rows a stopped job staged are removed when
//! it is marked failed. Nobody reads the staging table but the switch.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::sqlx::{self, Connection, postgres::PgConnection};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::lines::{self, Ended, StagedLine};
use crate::error::ApiResult;
use crate::ingest::jobs::{self, LOCK_SPACE};
use crate::sql::Sql;

/// Rows of one SQLite insert statement (13 values each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 250;
/// Rows staged on SQLite between commits.
pub const ROWS_PER_COMMIT: usize = 50_000;
/// Batches of lines between the reader and the writer: the memory a file takes, at most.
const QUEUE: usize = 4;

const COLUMNS: &str = "job_id, line, supplier, supplier_id, postcode, given_district, amount, \
                       category, sme, vcse, sole_trader, anchor";

/// What keeps a job marked as running while it is: on PostgreSQL, the connection holding its
/// advisory lock. Released when the job has ended.
pub(super) enum Lease {
    Postgres(Box<PgConnection>),
    Process,
}

impl Lease {
    pub(super) async fn release(self) {
        if let Lease::Postgres(conn) = self
            && let Err(e) = conn.close().await
        {
            tracing::warn!(error = %e, "closing an import's connection failed; the server drops it");
        }
    }
}

/// Reads `input` on a thread of its own, staging its good lines as they come. Returns the
/// job's lease and how reading ended; the staged rows are complete when it ended `Whole`
/// without problems, and removed (or never written) otherwise.
pub(super) async fn stage(
    db: &DatabaseConnection,
    job: &str,
    input: impl Read + Send + 'static,
) -> ApiResult<(Lease, Ended)> {
    let read = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Vec<StagedLine>>(QUEUE);
    let counter = read.clone();
    let reader = tokio::task::spawn_blocking(move || {
        lines::read(input, &counter, |batch| tx.blocking_send(batch).is_ok())
    });
    let progress = Progress {
        db,
        job,
        read: &read,
        last: None,
    };
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let mut conn = lease(db, job).await?;
            let ended = copy_in(&mut conn, rx, reader, progress).await?;
            Ok((Lease::Postgres(Box::new(conn)), ended))
        }
        _ => {
            let ended = insert(db, job, rx, reader, progress).await?;
            Ok((Lease::Process, ended))
        }
    }
}

/// A connection of the import's own, out of the pool (it is closed, never returned, so a copy
/// cut short cannot reach another request), without the pool's statement timeout, holding the
/// job's advisory lock.
async fn lease(db: &DatabaseConnection, job: &str) -> ApiResult<PgConnection> {
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .context("Failed to get a connection for an import")?
        .detach();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await
        .context("Failed to lift the statement timeout for an import")?;
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(LOCK_SPACE)
        .bind(job)
        .execute(&mut conn)
        .await
        .context("Failed to take an import job's lock")?;
    Ok(conn)
}

/// Records the rows read so far, at the first batch and then at most once a second.
struct Progress<'a> {
    db: &'a DatabaseConnection,
    job: &'a str,
    read: &'a AtomicU64,
    last: Option<Instant>,
}

impl Progress<'_> {
    async fn tick(&mut self) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        let n = self.read.load(Ordering::Relaxed);
        if let Err(e) = jobs::progress(self.db, self.job, n).await {
            tracing::warn!(import.job = %self.job, error = ?e, "could not record an import's progress");
        }
    }
}

/// The reader's ending, once the lines stopped coming.
async fn ended(reader: JoinHandle<Ended>) -> ApiResult<Ended> {
    Ok(reader
        .await
        .context("The CSV reader of an import stopped")?)
}

async fn copy_in(
    conn: &mut PgConnection,
    mut rx: mpsc::Receiver<Vec<StagedLine>>,
    reader: JoinHandle<Ended>,
    mut progress: Progress<'_>,
) -> ApiResult<Ended> {
    let statement = format!("COPY spend_staging ({COLUMNS}) FROM STDIN (FORMAT csv)");
    let mut copy = conn
        .copy_in_raw(&statement)
        .await
        .context("Failed to start copying an import's rows")?;
    let mut buf = Vec::with_capacity(256 << 10);
    while let Some(batch) = rx.recv().await {
        buf.clear();
        encode(&mut buf, progress.job, &batch)?;
        copy.send(buf.as_slice())
            .await
            .context("Failed to copy an import's rows")?;
        progress.tick().await;
    }
    let ended = ended(reader).await?;
    match &ended {
        Ended::Whole(s) if s.accepted() => {
            copy.finish()
                .await
                .context("Failed to finish copying an import's rows")?;
        }
        _ => {
            copy.abort("the file was refused")
                .await
                .context("Failed to abandon copying a refused file")?;
        }
    }
    Ok(ended)
}

/// Lines as `COPY`'s CSV: an unquoted empty field is NULL, booleans are `t` and `f`.
fn encode(buf: &mut Vec<u8>, job: &str, batch: &[StagedLine]) -> ApiResult<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(buf);
    let flag = |b: bool| if b { "t" } else { "f" };
    for l in batch {
        let (line, amount) = (l.line.to_string(), l.amount.to_string());
        w.write_record([
            job,
            &line,
            &l.supplier,
            &l.supplier_id,
            l.postcode.as_deref().unwrap_or(""),
            l.district.as_deref().unwrap_or(""),
            &amount,
            l.category.as_deref().unwrap_or(""),
            flag(l.sme),
            flag(l.vcse),
            flag(l.sole_trader),
            flag(l.anchor),
        ])
        .context("Failed to encode an import's rows")?;
    }
    w.flush().context("Failed to encode an import's rows")?;
    Ok(())
}

async fn insert(
    db: &DatabaseConnection,
    job: &str,
    mut rx: mpsc::Receiver<Vec<StagedLine>>,
    reader: JoinHandle<Ended>,
    mut progress: Progress<'_>,
) -> ApiResult<Ended> {
    let mut txn = crate::db::begin_write(db)
        .await
        .context("Failed to start staging an import")?;
    let mut pending = 0;
    while let Some(batch) = rx.recv().await {
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            txn.execute_raw(insert_statement(job, chunk))
                .await
                .context("Failed to stage an import's rows")?;
        }
        pending += batch.len();
        if pending >= ROWS_PER_COMMIT {
            txn.commit()
                .await
                .context("Failed to commit an import's staged rows")?;
            // Between transactions: SQLite has one writer, and the staging holds it.
            progress.tick().await;
            txn = crate::db::begin_write(db)
                .await
                .context("Failed to go on staging an import")?;
            pending = 0;
        }
    }
    txn.commit()
        .await
        .context("Failed to commit an import's staged rows")?;
    let ended = ended(reader).await?;
    if !matches!(&ended, Ended::Whole(s) if s.accepted()) {
        unstage(db, job).await?;
    }
    Ok(ended)
}

/// One multi-row insert: the same text for every full chunk, so it is prepared once.
fn insert_statement(job: &str, rows: &[StagedLine]) -> Statement {
    let mut sql = format!("INSERT INTO spend_staging ({COLUMNS}) VALUES ");
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(rows.len() * 12);
    for (n, l) in rows.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        values.extend([
            job.into(),
            l.line.into(),
            l.supplier.clone().into(),
            l.supplier_id.clone().into(),
            l.postcode.clone().into(),
            l.district.clone().into(),
            l.amount.into(),
            l.category.clone().into(),
            l.sme.into(),
            l.vcse.into(),
            l.sole_trader.into(),
            l.anchor.into(),
        ]);
    }
    Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values)
}

/// Removes what a job staged.
pub(super) async fn unstage<C: ConnectionTrait>(db: &C, job: &str) -> ApiResult<()> {
    db.execute_raw(
        Sql::format(
            "DELETE FROM spend_staging WHERE job_id = {}",
            [Sql::value(job)],
        )
        .statement(db.get_database_backend()),
    )
    .await
    .context("Failed to remove an import's staged rows")?;
    Ok(())
}
