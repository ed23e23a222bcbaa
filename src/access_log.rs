//! The access log (DESIGN.md "Accountability"): each read of returns or aggregates, and each
//! refused one, with who (or anonymous), the operation, the steward networks whose data it
//! touched, and when. A network's admins read the entries that touch their network.
//!
//! Requests hand entries to a writer task through a bounded channel and go on; the writer
//! inserts them in batches, one transaction a batch. When the channel is full (the database
//! is slow or down) requests wait for room rather than drop an entry. A clean shutdown
//! flushes every entry handed over ([`AccessLog::flush`]); a crash can lose the entries
//! still in the channel, at most [`CAPACITY`], none of them older than the crash's moment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use chrono::{DateTime, Utc};
use entity::{access_log, access_log_networks};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Caller;
use crate::domain::Role;
use crate::error::ApiResult;
use crate::pagination::{Page, PageArgs};
use crate::sql::Sql;

/// Entries the channel holds before requests wait.
pub const CAPACITY: usize = 10_000;
/// Entries written in one transaction at most.
const BATCH: usize = 500;

/// One read, as it will be recorded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub subject: Option<String>,
    pub role: Option<Role>,
    pub organisation_id: Option<i64>,
    pub operation: String,
    pub networks: Vec<i64>,
    pub refused: bool,
}

impl Entry {
    /// An entry for `caller` reading through `operation` now.
    pub fn new(caller: &Caller, operation: &str, mut networks: Vec<i64>, refused: bool) -> Self {
        networks.sort_unstable();
        networks.dedup();
        let p = caller.principal();
        Self {
            at: Utc::now(),
            subject: p.map(|p| p.subject.clone()),
            role: p.map(|p| p.role),
            organisation_id: p.and_then(|p| p.organisation.as_ref().map(|o| o.id)),
            operation: operation.to_owned(),
            networks,
            refused,
        }
    }
}

enum Msg {
    Entry(Entry),
    Flush(oneshot::Sender<()>),
}

/// The handle requests record through; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Msg>,
    /// Also keeps what it records, for an answer the response cache may give again.
    kept: Option<Arc<Mutex<Vec<crate::cache::Read>>>>,
}

impl AccessLog {
    /// Starts the writer on `db`.
    pub fn start(db: DatabaseConnection) -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        tokio::spawn(writer(db, rx));
        Self { tx, kept: None }
    }

    /// A handle that records as this one does and also keeps what it records in `kept`.
    pub fn keeping(&self, kept: Arc<Mutex<Vec<crate::cache::Read>>>) -> Self {
        Self {
            tx: self.tx.clone(),
            kept: Some(kept),
        }
    }

    /// Hands an entry to the writer, waiting for room when the channel is full.
    pub async fn record(&self, e: Entry) {
        if let Some(kept) = &self.kept
            && let Ok(mut kept) = kept.lock()
        {
            kept.push(crate::cache::Read {
                operation: e.operation.clone(),
                networks: e.networks.clone(),
                refused: e.refused,
            });
        }
        if let Err(mpsc::error::SendError(Msg::Entry(e))) = self.tx.send(Msg::Entry(e)).await {
            // The writer is gone (the runtime is shutting down): keep the entry in the logs.
            tracing::error!(entry = ?e, "access log writer stopped; entry kept only here");
        }
    }

    /// Returns once every entry recorded before the call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(db: DatabaseConnection, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = vec![];
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Entry(e) => batch.push(e),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            write_with_retries(&db, &batch).await;
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write_with_retries(db: &DatabaseConnection, batch: &[Entry]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match write(db, batch).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(attempt, error = %format!("{e:#}"), entries = batch.len(), "access log write failed");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
    for e in batch {
        tracing::error!(entry = ?e, "access log entry could not be written");
    }
}

async fn write(db: &DatabaseConnection, batch: &[Entry]) -> anyhow::Result<()> {
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to begin the access log transaction")?;
    // Two statements a batch, whatever its size. One INSERT numbers its rows in the order of
    // its VALUES, so the ids it returns, ascending, are the entries' in order.
    let mut ids = access_log::Entity::insert_many(batch.iter().map(|e| access_log::ActiveModel {
        at: Set(e.at),
        subject: Set(e.subject.clone()),
        role: Set(e.role.map(Into::into)),
        organisation_id: Set(e.organisation_id),
        operation: Set(e.operation.clone()),
        refused: Set(e.refused),
        ..Default::default()
    }))
    .exec_with_returning_keys(&txn)
    .await
    .context("Failed to record the access log entries")?;
    ids.sort_unstable();
    anyhow::ensure!(
        ids.len() == batch.len(),
        "the access log insert returned {} ids for {} entries",
        ids.len(),
        batch.len()
    );
    let networks: Vec<access_log_networks::ActiveModel> = batch
        .iter()
        .zip(&ids)
        .flat_map(|(e, &id)| {
            e.networks
                .iter()
                .map(move |&n| access_log_networks::ActiveModel {
                    entry_id: Set(id),
                    network_id: Set(n),
                })
        })
        .collect();
    for chunk in networks.chunks(1000) {
        access_log_networks::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await
            .context("Failed to record the networks of the access log entries")?;
    }
    txn.commit()
        .await
        .context("Failed to commit the access log entries")
}

/// A page of the entries touching `network_id`, newest first.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    network_id: i64,
    p: PageArgs,
) -> ApiResult<Page<access_log::Model>> {
    let after = match p.after {
        Some(after) => Sql::format(" AND l.id < {}", [Sql::value(after)]),
        None => Sql::default(),
    };
    let statement = Sql::format(
        "SELECT l.* FROM access_log l JOIN access_log_networks n ON n.entry_id = l.id \
         WHERE n.network_id = {}{} ORDER BY l.id DESC LIMIT {}",
        [
            Sql::value(network_id),
            after,
            Sql::value(i64::try_from(p.first + 1).unwrap_or(101)),
        ],
    );
    let rows = access_log::Model::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read a page of the access log")?;
    Ok(Page::from_overfetch(rows, p.first as usize))
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

pub async fn count<C: ConnectionTrait>(db: &C, network_id: i64) -> ApiResult<u64> {
    let statement = Sql::format(
        "SELECT COUNT(*) AS n FROM access_log_networks WHERE network_id = {}",
        [Sql::value(network_id)],
    );
    let row = Count::find_by_statement(statement.statement(db.get_database_backend()))
        .one(db)
        .await
        .context("Failed to count the access log")?;
    Ok(row.map(|c| u64::try_from(c.n).unwrap_or(0)).unwrap_or(0))
}

#[derive(FromQueryResult)]
struct EntryNetwork {
    entry_id: i64,
    network_id: i64,
}

/// The networks of each entry, in one statement.
pub async fn networks_of<C: ConnectionTrait>(
    db: &C,
    entry_ids: &[i64],
) -> ApiResult<std::collections::HashMap<i64, Vec<i64>>> {
    let mut out: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    if entry_ids.is_empty() {
        return Ok(out);
    }
    let statement = Sql::format(
        "SELECT entry_id, network_id FROM access_log_networks WHERE entry_id IN ({}) \
         ORDER BY entry_id, network_id",
        [Sql::list(entry_ids.iter().copied())],
    );
    let rows = EntryNetwork::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read the access log's networks")?;
    for r in rows {
        out.entry(r.entry_id).or_default().push(r.network_id);
    }
    Ok(out)
}
