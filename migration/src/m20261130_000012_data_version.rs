//! A counter that every committed change to the data readers see moves forward (issue 13):
//! the response cache keeps an answer only while the counter stands where it stood when the
//! answer was made, so a write through any path (the API, the console, an operator's own SQL)
//! ends every cached answer, on every instance sharing the database. Triggers move it, so no
//! code path can forget to: statement-level on PostgreSQL, row-level on SQLite (which has no
//! other kind). The access log, tokens (checked on every request anyway), import jobs and the
//! spend import's staging rows do not move it: reads would otherwise end their own answers.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000012_data_version"
    }
}

/// The tables whose changes move the counter. A new table readers see must be added here
/// (in a later migration): a test checks that every table but [`UNTRACKED`] has the trigger.
pub const TRACKED: [&str; 26] = [
    "cell_decisions",
    "disclosure_keys",
    "disclosure_thresholds",
    "equivalences",
    "geographies",
    "grant_events",
    "grant_metric_groups",
    "grants",
    "institution_identifiers",
    "institutions",
    "lsoa_deprivation",
    "memberships",
    "metrics",
    "network_districts",
    "networks",
    "organisations",
    "postcodes",
    "region_districts",
    "regions",
    "released_cells",
    "return_values",
    "returns",
    "spend_files",
    "spend_lines",
    "stewardships",
    "submission_batches",
];

/// The tables whose changes do not move it, and why (above).
pub const UNTRACKED: [&str; 7] = [
    "access_log",
    "access_log_networks",
    "data_version",
    "import_jobs",
    "seaql_migrations",
    "spend_staging",
    "tokens",
];

/// SQLite's triggers on a tracked table (a later migration that rebuilds a table makes them
/// again).
pub fn sqlite_triggers(t: &str) -> Vec<String> {
    ["INSERT", "UPDATE", "DELETE"]
        .into_iter()
        .map(|op| {
            format!(
                "CREATE TRIGGER {t}_data_version_{} AFTER {op} ON {t} \
                 BEGIN UPDATE data_version SET version = version + 1 WHERE id = 1; END",
                op.to_lowercase()
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE TABLE data_version (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
        )
        .await?;
        db.execute_unprepared("INSERT INTO data_version (id, version) VALUES (1, 0)")
            .await?;
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION anchorfed_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN UPDATE data_version SET version = version + 1 WHERE id = 1; RETURN NULL; END $$",
                )
                .await?;
                for t in TRACKED {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {t}_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE \
                         ON {t} FOR EACH STATEMENT EXECUTE FUNCTION anchorfed_data_changed()"
                    ))
                    .await?;
                }
            }
            _ => {
                for t in TRACKED {
                    for sql in sqlite_triggers(t) {
                        db.execute_unprepared(&sql).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                for t in TRACKED {
                    db.execute_unprepared(&format!("DROP TRIGGER {t}_data_version ON {t}"))
                        .await?;
                }
                db.execute_unprepared("DROP FUNCTION anchorfed_data_changed()")
                    .await?;
            }
            _ => {
                for t in TRACKED {
                    for op in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!("DROP TRIGGER {t}_data_version_{op}"))
                            .await?;
                    }
                }
            }
        }
        db.execute_unprepared("DROP TABLE data_version").await?;
        Ok(())
    }
}
