//! Geography loaded from the published files, in their own CSV layouts:
//!
//! - [`nspl`]: the ONS National Statistics Postcode Lookup, postcode → district → LSOA, with
//!   each postcode's termination month (terminated postcodes stay: spend of the periods when
//!   they were live still resolves through them);
//! - [`imd`]: the English Indices of Deprivation's LSOA ranks and deciles.
//!
//! Both stream the file (the full NSPL has some 2.7 million rows and a hundred megabytes of
//! columns this reads none of), find their columns by their published names wherever they
//! stand, and write in one transaction: a file with a bad row is refused whole, naming the
//! rows, and loading a newer edition over an older one replaces what both name.

pub mod imd;
pub mod nspl;

use std::io::Read;

use anyhow::Context;
use sea_orm::DatabaseTransaction;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ApiResult;
use crate::ingest::csv_returns::Hashing;
use crate::ingest::jobs::{LineProblem, MAX_PROBLEMS};

/// Rows written by one statement.
const ROWS_PER_STATEMENT: usize = 500;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Rows written (inserted or replaced), with what the loader says of them.
    Written { rows: u64, note: String },
    /// Nothing written: the file's problems (the first of them), and how many rows had one.
    Refused {
        problems: Vec<LineProblem>,
        rows_read: u64,
        rows_rejected: u64,
    },
}

/// How reading a file ended.
enum ReadEnd {
    Whole {
        rows: u64,
        problems: Vec<LineProblem>,
        rows_rejected: u64,
    },
    Broken(String),
}

/// Ends a load's transaction as reading ended: committed when the whole file was good,
/// rolled back otherwise.
async fn end(
    txn: DatabaseTransaction,
    ended: ReadEnd,
    written: u64,
    note: String,
) -> ApiResult<Loaded> {
    match ended {
        ReadEnd::Whole {
            problems,
            rows,
            rows_rejected,
        } if !problems.is_empty() => {
            txn.rollback()
                .await
                .context("Failed to roll back a refused file")?;
            Ok(Loaded::Refused {
                problems,
                rows_read: rows,
                rows_rejected,
            })
        }
        ReadEnd::Whole { .. } => {
            txn.commit()
                .await
                .context("Failed to commit a file loaded")?;
            Ok(Loaded::Written {
                rows: written,
                note,
            })
        }
        ReadEnd::Broken(why) => {
            txn.rollback()
                .await
                .context("Failed to roll back a file cut short")?;
            Err(anyhow::anyhow!("the file could not be read to its end: {why}").into())
        }
    }
}

/// Reads `input` on a thread of its own: finds the columns from the header with `columns`,
/// turns each row into a `T` with `row` (`Ok(None)` skips it), and sends rows in batches
/// while no row has been bad.
fn spawn_reader<C, T>(
    input: impl Read + Send + 'static,
    columns: impl FnOnce(&[String]) -> Result<C, String> + Send + 'static,
    row: impl Fn(&C, &csv::StringRecord, u64) -> Result<Option<T>, LineProblem> + Send + 'static,
) -> (mpsc::Receiver<Vec<T>>, JoinHandle<ReadEnd>)
where
    C: Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Vec<T>>(4);
    let handle = tokio::task::spawn_blocking(move || {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(Hashing::new(input));
        let header: Vec<String> = match reader.headers() {
            Ok(h) => h
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_owned())
                .collect(),
            Err(e) => {
                return match fault(&e) {
                    Fault::Line(p) => ReadEnd::Whole {
                        rows: 0,
                        problems: vec![p],
                        rows_rejected: 1,
                    },
                    Fault::Broken(why) => ReadEnd::Broken(why),
                };
            }
        };
        let cols = match columns(&header) {
            Ok(c) => c,
            Err(reason) => {
                return ReadEnd::Whole {
                    rows: 0,
                    problems: vec![LineProblem::bad(1, None, reason)],
                    rows_rejected: 1,
                };
            }
        };
        let (mut rows, mut rejected, mut problems) = (0u64, 0u64, vec![]);
        let mut batch = Vec::with_capacity(ROWS_PER_STATEMENT);
        let mut record = csv::StringRecord::new();
        loop {
            let parsed = match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => row(
                    &cols,
                    &record,
                    record.position().map_or(0, csv::Position::line),
                ),
                Err(e) => match fault(&e) {
                    Fault::Line(p) => Err(p),
                    Fault::Broken(why) => return ReadEnd::Broken(why),
                },
            };
            rows += 1;
            match parsed {
                Ok(Some(t)) if problems.is_empty() => {
                    batch.push(t);
                    if batch.len() == ROWS_PER_STATEMENT
                        && tx.blocking_send(std::mem::take(&mut batch)).is_err()
                    {
                        return ReadEnd::Broken("the writer stopped".into());
                    }
                }
                Ok(_) => {}
                Err(p) => {
                    rejected += 1;
                    if problems.len() < MAX_PROBLEMS {
                        problems.push(p);
                    }
                }
            }
        }
        if problems.is_empty() && !batch.is_empty() && tx.blocking_send(batch).is_err() {
            return ReadEnd::Broken("the writer stopped".into());
        }
        ReadEnd::Whole {
            rows,
            problems,
            rows_rejected: rejected,
        }
    });
    (rx, handle)
}

enum Fault {
    Line(LineProblem),
    Broken(String),
}

/// A row the CSV reader could not read; or the input failing under it.
fn fault(e: &csv::Error) -> Fault {
    let line = e.position().map_or(1, csv::Position::line);
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => return Fault::Broken(io.to_string()),
        csv::ErrorKind::UnequalLengths {
            len, expected_len, ..
        } => format!("the row has {len} fields; the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not UTF-8 text".into(),
        _ => e.to_string(),
    };
    Fault::Line(LineProblem::bad(line, None, reason))
}

/// The position of the first column named one of `names` (ignoring case).
fn column(header: &[String], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n)))
}

/// A GSS code field: empty, or one of ONS's pseudo-codes for "none" (`E99999999`,
/// `L99999999` for the Channel Islands, `M99999999` for the Isle of Man), is `None`.
fn code(
    record: &csv::StringRecord,
    at: Option<usize>,
    line: u64,
    name: &str,
) -> Result<Option<String>, LineProblem> {
    let raw = at.and_then(|i| record.get(i)).unwrap_or("").trim();
    if raw.is_empty() || raw.ends_with("99999999") {
        return Ok(None);
    }
    crate::domain::GssCode::parse(raw)
        .map(|c| Some(c.to_string()))
        .map_err(|e| LineProblem::bad(line, Some(name), e.0))
}
