//! The only way the database schema changes. Each migration has a working `down()`,
//! and `tests/migrations.rs` runs them up, down and up again on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_directory;
mod m20261127_000002_tokens;
mod m20261127_000003_returns;
mod m20261127_000004_equivalences;
mod m20261127_000005_sharing;
mod m20261129_000006_grant_metric_groups;
mod m20261129_000007_disclosure_release;
mod m20261130_000008_cell_decisions;
pub mod m20261130_000009_current_returns;
mod m20261130_000010_postcodes;
mod m20261130_000011_spend_lines;
pub mod m20261130_000012_data_version;
mod m20261130_000013_spend_lines_key;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_directory::Migration),
            Box::new(m20261127_000002_tokens::Migration),
            Box::new(m20261127_000003_returns::Migration),
            Box::new(m20261127_000004_equivalences::Migration),
            Box::new(m20261127_000005_sharing::Migration),
            Box::new(m20261129_000006_grant_metric_groups::Migration),
            Box::new(m20261129_000007_disclosure_release::Migration),
            Box::new(m20261130_000008_cell_decisions::Migration),
            Box::new(m20261130_000009_current_returns::Migration),
            Box::new(m20261130_000010_postcodes::Migration),
            Box::new(m20261130_000011_spend_lines::Migration),
            Box::new(m20261130_000012_data_version::Migration),
            Box::new(m20261130_000013_spend_lines_key::Migration),
        ]
    }
}
