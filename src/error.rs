//! The error policy.
//!
//! - Service functions return `ApiError`. A database error becomes `Internal` through `?`;
//!   a write that can meet a concurrent duplicate says so at the call, with
//!   `.conflict_on_unique(..)`, and only there is a unique violation the client's `CONFLICT`.
//! - GraphQL resolvers turn an `ApiError` into an `async_graphql::Error` through `From` below:
//!   the client's message and `extensions.code` (API.md's list), with the `ApiError` kept as the
//!   error's source. Clients see what they did wrong, never how the service is built: internal
//!   errors say only "internal error".
//! - The HTTP handler, once a request has run, calls [`report`]: the one place the cause of an
//!   internal error (and the reason for a refusal) is logged, once, with the request id, and
//!   where an `INTERNAL` error gets `extensions.requestId`, the reference an operator looks up
//!   in the log (`request_id` on every line of the request).
//! - The database being out of reach (a connection refused or lost, the pool timing out) is
//!   not a bug: such an error becomes `Unavailable` wherever it passes through `?` (see
//!   [`is_unavailable`]), the client is told `UNAVAILABLE`, and the HTTP handler answers 503
//!   with `Retry-After`, so clients and load balancers can tell an outage from a fault and come
//!   back. Every other database error stays `Internal`.
//! - Outside GraphQL (the command line, start-up) an `ApiError` becomes an `anyhow::Error`
//!   ([`ApiError::into_anyhow`]) that keeps an internal error's cause chain.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, ServerError};

///
/// `ApiError` deliberately has no `Display`: async-graphql converts anything displayable into
/// an error without a code, and this way `?` in a resolver always goes through `From` below.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated(String),
    /// The reason goes to the log; the client learns only that it may not.
    Forbidden {
        reason: String,
    },
    BadUserInput {
        field: String,
        reason: String,
    },
    NotFound(String),
    Conflict(String),
    /// The database could not be reached; the cause goes to the log.
    Unavailable(anyhow::Error),
    Internal(anyhow::Error),
}

/// How long a client is asked to wait after `UNAVAILABLE` (`Retry-After`, in seconds).
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if is_unavailable(&e) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

/// Whether an error, anywhere in its chain, says the database is out of reach rather than
/// that a statement failed: no connection could be had (refused, timed out, the pool closed),
/// or the one in use was lost or its server is shutting down or starting.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sea_orm::DbErr>()
            .is_some_and(db_unavailable)
            || c.downcast_ref::<sea_orm::SqlxError>()
                .is_some_and(sqlx_unavailable)
    })
}

fn db_unavailable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e)
        }
        _ => false,
    }
}

fn sqlx_unavailable(e: &sea_orm::SqlxError) -> bool {
    use sea_orm::SqlxError;
    match e {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => true,
        // PostgreSQL's connection exceptions (class 08), a server shutting down or starting
        // (57P01-57P03), and no connection slots left (53300).
        SqlxError::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl ApiError {
    pub fn bad_input(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ApiError::BadUserInput {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::Forbidden { .. } => "you are not allowed to do this".into(),
            ApiError::BadUserInput { field, reason } => format!("{field}: {reason}"),
            ApiError::NotFound(what) => format!("{what} was not found"),
            ApiError::Unavailable(_) => {
                format!("the database is unavailable; try again in {RETRY_AFTER_SECONDS} seconds")
            }
            ApiError::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden { .. } => "FORBIDDEN",
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// For the console and start-up, where the reader runs the service: an internal error is
    /// its cause with the whole chain, a refusal says why, anything else is its message.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => cause,
            ApiError::Forbidden { reason } => anyhow::anyhow!("not allowed: {reason}"),
            other => anyhow::anyhow!(other.message()),
        }
    }
}

impl From<ApiError> for anyhow::Error {
    fn from(e: ApiError) -> Self {
        e.into_anyhow()
    }
}

impl From<sea_orm::DbErr> for ApiError {
    /// Every database error is ours, unique violations included: a write that expects a
    /// concurrent duplicate says so with `conflict_on_unique`. One that says the database is
    /// out of reach is an outage.
    fn from(e: sea_orm::DbErr) -> Self {
        anyhow::Error::new(e)
            .context("database operation failed")
            .into()
    }
}

/// For the writes that check for a duplicate first and then insert: a unique violation there
/// is a concurrent write that got in between, which is the client's conflict, not our fault.
pub trait ConflictOnUnique<T> {
    /// A unique violation becomes `CONFLICT` ("`what` already exists …"); any other database
    /// error stays internal.
    fn conflict_on_unique(self, what: &str) -> ApiResult<T>;
}

impl<T> ConflictOnUnique<T> for Result<T, sea_orm::DbErr> {
    fn conflict_on_unique(self, what: &str) -> ApiResult<T> {
        self.map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)) => {
                tracing::info!(conflict.detail = %detail, "concurrent duplicate refused");
                ApiError::Conflict(format!(
                    "{what} already exists (written concurrently); read it and retry"
                ))
            }
            _ => e.into(),
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        let code = e.code();
        let field = match &e {
            ApiError::BadUserInput { field, .. } => Some(field.clone()),
            _ => None,
        };
        let mut error = async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(f) = &field {
                ext.set("field", f.as_str());
            }
        });
        // Kept for `report`, which logs what the client is not told.
        error.source = Some(Arc::new(e));
        error
    }
}

/// Logs what the client was not told about a request's errors, once per error (an error a
/// DataLoader shared between fields counts once), with the request id; and gives every
/// `INTERNAL` error `extensions.requestId`. Errors that async-graphql raised itself and coded
/// `INTERNAL` have no cause to log beyond their message.
pub fn report(errors: &mut [ServerError], request_id: Option<&str>) {
    let request_id = request_id.unwrap_or("none");
    let mut seen: Vec<*const ()> = Vec::new();
    for e in errors {
        let internal = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some_and(|c| *c == async_graphql::Value::from("INTERNAL"));
        if internal {
            e.extensions
                .get_or_insert_with(Default::default)
                .set("requestId", request_id);
        }
        let source = e.source.as_ref();
        if let Some(s) = source {
            let at = Arc::as_ptr(s) as *const ();
            if seen.contains(&at) {
                continue;
            }
            seen.push(at);
        }
        let path = format!("{:?}", e.path);
        match source.and_then(|s| s.downcast_ref::<ApiError>()) {
            Some(ApiError::Internal(cause)) => {
                tracing::error!(request_id, graphql.path = %path, error.cause_chain = ?cause, "internal error");
            }
            Some(ApiError::Unavailable(cause)) => {
                tracing::warn!(request_id, graphql.path = %path, error.cause_chain = ?cause, "database unavailable");
            }
            Some(ApiError::Forbidden { reason }) => {
                tracing::info!(request_id, graphql.path = %path, refusal.reason = %reason, "refused");
            }
            _ if internal => {
                tracing::error!(request_id, graphql.path = %path, error.message = %e.message, "internal error");
            }
            _ => {}
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use anyhow::Context;
    use sea_orm::{ConnectionTrait, Database};

    use super::*;

    /// A log writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(f: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn server_error(e: ApiError) -> ServerError {
        async_graphql::Error::from(e).into_server_error(async_graphql::Pos::default())
    }

    #[test]
    fn an_internal_error_is_logged_once_with_its_cause_and_request_id() {
        let cause = Err::<(), _>(anyhow::anyhow!("disk on fire"))
            .context("Failed to read the region")
            .unwrap_err();
        let e = server_error(ApiError::Internal(cause));
        assert_eq!(e.message, "internal error");
        // The same error reaching two fields (a DataLoader's) is one cause, logged once.
        let mut errors = vec![e.clone(), e, server_error(ApiError::NotFound("x".into()))];
        let log = logged(|| report(&mut errors, Some("req-1")));
        assert_eq!(log.matches("internal error").count(), 1, "{log}");
        assert!(log.contains("req-1"), "{log}");
        assert!(log.contains("Failed to read the region"), "{log}");
        assert!(log.contains("disk on fire"), "{log}");
        let ext = |e: &ServerError, k: &str| e.extensions.as_ref().and_then(|x| x.get(k)).cloned();
        assert_eq!(ext(&errors[0], "requestId"), Some("req-1".into()));
        assert_eq!(ext(&errors[1], "requestId"), Some("req-1".into()));
        assert_eq!(ext(&errors[2], "requestId"), None);
        assert_eq!(ext(&errors[2], "code"), Some("NOT_FOUND".into()));
    }

    #[test]
    fn a_refusal_logs_its_reason_and_tells_the_client_nothing() {
        let mut errors = vec![server_error(ApiError::Forbidden {
            reason: "not the steward".into(),
        })];
        let log = logged(|| report(&mut errors, Some("req-2")));
        assert!(
            log.contains("not the steward") && log.contains("req-2"),
            "{log}"
        );
        assert_eq!(errors[0].message, "you are not allowed to do this");
        let json = serde_json::to_string(&errors[0]).unwrap_or_default();
        assert!(
            !json.contains("steward") && !json.contains("requestId"),
            "{json}"
        );
    }

    #[test]
    fn outside_graphql_an_internal_error_keeps_its_cause() {
        let cause = Err::<(), _>(anyhow::anyhow!("disk on fire"))
            .context("Failed to read the region")
            .unwrap_err();
        let e = ApiError::Internal(cause).into_anyhow();
        assert_eq!(format!("{e:#}"), "Failed to read the region: disk on fire");
        let e = anyhow::Error::from(ApiError::bad_input("--ttl", "too long"));
        assert_eq!(format!("{e:#}"), "--ttl: too long");
    }

    #[tokio::test]
    async fn a_database_out_of_reach_is_unavailable_and_a_bad_statement_internal() {
        // Nothing listens on port 1: the pool retries the refused connection until its
        // acquire timeout, as it would with PostgreSQL stopped.
        let mut opts = sea_orm::ConnectOptions::new("postgres://nobody@127.0.0.1:1/none");
        opts.connect_lazy(true)
            .acquire_timeout(std::time::Duration::from_millis(500));
        let db = Database::connect(opts).await.unwrap();
        let e = Err::<(), _>(db.execute_unprepared("SELECT 1").await.unwrap_err())
            .context("Failed to read the region")
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!(e.code(), "UNAVAILABLE", "{e:?}");
        assert!(e.message().contains("unavailable"), "{}", e.message());
        let e = ApiError::from(sea_orm::DbErr::ConnectionAcquire(
            sea_orm::ConnAcquireErr::Timeout,
        ));
        assert_eq!(e.code(), "UNAVAILABLE");
        let mut errors = vec![server_error(e)];
        let log = logged(|| report(&mut errors, Some("req-3")));
        assert!(
            log.contains("database unavailable") && log.contains("req-3"),
            "{log}"
        );
        // A statement the database refuses is a fault, not an outage.
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let e = ApiError::from(
            db.execute_unprepared("SELECT * FROM nowhere")
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), "INTERNAL");
    }

    async fn duplicate_insert() -> sea_orm::DbErr {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a');")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO t VALUES ('a')")
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_unique_violation_is_a_conflict_only_where_one_is_expected() {
        let e = ApiError::from(duplicate_insert().await);
        assert_eq!(e.code(), "INTERNAL");
        let e = Err::<(), _>(duplicate_insert().await)
            .conflict_on_unique("region E47000007")
            .unwrap_err();
        assert_eq!(e.code(), "CONFLICT");
        assert!(e.message().starts_with("region E47000007 already exists"));
        // Other database errors stay internal.
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let e = Err::<(), _>(
            db.execute_unprepared("SELECT * FROM nowhere")
                .await
                .unwrap_err(),
        )
        .conflict_on_unique("x")
        .unwrap_err();
        assert_eq!(e.code(), "INTERNAL");
    }
}
