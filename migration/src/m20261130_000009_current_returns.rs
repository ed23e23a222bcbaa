//! Which version of each return is current now, kept beside the versions (issue 13): for
//! readers in the steward network, the latest not rejected (`current_steward`); for everyone
//! else, the latest published (`current_published`). Reads of the present look the flag up
//! in a partial index instead of finding `MAX(version)` for every return they consider; reads
//! `asOf` an earlier instant still work it out. Every write of a return sets the flags of its
//! institution and period in the same transaction (`returns::current::refresh`).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000009_current_returns"
    }
}

#[derive(DeriveIden)]
enum Returns {
    Table,
    CurrentSteward,
    CurrentPublished,
}

/// Sets both flags of every return from their definitions (the backfill, and what
/// `returns::current::refresh` does for one institution and period).
pub const REFRESH_ALL: [&str; 2] = [
    "UPDATE returns SET current_steward = (status <> 'REJECTED' AND version = \
       (SELECT MAX(r2.version) FROM returns r2 WHERE r2.institution_id = returns.institution_id \
          AND r2.period = returns.period AND r2.status <> 'REJECTED'))",
    "UPDATE returns SET current_published = (published_at IS NOT NULL AND version = \
       (SELECT MAX(r2.version) FROM returns r2 WHERE r2.institution_id = returns.institution_id \
          AND r2.period = returns.period AND r2.published_at IS NOT NULL))",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Returns::CurrentSteward, Returns::CurrentPublished] {
            m.alter_table(
                Table::alter()
                    .table(Returns::Table)
                    .add_column(ColumnDef::new(column).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await?;
        }
        let db = m.get_connection();
        for sql in REFRESH_ALL {
            db.execute_unprepared(sql).await?;
        }
        // Partial indexes: the current versions only, by period and institution (both
        // backends take `WHERE` on an index).
        db.execute_unprepared(
            "CREATE INDEX ix_returns_current_steward ON returns (period, institution_id) \
             WHERE current_steward",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_returns_current_published ON returns (period, institution_id) \
             WHERE current_published",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX ix_returns_current_published")
            .await?;
        db.execute_unprepared("DROP INDEX ix_returns_current_steward")
            .await?;
        for column in [Returns::CurrentPublished, Returns::CurrentSteward] {
            m.alter_table(
                Table::alter()
                    .table(Returns::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
