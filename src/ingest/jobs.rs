//! Import jobs: a file import's row, from its start to its end. A job is created `RUNNING`
//! before the first byte of its file is read, counts its rows as it goes, and ends
//! `SUCCEEDED` (in the transaction that switches its rows in) or `FAILED` (with its problems,
//! or why it stopped). A job whose process died leaves `RUNNING` behind; [`reap`] marks it
//! failed and removes whatever it staged:
//!
//! - on PostgreSQL a running job holds a session advisory lock on the connection that streams
//!   its rows, so a job whose lock can be taken has no process behind it, whichever node ran
//!   it; [`reap`] runs at start-up, and reading a running job checks it again ([`reaped`]);
//! - on SQLite (one node, which owns the file) every job left running at start-up is dead.

use anyhow::Context;
use chrono::Utc;
use entity::import_jobs;
use entity::vocab::{ImportKind, ImportState};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, FromQueryResult,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiResult;
use crate::sql::Sql;

/// The first advisory-lock key of import jobs (the second is the hash of the job's id).
pub const LOCK_SPACE: i32 = 0x5350_454e; // "SPEN"

/// The most problems a job keeps (it counts them all).
pub const MAX_PROBLEMS: usize = 100;

/// What a job records when the process running it stopped before it ended.
pub const ABANDONED: &str =
    "the service stopped before the import finished; nothing was written: send the file again";

/// One problem with a file, at a line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProblem {
    pub line: u64,
    /// The column, by its header name; `None` for the whole line.
    pub column: Option<String>,
    pub code: String,
    pub reason: String,
}

impl LineProblem {
    pub fn bad(line: u64, column: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            line,
            column: column.map(str::to_owned),
            code: "BAD_USER_INPUT".into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for LineProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// What a job is for.
pub struct NewJob<'a> {
    pub kind: ImportKind,
    pub network_id: i64,
    pub institution_id: Option<i64>,
    pub period: Option<String>,
    pub by: &'a str,
}

/// Creates a job, running, and returns its row.
pub async fn create(db: &DatabaseConnection, j: NewJob<'_>) -> ApiResult<import_jobs::Model> {
    Ok(import_jobs::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        kind: Set(j.kind),
        state: Set(ImportState::Running),
        network_id: Set(j.network_id),
        institution_id: Set(j.institution_id),
        period: Set(j.period),
        rows_read: Set(0),
        rows_rejected: Set(0),
        problems: Set("[]".into()),
        failure: Set(None),
        spend_file_id: Set(None),
        replayed: Set(false),
        place_unknown: Set("[]".into()),
        sha256: Set(None),
        created_by: Set(j.by.to_owned()),
        created_at: Set(Utc::now()),
        finished_at: Set(None),
    }
    .insert(db)
    .await
    .context("Failed to create an import job")?)
}

pub async fn find<C: ConnectionTrait>(db: &C, id: &str) -> ApiResult<Option<import_jobs::Model>> {
    Ok(import_jobs::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .context("Failed to read an import job")?)
}

/// Records how many rows a running job has read so far.
pub async fn progress<C: ConnectionTrait>(db: &C, id: &str, rows_read: u64) -> ApiResult<()> {
    let statement = Sql::format(
        "UPDATE import_jobs SET rows_read = {} WHERE id = {} AND state = {}",
        [
            Sql::value(count(rows_read)),
            Sql::value(id),
            Sql::value(ImportState::Running.as_str()),
        ],
    );
    db.execute_raw(statement.statement(db.get_database_backend()))
        .await
        .context("Failed to record an import job's progress")?;
    Ok(())
}

/// How a job ended badly: its counts, its first problems, and why.
pub struct Failed<'a> {
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub problems: &'a [LineProblem],
    pub failure: Option<&'a str>,
    pub sha256: Option<&'a str>,
}

/// Marks a running job failed. A job no longer running (reaped, or ended) is left as it is.
pub async fn fail<C: ConnectionTrait>(db: &C, id: &str, f: Failed<'_>) -> ApiResult<()> {
    let problems = serde_json::to_string(&f.problems[..f.problems.len().min(MAX_PROBLEMS)])
        .context("Failed to serialise an import job's problems")?;
    let statement = Sql::format(
        "UPDATE import_jobs SET state = {}, rows_read = {}, rows_rejected = {}, problems = {}, \
         failure = {}, sha256 = {}, finished_at = {} WHERE id = {} AND state = {}",
        [
            Sql::value(ImportState::Failed.as_str()),
            Sql::value(count(f.rows_read)),
            Sql::value(count(f.rows_rejected)),
            Sql::value(problems),
            Sql::value(f.failure.map(str::to_owned)),
            Sql::value(f.sha256.map(str::to_owned)),
            Sql::value(Utc::now()),
            Sql::value(id),
            Sql::value(ImportState::Running.as_str()),
        ],
    );
    db.execute_raw(statement.statement(db.get_database_backend()))
        .await
        .context("Failed to mark an import job failed")?;
    Ok(())
}

/// A count as the database keeps it.
pub fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(FromQueryResult)]
struct Id {
    id: String,
}

/// At start-up: marks failed every job whose process is gone, removes their staged rows, and
/// any rows staged by jobs that are over. Returns how many jobs it marked.
pub async fn reap(db: &DatabaseConnection) -> ApiResult<usize> {
    let running = Id::find_by_statement(
        Sql::format(
            "SELECT id FROM import_jobs WHERE state IN ({}) ORDER BY id",
            [Sql::list([
                ImportState::Queued.as_str(),
                ImportState::Running.as_str(),
            ])],
        )
        .statement(db.get_database_backend()),
    )
    .all(db)
    .await
    .context("Failed to read the import jobs left running")?;
    let mut reaped = 0;
    for job in running {
        if abandon(db, &job.id).await? {
            reaped += 1;
        }
    }
    // Rows of jobs that ended but whose staged rows were not removed (a failure while
    // removing them); never rows of a job still running.
    let statement = Sql::format(
        "DELETE FROM spend_staging WHERE job_id NOT IN \
         (SELECT id FROM import_jobs WHERE state IN ({}))",
        [Sql::list([
            ImportState::Queued.as_str(),
            ImportState::Running.as_str(),
        ])],
    );
    db.execute_raw(statement.statement(db.get_database_backend()))
        .await
        .context("Failed to remove the rows staged by finished import jobs")?;
    Ok(reaped)
}

/// A job read back, reaped first if it claims to run but nothing runs it (PostgreSQL; on
/// SQLite only a start-up knows that).
pub async fn reaped(db: &DatabaseConnection, id: &str) -> ApiResult<Option<import_jobs::Model>> {
    let Some(job) = find(db, id).await? else {
        return Ok(None);
    };
    if job.state == ImportState::Running && db.get_database_backend() == DatabaseBackend::Postgres {
        abandon(db, id).await?;
        return find(db, id).await;
    }
    Ok(Some(job))
}

/// Marks `id` failed and removes its staged rows, if its process is gone: on PostgreSQL when
/// its advisory lock is free (taken here for this transaction only), on SQLite always.
async fn abandon(db: &DatabaseConnection, id: &str) -> ApiResult<bool> {
    let backend = db.get_database_backend();
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start reaping an import job")?;
    if backend == DatabaseBackend::Postgres {
        let free = txn
            .query_one_raw(
                Sql::format(
                    "SELECT pg_try_advisory_xact_lock({}, hashtext({})) AS free",
                    [Sql::value(LOCK_SPACE), Sql::value(id)],
                )
                .statement(backend),
            )
            .await
            .context("Failed to test an import job's lock")?
            .map(|row| row.try_get::<bool>("", "free"))
            .transpose()
            .context("Failed to read an import job's lock")?
            .unwrap_or(false);
        if !free {
            txn.rollback()
                .await
                .context("Failed to end testing an import job's lock")?;
            return Ok(false);
        }
    }
    let marked = txn
        .execute_raw(
            Sql::format(
                "UPDATE import_jobs SET state = {}, failure = {}, finished_at = {} \
                 WHERE id = {} AND state IN ({})",
                [
                    Sql::value(ImportState::Failed.as_str()),
                    Sql::value(ABANDONED),
                    Sql::value(Utc::now()),
                    Sql::value(id),
                    Sql::list([ImportState::Queued.as_str(), ImportState::Running.as_str()]),
                ],
            )
            .statement(backend),
        )
        .await
        .context("Failed to mark an abandoned import job failed")?
        .rows_affected();
    txn.execute_raw(
        Sql::format(
            "DELETE FROM spend_staging WHERE job_id = {}",
            [Sql::value(id)],
        )
        .statement(backend),
    )
    .await
    .context("Failed to remove an abandoned import job's staged rows")?;
    txn.commit()
        .await
        .context("Failed to commit reaping an import job")?;
    if marked > 0 {
        tracing::warn!(import.job = %id, "import job abandoned by a stopped process marked failed");
    }
    Ok(marked > 0)
}
