//! PostgreSQL: a file's lines are written once, straight into `spend_lines`, by
//! `COPY … FROM STDIN` inside the transaction that switches the file in.
//!
//! The job has a connection of its own out of the pool (closed at the end, never returned),
//! without the pool's statement timeout, holding the job's advisory lock until the job has
//! ended (see `ingest::jobs`). On it, one transaction: the file's id is taken from
//! `spend_files`' sequence, a savepoint is set, and the lines stream through `COPY` (its
//! binary format) as they are read and checked, each with the place its supplier resolves to
//! ([`Places`]: the postcodes of each batch looked up in one statement, on a second
//! connection of the job's own, while the batch before is copied) and the counts and sums
//! the switch records kept as they pass. A refused file aborts the copy; a file seen before
//! rolls back to the savepoint; a killed process leaves an open transaction PostgreSQL
//! discards. No row of the file is seen by anyone until the commit.
//!
//! The tracked writes (`spend_lines` at the copy's end, then `spend_files` and the restated
//! return) take `data_version`'s row for the rest of the transaction; the copy, which lasts
//! as long as the upload, does not hold it while it streams (the statement-level trigger
//! fires when the copy ends), so other writers wait only for the switch.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, postgres::PgConnection};
use tokio::sync::oneshot;

use super::lines::{Ended, StagedLine};
use super::place::{Places, Tally};
use super::stage::{self, Progress};
use super::{ReadReport, Target, Written};
use crate::db::single::Single;
use crate::error::ApiResult;
use crate::ingest::jobs::LOCK_SPACE;

/// Encoded batches between the resolver and the copy.
const QUEUE: usize = 4;

/// The savepoint before the copy: a file seen before is rolled back to it.
pub(super) const SAVEPOINT: &str = "spend_lines_copied";

const COPY: &str = "COPY spend_lines (file_id, line, supplier, supplier_id, postcode, \
                    given_district, amount, category, sme, vcse, sole_trader, anchor, \
                    district_code, lsoa_code, place) FROM STDIN (FORMAT binary)";

/// Runs the job `job` on `input` to its end (PostgreSQL). Every failure ends the job failed,
/// recorded while the job still holds its lock.
pub(super) async fn run(
    db: &DatabaseConnection,
    job: &str,
    target: &Target,
    input: impl Read + Send + 'static,
    read: Option<oneshot::Sender<ReadReport>>,
) -> ApiResult<()> {
    let single = match lease(db, job).await {
        Ok(conn) => Single::new(conn),
        Err(e) => {
            super::fail_for(db, job, &e).await;
            return Err(e);
        }
    };
    let outcome = write(db, &single, job, target, input, read).await;
    if let Err(e) = &outcome {
        // Whatever the transaction holds goes (a copy cut short is discarded with it), then
        // the job is marked failed while its lock is still held.
        let _ = sea_orm::ConnectionTrait::execute_unprepared(&single, "ROLLBACK").await;
        super::fail_for(db, job, e).await;
    }
    single.close().await;
    outcome
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

async fn write(
    db: &DatabaseConnection,
    single: &Single,
    job: &str,
    target: &Target,
    input: impl Read + Send + 'static,
    read: Option<oneshot::Sender<ReadReport>>,
) -> ApiResult<()> {
    let places = Places::new(
        db,
        &target.network,
        super::start_month(target)?,
        target.period.to_string(),
    )
    .await?;
    single
        .begin()
        .await
        .context("Failed to start an import's transaction")?;
    let file_id: i64 = {
        let mut conn = single.conn().await;
        let id = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('spend_files', 'id'))")
            .fetch_one(&mut *conn)
            .await
            .context("Failed to number a version of spend lines")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("SAVEPOINT {SAVEPOINT}")))
            .execute(&mut *conn)
            .await
            .context("Failed to mark where an import's lines begin")?;
        id
    };
    let (ended, tally) = copy_lines(db, single, job, file_id, input, places).await?;
    match ended {
        Ended::Whole(summary) if summary.accepted() => {
            super::tell(
                read,
                ReadReport {
                    rows_read: summary.rows_read,
                    rows_rejected: 0,
                    accepted: true,
                },
            );
            let written = Written::Copied { file_id, tally };
            let switched = super::switch(single, job, target, &summary, written).await?;
            if !switched.marked {
                single
                    .rollback()
                    .await
                    .context("Failed to roll back the switch of a job no longer running")?;
                return Err(super::ended_meanwhile());
            }
            single
                .commit()
                .await
                .context("Failed to commit the switch of an import")?;
            switched.log(job);
            Ok(())
        }
        other => {
            single
                .rollback()
                .await
                .context("Failed to end a refused import's transaction")?;
            super::refused(db, job, other, read).await
        }
    }
}

/// Streams `input`'s lines into `spend_lines` under `file_id` as they are read, checked and
/// placed: the copy finished when the file is accepted, aborted otherwise. Returns how
/// reading ended and what the lines came to.
async fn copy_lines(
    db: &DatabaseConnection,
    single: &Single,
    job: &str,
    file_id: i64,
    input: impl Read + Send + 'static,
    mut places: Places,
) -> ApiResult<(Ended, Tally)> {
    let counter = Arc::new(AtomicU64::new(0));
    let (mut rx, reader) = stage::spawn_reader(input, counter.clone());
    // Places are resolved and lines encoded on a task of their own, so that looking up a
    // batch's postcodes and encoding it overlap with copying the batch before.
    let (encoded_tx, mut encoded) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUE);
    let resolver = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            places.learn(&batch).await?;
            let mut buf = Vec::with_capacity(batch.len() * 160);
            encode(&mut buf, file_id, &batch, &mut places);
            if encoded_tx.send(buf).await.is_err() {
                break;
            }
        }
        Ok::<_, crate::error::ApiError>(places.finish().await)
    });
    let mut progress = Progress::new(db, job, &counter);
    let copied = {
        let mut conn = single.conn().await;
        let mut copy = conn
            .copy_in_raw(COPY)
            .await
            .context("Failed to start copying an import's lines")?;
        copy.send(HEADER.as_slice())
            .await
            .context("Failed to copy an import's lines")?;
        while let Some(buf) = encoded.recv().await {
            copy.send(buf)
                .await
                .context("Failed to copy an import's lines")?;
            progress.tick().await;
        }
        let tally = resolver
            .await
            .context("The place resolver of an import stopped")??;
        let ended = stage::ended(reader).await?;
        if matches!(&ended, Ended::Whole(s) if s.accepted()) {
            copy.send((-1i16).to_be_bytes().as_slice())
                .await
                .context("Failed to copy an import's lines")?;
            copy.finish()
                .await
                .context("Failed to finish copying an import's lines")?;
        } else {
            copy.abort("the file was refused")
                .await
                .context("Failed to abandon copying a refused file")?;
        }
        (ended, tally)
    };
    Ok(copied)
}

/// `COPY`'s binary format: its signature, no flags, no header extension. Binary rather than
/// CSV: nothing to quote or escape on our side, no numbers or booleans to parse on
/// PostgreSQL's, which together made CSV's copy about a third slower.
const HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Lines in `COPY`'s binary format, with their places: each a field count, then each field
/// as its length and its bytes (-1 for NULL), integers big-endian, booleans one byte, text
/// as UTF-8 (the columns' own types, in [`COPY`]'s order).
fn encode(buf: &mut Vec<u8>, file_id: i64, batch: &[StagedLine], places: &mut Places) {
    fn text(buf: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(v) => {
                // Every text field is checked to be far shorter than 2 GB.
                buf.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
                buf.extend_from_slice(v.as_bytes());
            }
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    fn int8(buf: &mut Vec<u8>, v: i64) {
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&v.to_be_bytes());
    }
    fn int4(buf: &mut Vec<u8>, v: i32) {
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&v.to_be_bytes());
    }
    fn flag(buf: &mut Vec<u8>, v: bool) {
        buf.extend_from_slice(&1i32.to_be_bytes());
        buf.push(u8::from(v));
    }
    for l in batch {
        let place = places.place(l);
        buf.extend_from_slice(&FIELDS.to_be_bytes());
        int8(buf, file_id);
        int4(buf, l.line);
        text(buf, Some(&l.supplier));
        text(buf, Some(&l.supplier_id));
        text(buf, l.postcode.as_deref());
        text(buf, l.district.as_deref());
        int8(buf, l.amount);
        text(buf, l.category.as_deref());
        flag(buf, l.sme);
        flag(buf, l.vcse);
        flag(buf, l.sole_trader);
        flag(buf, l.anchor);
        text(buf, place.district);
        text(buf, place.lsoa);
        text(buf, Some(place.source.as_str()));
    }
}

/// The columns [`COPY`] names.
const FIELDS: i16 = 15;
