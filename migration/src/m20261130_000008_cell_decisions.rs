//! The decisions disclosure control made on values (docs/access.md, "Disclosure control"):
//! whether a cell's aggregate-only contributors, at one place, passed the rules that look at
//! their values (dominance, small counts of people). A decision is made once per contributor
//! set and kept, so a network that varies values it controls cannot search for the point where
//! the decision flips; the number of sets decided at one place is bounded, so it cannot make
//! up for it by planting new sets without end.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000008_cell_decisions"
    }
}

#[derive(DeriveIden)]
enum CellDecisions {
    Table,
    Id,
    Metric,
    Breakdown,
    Period,
    Place,
    Digest,
    Shown,
    DecidedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CellDecisions::Table)
                .col(
                    ColumnDef::new(CellDecisions::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(CellDecisions::Metric)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(CellDecisions::Breakdown)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(CellDecisions::Period)
                        .string_len(8)
                        .not_null(),
                )
                .col(ColumnDef::new(CellDecisions::Place).text().not_null())
                .col(
                    ColumnDef::new(CellDecisions::Digest)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(CellDecisions::Shown).boolean().not_null())
                .col(
                    ColumnDef::new(CellDecisions::DecidedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        // One decision per contributor set at a place; also the lookup by place.
        m.create_index(
            Index::create()
                .name("cell_decisions_once")
                .table(CellDecisions::Table)
                .col(CellDecisions::Metric)
                .col(CellDecisions::Period)
                .col(CellDecisions::Breakdown)
                .col(CellDecisions::Place)
                .col(CellDecisions::Digest)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CellDecisions::Table).to_owned())
            .await
    }
}
