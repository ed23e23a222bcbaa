//! Supplier spend lines from a CSV file (API.md's layout), for one institution and period, at
//! any size and all or nothing:
//!
//! 1. a job is created before the first byte is read (`ingest::jobs`);
//! 2. the file streams through the CSV reader on a thread of its own, every line checked as
//!    it passes; good lines are written as they come while no line has been bad (PostgreSQL:
//!    straight into `spend_lines` by `COPY` in the switch's own transaction, [`copy`];
//!    SQLite: into the staging table, [`stage`]), and memory holds a few batches of lines at
//!    most, however large the file;
//! 3. a file with a bad line is refused whole: the job fails with every bad line counted and
//!    the first [`MAX_PROBLEMS`](crate::ingest::jobs::MAX_PROBLEMS) named, and nothing is
//!    left written;
//! 4. a good file is switched in by one transaction ([`switch`]): its version row, its lines
//!    with the place each supplier resolves to, the job marked succeeded, and the
//!    institution's return for the period restated with its spend derived from the lines
//!    ([`derive`]). A file seen before for the same institution and period (by its SHA-256)
//!    writes nothing and answers with the version it wrote then.
//!
//! A supplier's place comes from its postcode through the postcode lookup, or from the
//! district given when no postcode is. A postcode the lookup does not know, or knows to have
//! been terminated before the period began, leaves the place unknown: the line is kept,
//! counted as "place unknown" and reported by its line, never guessed.

mod copy;
pub mod demo;
pub mod derive;
pub mod lines;
mod place;
mod stage;
pub mod suppliers;

use std::io::Read;

use anyhow::Context;
use chrono::{Datelike, Utc};
use entity::vocab::{ImportState, PlaceSource};
use entity::{import_jobs, institutions, networks, spend_files};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::lines::{Ended, Summary};
use crate::domain::FinancialYear;
use crate::error::{ApiError, ApiResult};
use crate::ingest::jobs::{self, Failed, LineProblem};
use crate::sql::Sql;

/// How many lines with an unknown place a job names (it counts them all).
pub const MAX_PLACE_UNKNOWN: usize = 100;

/// What a file is for, already authorised: the institution, its steward network (the one the
/// file came through) and the period.
#[derive(Debug, Clone)]
pub struct Target {
    pub network: networks::Model,
    pub institution: institutions::Model,
    pub period: FinancialYear,
    /// Who sent it, for the record.
    pub by: String,
}

/// Starts a job for `target`.
pub async fn start(db: &DatabaseConnection, target: &Target) -> ApiResult<import_jobs::Model> {
    jobs::create(
        db,
        jobs::NewJob {
            kind: entity::vocab::ImportKind::SpendLines,
            network_id: target.network.id,
            institution_id: Some(target.institution.id),
            period: Some(target.period.to_string()),
            by: &target.by,
        },
    )
    .await
}

/// What a job's reading came to, before the switch: what the HTTP answer says.
#[derive(Debug, Clone)]
pub struct ReadReport {
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// Whether the file goes on to be switched in.
    pub accepted: bool,
}

/// Runs the job `job` on `input` to its end, and returns its final row. `read` (if given)
/// hears how reading ended as soon as the job knows what comes next (the switch, or the
/// failure, recorded). Every failure ends the job failed, recorded while the job still holds
/// its lease, so nothing takes it for abandoned; an internal one is also returned.
pub async fn run(
    db: &DatabaseConnection,
    job: &str,
    target: &Target,
    input: impl std::io::Read + Send + 'static,
    read: Option<tokio::sync::oneshot::Sender<ReadReport>>,
) -> ApiResult<import_jobs::Model> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => copy::run(db, job, target, input, read).await?,
        _ => staged(db, job, target, input, read).await?,
    }
    jobs::find(db, job)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("import job {job} vanished")))
}

/// SQLite: the file staged, then switched in by one transaction.
async fn staged(
    db: &DatabaseConnection,
    job: &str,
    target: &Target,
    input: impl std::io::Read + Send + 'static,
    read: Option<tokio::sync::oneshot::Sender<ReadReport>>,
) -> ApiResult<()> {
    let outcome = match stage::stage(db, job, input).await {
        Ok(Ended::Whole(summary)) if summary.accepted() => {
            tell(
                read,
                ReadReport {
                    rows_read: summary.rows_read,
                    rows_rejected: 0,
                    accepted: true,
                },
            );
            match start_month(target) {
                Ok(start_month) => {
                    switch_staged(db, job, target, &summary, Written::Staged { start_month }).await
                }
                Err(e) => Err(e),
            }
        }
        Ok(other) => refused(db, job, other, read).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        fail_for(db, job, e).await;
    }
    outcome
}

async fn switch_staged(
    db: &DatabaseConnection,
    job: &str,
    target: &Target,
    summary: &Summary,
    written: Written,
) -> ApiResult<()> {
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start switching an import in")?;
    let switched = switch(&txn, job, target, summary, written).await?;
    if !switched.marked {
        txn.rollback()
            .await
            .context("Failed to roll back the switch of a job no longer running")?;
        return Err(ended_meanwhile());
    }
    txn.commit()
        .await
        .context("Failed to commit the switch of an import")?;
    switched.log(job);
    Ok(())
}

fn tell(read: Option<tokio::sync::oneshot::Sender<ReadReport>>, report: ReadReport) {
    if let Some(tx) = read {
        let _ = tx.send(report);
    }
}

/// Ends a job that met an error: logged, its staged rows removed, marked failed (best
/// effort: the database may be what failed).
async fn fail_for(db: &DatabaseConnection, job: &str, e: &ApiError) {
    let failure = match e {
        ApiError::Unavailable(cause) => {
            tracing::warn!(import.job = %job, error.cause_chain = ?cause, "import stopped: database unavailable");
            "the database became unavailable; nothing was written: send the file again".to_owned()
        }
        ApiError::Internal(cause) => {
            tracing::error!(import.job = %job, error.cause_chain = ?cause, "import failed");
            "internal error; nothing was written".to_owned()
        }
        other => other.message(),
    };
    let _ = stage::unstage(db, job).await;
    let _ = jobs::fail(
        db,
        job,
        Failed {
            rows_read: 0,
            rows_rejected: 0,
            problems: &[],
            failure: Some(&failure),
            sha256: None,
        },
    )
    .await;
}

/// Records why a file read to its end (or not) was refused; nothing of it is written.
async fn refused(
    db: &DatabaseConnection,
    job: &str,
    ended: Ended,
    read: Option<tokio::sync::oneshot::Sender<ReadReport>>,
) -> ApiResult<()> {
    let (failure, failed_summary) = match &ended {
        Ended::Whole(summary) => (
            format!(
                "{} of {} lines have problems; nothing was written",
                summary.rows_rejected, summary.rows_read
            ),
            Some(summary),
        ),
        Ended::Broken(why) => (
            format!("the file could not be read to its end ({why}); nothing was written"),
            None,
        ),
        Ended::Abandoned => (
            "the file could not be read to its end (the import was stopped); nothing was written"
                .to_owned(),
            None,
        ),
    };
    let failed = match failed_summary {
        Some(summary) => Failed {
            rows_read: summary.rows_read,
            rows_rejected: summary.rows_rejected,
            problems: &summary.problems,
            failure: Some(&failure),
            sha256: Some(&summary.sha256),
        },
        None => Failed {
            rows_read: 0,
            rows_rejected: 0,
            problems: &[],
            failure: Some(&failure),
            sha256: None,
        },
    };
    let recorded = jobs::fail(db, job, failed).await;
    let (rows_read, rows_rejected) =
        failed_summary.map_or((0, 0), |s| (s.rows_read, s.rows_rejected));
    tell(
        read,
        ReadReport {
            rows_read,
            rows_rejected,
            accepted: false,
        },
    );
    recorded
}

/// One line whose supplier's place is unknown, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceUnknown {
    pub line: u64,
    pub postcode: Option<String>,
    pub reason: String,
}

/// How an accepted file's lines were written before the switch.
pub(super) enum Written {
    /// In `spend_staging` (SQLite), to be moved with their places resolved in SQL.
    Staged { start_month: i32 },
    /// Straight into `spend_lines` under the number `file_id`, after [`copy::SAVEPOINT`], in
    /// the switch's own transaction (PostgreSQL), with what they came to.
    Copied { file_id: i64, tally: place::Tally },
}

/// What a switch did, before its transaction ends.
pub(super) struct Switched {
    file: spend_files::Model,
    replayed: bool,
    /// Whether the job was still running and is now marked succeeded: if not, the
    /// transaction is rolled back.
    marked: bool,
}

impl Switched {
    fn log(&self, job: &str) {
        tracing::info!(
            import.job = %job,
            spend.file = self.file.id,
            spend.version = self.file.version,
            spend.lines = self.file.lines,
            replayed = self.replayed,
            "spend lines switched in"
        );
    }
}

/// A job marked failed while it ran (a start-up took it for abandoned): it stays failed, and
/// nothing of it is written.
fn ended_meanwhile() -> ApiError {
    ApiError::Conflict(
        "the import job was ended while it ran; nothing was written: send the file again".into(),
    )
}

/// Switches an accepted file in, in the transaction `txn`, unless the same file was accepted
/// before; either way the job is marked succeeded, with the version it names.
// Long because it is the steps of one transaction in order, with each backend's way of
// having written the lines side by side so that both switch in the same way.
pub(super) async fn switch<C: ConnectionTrait>(
    txn: &C,
    job: &str,
    target: &Target,
    summary: &Summary,
    written: Written,
) -> ApiResult<Switched> {
    let backend = txn.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        // The pool's statement timeout is for requests; a switch moves the whole file.
        txn.execute_unprepared("SET LOCAL statement_timeout = 0")
            .await
            .context("Failed to lift the statement timeout for a switch")?;
        // Versions are numbered from the latest: two files of one institution take turns.
        // (After the copy's tracked write, as returns take `data_version`'s row before their
        // institutions': one order, no deadlock.)
        txn.execute_raw(
            Sql::format(
                "SELECT id FROM institutions WHERE id = {} FOR UPDATE",
                [Sql::value(target.institution.id)],
            )
            .statement(backend),
        )
        .await
        .context("Failed to lock the institution of an import")?;
    }
    let period = target.period.to_string();
    let earlier = spend_files::Entity::find()
        .filter(spend_files::Column::InstitutionId.eq(target.institution.id))
        .filter(spend_files::Column::Period.eq(period.as_str()))
        .filter(spend_files::Column::Sha256.eq(summary.sha256.as_str()))
        .one(txn)
        .await
        .context("Failed to look for an earlier import of the same file")?;
    let staged = matches!(written, Written::Staged { .. });
    let (file, replayed, unknown) = match (earlier, written) {
        (Some(file), Written::Copied { .. }) => {
            txn.execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {}", copy::SAVEPOINT))
                .await
                .context("Failed to drop the lines of a file imported before")?;
            (file, true, vec![])
        }
        (Some(file), Written::Staged { .. }) => (file, true, vec![]),
        (None, Written::Staged { start_month }) => {
            let file = insert_file(txn, target, summary, None, (0, 0)).await?;
            move_lines(txn, job, &file, start_month).await?;
            let (file, unknown) = count_unknown(txn, file, start_month).await?;
            let sums = derive::sums(txn, &file, &target.network).await?;
            derive::restate(txn, target, &file, sums).await?;
            (file, false, unknown)
        }
        (None, Written::Copied { file_id, tally }) => {
            let unknown = (tally.unknown_lines, tally.unknown_total);
            let file = insert_file(txn, target, summary, Some(file_id), unknown).await?;
            derive::restate(txn, target, &file, tally.sums).await?;
            (file, false, tally.unknown)
        }
    };
    if staged {
        stage::unstage(txn, job).await?;
    }
    let unknown = serde_json::to_string(&unknown).context("Failed to serialise place unknown")?;
    let marked = txn
        .execute_raw(
            Sql::format(
                "UPDATE import_jobs SET state = {}, rows_read = {}, rows_rejected = 0, \
                 spend_file_id = {}, replayed = {}, place_unknown = {}, sha256 = {}, \
                 finished_at = {} WHERE id = {} AND state = {}",
                [
                    Sql::value(ImportState::Succeeded.as_str()),
                    Sql::value(jobs::count(summary.rows_read)),
                    Sql::value(file.id),
                    Sql::value(replayed),
                    Sql::value(unknown),
                    Sql::value(summary.sha256.as_str()),
                    Sql::value(Utc::now()),
                    Sql::value(job),
                    Sql::value(ImportState::Running.as_str()),
                ],
            )
            .statement(backend),
        )
        .await
        .context("Failed to mark an import job succeeded")?
        .rows_affected()
        == 1;
    Ok(Switched {
        file,
        replayed,
        marked,
    })
}

/// The month the period starts, as yyyymm: postcodes terminated before it do not resolve.
fn start_month(target: &Target) -> ApiResult<i32> {
    let month = crate::directory::year_end_month(&target.institution)?;
    let start = target.period.start_date(month).ok_or_else(|| {
        ApiError::bad_input("period", "the period's first day cannot be worked out")
    })?;
    Ok(start.year() * 100 + i32::try_from(start.month()).unwrap_or(1))
}

/// The next version of the institution's spend lines for the period.
/// `id` is the number taken for it before its lines were copied (PostgreSQL), `unknown` the
/// count and amount of its lines whose place is unknown, when known already.
async fn insert_file<C: ConnectionTrait>(
    txn: &C,
    target: &Target,
    summary: &Summary,
    id: Option<i64>,
    unknown: (i64, i64),
) -> ApiResult<spend_files::Model> {
    let period = target.period.to_string();
    let latest: Option<i32> = spend_files::Entity::find()
        .select_only()
        .column_as(spend_files::Column::Version.max(), "v")
        .filter(spend_files::Column::InstitutionId.eq(target.institution.id))
        .filter(spend_files::Column::Period.eq(period.as_str()))
        .into_tuple::<Option<i32>>()
        .one(txn)
        .await
        .context("Failed to read the latest version of spend lines")?
        .flatten();
    let mut row = spend_files::ActiveModel {
        institution_id: Set(target.institution.id),
        period: Set(period),
        version: Set(latest.unwrap_or(0) + 1),
        sha256: Set(summary.sha256.clone()),
        lines: Set(jobs::count(summary.rows_read)),
        total: Set(summary.total),
        place_unknown_lines: Set(unknown.0),
        place_unknown_total: Set(unknown.1),
        submitted_at: Set(Utc::now()),
        submitted_by: Set(target.by.clone()),
        ..Default::default()
    };
    if let Some(id) = id {
        row.id = Set(id);
    }
    Ok(row
        .insert(txn)
        .await
        .context("Failed to insert a version of spend lines")?)
}

/// Moves the job's staged lines into `spend_lines`, resolving each supplier's place: by
/// postcode (if the lookup knows it and it was not terminated before `start_month`), else by
/// the district given when no postcode was, else unknown.
async fn move_lines<C: ConnectionTrait>(
    txn: &C,
    job: &str,
    file: &spend_files::Model,
    start_month: i32,
) -> ApiResult<()> {
    let statement = Sql::format(
        "INSERT INTO spend_lines (file_id, line, supplier, supplier_id, postcode, given_district, \
           amount, category, sme, vcse, sole_trader, anchor, district_code, lsoa_code, place) \
         SELECT {}, s.line, s.supplier, s.supplier_id, s.postcode, s.given_district, s.amount, \
           s.category, s.sme, s.vcse, s.sole_trader, s.anchor, \
           CASE WHEN s.postcode IS NULL THEN s.given_district ELSE p.district_code END, \
           CASE WHEN s.postcode IS NULL THEN NULL ELSE COALESCE(p.lsoa21_code, p.lsoa11_code) END, \
           CASE WHEN s.postcode IS NULL AND s.given_district IS NOT NULL THEN {} \
                WHEN s.postcode IS NOT NULL AND p.district_code IS NOT NULL THEN {} \
                ELSE {} END \
         FROM spend_staging s \
         LEFT JOIN postcodes p ON p.postcode = s.postcode \
           AND (p.terminated IS NULL OR p.terminated >= {}) \
         WHERE s.job_id = {}",
        [
            Sql::value(file.id),
            Sql::value(PlaceSource::District.as_str()),
            Sql::value(PlaceSource::Postcode.as_str()),
            Sql::value(PlaceSource::Unknown.as_str()),
            Sql::value(start_month),
            Sql::value(job),
        ],
    );
    txn.execute_raw(statement.statement(txn.get_database_backend()))
        .await
        .context("Failed to switch an import's lines in")?;
    Ok(())
}

#[derive(FromQueryResult)]
struct Unknown {
    lines: i64,
    total: Option<i64>,
}

#[derive(FromQueryResult)]
struct UnknownLine {
    line: i32,
    postcode: Option<String>,
    known: Option<String>,
    district: Option<String>,
    terminated: Option<i32>,
}

/// Counts the file's lines whose place is unknown, records the count and amount on the file,
/// and names the first of them with the reason.
async fn count_unknown<C: ConnectionTrait>(
    txn: &C,
    file: spend_files::Model,
    start_month: i32,
) -> ApiResult<(spend_files::Model, Vec<PlaceUnknown>)> {
    let backend = txn.get_database_backend();
    let totals = Unknown::find_by_statement(
        Sql::format(
            "SELECT COUNT(*) AS lines, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total \
             FROM spend_lines WHERE file_id = {} AND place = {}",
            [
                Sql::value(file.id),
                Sql::value(PlaceSource::Unknown.as_str()),
            ],
        )
        .statement(backend),
    )
    .one(txn)
    .await
    .context("Failed to count the lines whose place is unknown")?;
    let (lines, total) = totals.map_or((0, 0), |u| (u.lines, u.total.unwrap_or(0)));
    if lines == 0 {
        return Ok((file, vec![]));
    }
    let first = UnknownLine::find_by_statement(
        Sql::format(
            "SELECT l.line, l.postcode, p.postcode AS known, p.district_code AS district, \
               p.terminated FROM spend_lines l LEFT JOIN postcodes p ON p.postcode = l.postcode \
             WHERE l.file_id = {} AND l.place = {} ORDER BY l.line LIMIT {}",
            [
                Sql::value(file.id),
                Sql::value(PlaceSource::Unknown.as_str()),
                Sql::value(MAX_PLACE_UNKNOWN as i64),
            ],
        )
        .statement(backend),
    )
    .all(txn)
    .await
    .context("Failed to read the lines whose place is unknown")?;
    let lookup_empty = place::lookup_empty(txn).await?;
    let named = first
        .into_iter()
        .map(|u| {
            let entry = u.known.as_ref().map(|_| place::Entry {
                district: u.district.clone(),
                lsoa: None,
                terminated: u.terminated,
            });
            PlaceUnknown {
                line: u64::try_from(u.line).unwrap_or(0),
                reason: place::unknown_reason(
                    u.postcode.as_deref(),
                    entry.as_ref(),
                    start_month,
                    &file.period,
                    lookup_empty,
                ),
                postcode: u.postcode,
            }
        })
        .collect();
    let mut am: spend_files::ActiveModel = file.into();
    am.place_unknown_lines = Set(lines);
    am.place_unknown_total = Set(total);
    let file = am
        .update(txn)
        .await
        .context("Failed to record the lines whose place is unknown")?;
    Ok((file, named))
}

/// A `Read` over chunks sent from async code (an HTTP body), for the CSV reader on its own
/// thread. The sender says how the body ended: a body that stops without [`Chunk::End`] is
/// cut short, never a complete file.
pub struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

/// A piece of a body, or how it ended.
pub enum Chunk {
    Data(Vec<u8>),
    End,
    Broken(String),
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        Self {
            rx,
            current: vec![],
            at: 0,
            ended: false,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.current.len() {
                let n = buf.len().min(self.current.len() - self.at);
                buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(d)) => {
                    self.current = d;
                    self.at = 0;
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Broken(why)) => return Err(std::io::Error::other(why)),
                None => {
                    return Err(std::io::Error::other("the body stopped before its end"));
                }
            }
        }
    }
}

/// A job's outcome as the command line reports it.
pub async fn version_of<C: ConnectionTrait>(
    db: &C,
    job: &import_jobs::Model,
) -> ApiResult<Option<spend_files::Model>> {
    let Some(id) = job.spend_file_id else {
        return Ok(None);
    };
    Ok(spend_files::Entity::find_by_id(id)
        .one(db)
        .await
        .context("Failed to read a version of spend lines")?)
}

/// The problems a job kept, as written.
pub fn problems_of(job: &import_jobs::Model) -> Vec<LineProblem> {
    serde_json::from_str(&job.problems).unwrap_or_default()
}

/// The lines with an unknown place a job named.
pub fn place_unknown_of(job: &import_jobs::Model) -> Vec<PlaceUnknown> {
    serde_json::from_str(&job.place_unknown).unwrap_or_default()
}
