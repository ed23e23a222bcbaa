//! Staging (SQLite): a file's good lines go into `spend_staging`, tagged with their job, as
//! they are read, by a prepared multi-row insert committed every [`ROWS_PER_COMMIT`] rows so
//! that other writers get the database between commits; rows a stopped job staged are removed
//! when it is marked failed. Nobody reads the staging table but the switch. (PostgreSQL needs
//! no staging: its lines are copied straight in, inside the switch's transaction; see
//! `super::copy`.) What both share is here too: the reader on its thread and progress.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::lines::{self, Ended, StagedLine};
use crate::error::ApiResult;
use crate::ingest::jobs;
use crate::sql::Sql;

/// Rows of one SQLite insert statement (13 values each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 250;
/// Rows staged on SQLite between commits.
pub const ROWS_PER_COMMIT: usize = 50_000;
/// Batches of lines between the reader and the writer: the memory a file takes, at most.
const QUEUE: usize = 4;

const COLUMNS: &str = "job_id, line, supplier, supplier_id, postcode, given_district, amount, \
                       category, sme, vcse, sole_trader, anchor";

/// The file read on a thread of its own, its checked lines coming in batches of
/// [`lines::BATCH`], at most [`QUEUE`] batches ahead of whoever takes them; `read` counts the
/// lines as they pass. Dropping the receiver stops the reader (it ends `Abandoned`).
pub(super) fn spawn_reader(
    input: impl Read + Send + 'static,
    read: Arc<AtomicU64>,
) -> (mpsc::Receiver<Vec<StagedLine>>, JoinHandle<Ended>) {
    let (tx, rx) = mpsc::channel::<Vec<StagedLine>>(QUEUE);
    let reader = tokio::task::spawn_blocking(move || {
        lines::read(input, &read, |batch| tx.blocking_send(batch).is_ok())
    });
    (rx, reader)
}

/// Reads `input` on a thread of its own, staging its good lines as they come (SQLite).
/// Returns how reading ended; the staged rows are complete when it ended `Whole` without
/// problems, and removed otherwise.
pub(super) async fn stage(
    db: &DatabaseConnection,
    job: &str,
    input: impl Read + Send + 'static,
) -> ApiResult<Ended> {
    let read = Arc::new(AtomicU64::new(0));
    let (rx, reader) = spawn_reader(input, read.clone());
    let progress = Progress::new(db, job, &read);
    insert(db, job, rx, reader, progress).await
}

/// Records the rows read so far, at the first batch and then at most once a second.
pub(super) struct Progress<'a> {
    db: &'a DatabaseConnection,
    job: &'a str,
    read: &'a AtomicU64,
    last: Option<Instant>,
}

impl<'a> Progress<'a> {
    pub(super) fn new(db: &'a DatabaseConnection, job: &'a str, read: &'a AtomicU64) -> Self {
        Self {
            db,
            job,
            read,
            last: None,
        }
    }

    pub(super) async fn tick(&mut self) {
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
pub(super) async fn ended(reader: JoinHandle<Ended>) -> ApiResult<Ended> {
    Ok(reader
        .await
        .context("The CSV reader of an import stopped")?)
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
