use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};

use crate::both_databases;
use crate::helpers::{Backend, fresh_database_url};

async fn tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect()
}

/// Every migration goes up, all the way down, and up again, leaving the same tables.
async fn up_down_up(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(fresh_database_url(backend, dir.path()).await)
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let first = tables(&db).await;
    assert!(first.contains(&"institutions".to_owned()), "{first:?}");
    Migrator::down(&db, None).await.unwrap();
    let empty = tables(&db).await;
    assert_eq!(
        empty,
        vec!["seaql_migrations".to_owned()],
        "down must drop every table"
    );
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(tables(&db).await, first);
}

both_databases!(up_down_up);
