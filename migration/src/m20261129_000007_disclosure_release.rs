//! What disclosure control needs to remember (docs/access.md, "Disclosure control"):
//! the secret its noise is drawn with, shared by every node of one deployment because it lives
//! with the data, and every released aggregate-only cell's contributor set per audience, so a
//! later cell that differs from one already released by too few contributors is withheld.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000007_disclosure_release"
    }
}

#[derive(DeriveIden)]
enum DisclosureKeys {
    Table,
    Id,
    Secret,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReleasedCells {
    Table,
    Id,
    Audience,
    Metric,
    Breakdown,
    Period,
    Size,
    Digest,
    Members,
    ReleasedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DisclosureKeys::Table)
                .col(
                    ColumnDef::new(DisclosureKeys::Id)
                        .integer()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DisclosureKeys::Secret)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureKeys::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ReleasedCells::Table)
                .col(
                    ColumnDef::new(ReleasedCells::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ReleasedCells::Audience)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReleasedCells::Metric)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReleasedCells::Breakdown)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReleasedCells::Period)
                        .string_len(8)
                        .not_null(),
                )
                .col(ColumnDef::new(ReleasedCells::Size).integer().not_null())
                .col(
                    ColumnDef::new(ReleasedCells::Digest)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(ReleasedCells::Members).text().not_null())
                .col(
                    ColumnDef::new(ReleasedCells::ReleasedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("released_cells_once")
                .table(ReleasedCells::Table)
                .col(ReleasedCells::Audience)
                .col(ReleasedCells::Metric)
                .col(ReleasedCells::Breakdown)
                .col(ReleasedCells::Period)
                .col(ReleasedCells::Digest)
                .unique()
                .to_owned(),
        )
        .await?;
        // The guard's lookup: same metric and period, a size close to the new cell's.
        m.create_index(
            Index::create()
                .name("released_cells_by_size")
                .table(ReleasedCells::Table)
                .col(ReleasedCells::Metric)
                .col(ReleasedCells::Period)
                .col(ReleasedCells::Size)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ReleasedCells::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(DisclosureKeys::Table).to_owned())
            .await
    }
}
