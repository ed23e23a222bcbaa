//! One PostgreSQL connection, held by one task, that sea-orm's queries can run on.
//!
//! The spend import copies a file's lines with `COPY … FROM STDIN`, which sea-orm cannot
//! issue, and then switches the file in with sea-orm's entities and statements; for the
//! lines and the switch to be one transaction both must run on one connection. sea-orm's own
//! transactions live on its pool and do not lend their connection out, so this wraps a
//! connection taken out of the pool: `COPY` goes through [`Single::conn`], everything else
//! through [`ConnectionTrait`], and [`Single::begin`], [`Single::commit`] and
//! [`Single::rollback`] bound the transaction. Statements are bound as sea-orm binds them
//! (`sea-query-sqlx`'s values), so a statement means the same on the pool and here.

use sea_orm::sqlx::{self, Connection as _, Executor as _, postgres::PgConnection};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement, Values,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, MutexGuard};

pub struct Single {
    conn: Mutex<PgConnection>,
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.into()))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

fn query(stmt: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

impl Single {
    pub fn new(conn: PgConnection) -> Self {
        Self {
            conn: Mutex::new(conn),
        }
    }

    /// The connection itself, for what sea-orm cannot say (`COPY`).
    pub async fn conn(&self) -> MutexGuard<'_, PgConnection> {
        self.conn.lock().await
    }

    pub async fn begin(&self) -> Result<(), DbErr> {
        self.execute_unprepared("BEGIN").await.map(|_| ())
    }

    pub async fn commit(&self) -> Result<(), DbErr> {
        self.execute_unprepared("COMMIT").await.map(|_| ())
    }

    pub async fn rollback(&self) -> Result<(), DbErr> {
        self.execute_unprepared("ROLLBACK").await.map(|_| ())
    }

    /// Closes the connection (it never goes back to the pool: its session state is its own).
    pub async fn close(self) {
        if let Err(e) = self.conn.into_inner().close().await {
            tracing::warn!(error = %e, "closing a connection of its own failed; the server drops it");
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Single {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut conn = self.conn.lock().await;
        query(&stmt)
            .execute(&mut *conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut conn = self.conn.lock().await;
        conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        query(&stmt)
            .fetch_optional(&mut *conn)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        query(&stmt)
            .fetch_all(&mut *conn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
