//! Supplier spend lines, in versions like returns: each file accepted for an institution and
//! period is one `spend_files` row (a version) with its `spend_lines`; the import jobs that
//! bring them in; and the staging table files stream into before they are switched in, in one
//! transaction, all or nothing.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000011_spend_lines"
    }
}

#[derive(DeriveIden)]
enum SpendFiles {
    Table,
    Id,
    InstitutionId,
    Period,
    Version,
    Sha256,
    Lines,
    Total,
    PlaceUnknownLines,
    PlaceUnknownTotal,
    SubmittedAt,
    SubmittedBy,
}

#[derive(DeriveIden)]
enum SpendLines {
    Table,
    Id,
    FileId,
    DistrictCode,
    LsoaCode,
    Place,
}

#[derive(DeriveIden)]
enum SpendStaging {
    Table,
    JobId,
}

/// A line's columns as the file gives them, in `spend_lines` and `spend_staging` alike.
#[derive(DeriveIden)]
enum AsGiven {
    Line,
    Supplier,
    SupplierId,
    Postcode,
    GivenDistrict,
    Amount,
    Category,
    Sme,
    Vcse,
    SoleTrader,
    Anchor,
}

#[derive(DeriveIden)]
enum ImportJobs {
    Table,
    Id,
    Kind,
    State,
    NetworkId,
    InstitutionId,
    Period,
    RowsRead,
    RowsRejected,
    Problems,
    Failure,
    SpendFileId,
    Replayed,
    PlaceUnknown,
    Sha256,
    CreatedBy,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Institutions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Networks {
    Table,
    Id,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn flag<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().to_owned()
}

/// Adds the columns of a line as given.
fn given(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(ColumnDef::new(AsGiven::Line).integer().not_null())
        .col(ColumnDef::new(AsGiven::Supplier).text().not_null())
        .col(
            ColumnDef::new(AsGiven::SupplierId)
                .string_len(100)
                .not_null(),
        )
        .col(ColumnDef::new(AsGiven::Postcode).string_len(8).null())
        .col(ColumnDef::new(AsGiven::GivenDistrict).string_len(9).null())
        .col(ColumnDef::new(AsGiven::Amount).big_integer().not_null())
        .col(ColumnDef::new(AsGiven::Category).string_len(200).null())
        .col(flag(AsGiven::Sme))
        .col(flag(AsGiven::Vcse))
        .col(flag(AsGiven::SoleTrader))
        .col(flag(AsGiven::Anchor))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SpendFiles::Table)
                .col(id_col(SpendFiles::Id))
                .col(
                    ColumnDef::new(SpendFiles::InstitutionId)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(SpendFiles::Period).string_len(7).not_null())
                .col(ColumnDef::new(SpendFiles::Version).integer().not_null())
                .col(ColumnDef::new(SpendFiles::Sha256).string_len(64).not_null())
                .col(ColumnDef::new(SpendFiles::Lines).big_integer().not_null())
                .col(ColumnDef::new(SpendFiles::Total).big_integer().not_null())
                .col(
                    ColumnDef::new(SpendFiles::PlaceUnknownLines)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SpendFiles::PlaceUnknownTotal)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SpendFiles::SubmittedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(SpendFiles::SubmittedBy).string().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(SpendFiles::Table, SpendFiles::InstitutionId)
                        .to(Institutions::Table, Institutions::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_spend_files_version")
                .table(SpendFiles::Table)
                .col(SpendFiles::InstitutionId)
                .col(SpendFiles::Period)
                .col(SpendFiles::Version)
                .unique()
                .to_owned(),
        )
        .await?;
        // The same file for the same institution and period is written once.
        m.create_index(
            Index::create()
                .name("ux_spend_files_sha256")
                .table(SpendFiles::Table)
                .col(SpendFiles::InstitutionId)
                .col(SpendFiles::Period)
                .col(SpendFiles::Sha256)
                .unique()
                .to_owned(),
        )
        .await?;

        // The large table. `file_id` has no foreign key on purpose: a file's lines are
        // written only by the statement that switches the file in, in the transaction that
        // inserts the file, and a key would check every one of millions of rows again.
        m.create_table(
            given(
                Table::create()
                    .table(SpendLines::Table)
                    .col(id_col(SpendLines::Id))
                    .col(ColumnDef::new(SpendLines::FileId).big_integer().not_null()),
            )
            .col(
                ColumnDef::new(SpendLines::DistrictCode)
                    .string_len(9)
                    .null(),
            )
            .col(ColumnDef::new(SpendLines::LsoaCode).string_len(9).null())
            .col(ColumnDef::new(SpendLines::Place).string_len(8).not_null())
            .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_spend_lines_file")
                .table(SpendLines::Table)
                .col(SpendLines::FileId)
                .to_owned(),
        )
        .await?;

        // Rows of files being read, by job: never read by the API, emptied when a job is
        // switched in or fails. No index: a switch reads all of its job's rows, and the table
        // holds only the jobs in flight.
        m.create_table(
            given(
                Table::create().table(SpendStaging::Table).col(
                    ColumnDef::new(SpendStaging::JobId)
                        .string_len(36)
                        .not_null(),
                ),
            )
            .to_owned(),
        )
        .await?;
        if m.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            // Staged rows need no write-ahead log: a crash loses only rows no one reads, and
            // the job that wrote them is marked failed when the service starts again.
            m.get_connection()
                .execute_unprepared("ALTER TABLE spend_staging SET UNLOGGED")
                .await?;
        }

        m.create_table(
            Table::create()
                .table(ImportJobs::Table)
                .col(
                    ColumnDef::new(ImportJobs::Id)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(ImportJobs::Kind).string_len(16).not_null())
                .col(ColumnDef::new(ImportJobs::State).string_len(16).not_null())
                .col(
                    ColumnDef::new(ImportJobs::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ImportJobs::InstitutionId)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(ImportJobs::Period).string_len(7).null())
                .col(
                    ColumnDef::new(ImportJobs::RowsRead)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(ImportJobs::RowsRejected)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                // JSON: the first problems, each with its line, column and reason.
                .col(ColumnDef::new(ImportJobs::Problems).text().not_null())
                .col(ColumnDef::new(ImportJobs::Failure).text().null())
                .col(ColumnDef::new(ImportJobs::SpendFileId).big_integer().null())
                .col(
                    ColumnDef::new(ImportJobs::Replayed)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                // JSON: the first lines whose place is unknown, and why.
                .col(ColumnDef::new(ImportJobs::PlaceUnknown).text().not_null())
                .col(ColumnDef::new(ImportJobs::Sha256).string_len(64).null())
                .col(ColumnDef::new(ImportJobs::CreatedBy).string().not_null())
                .col(
                    ColumnDef::new(ImportJobs::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ImportJobs::FinishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ImportJobs::Table, ImportJobs::NetworkId)
                        .to(Networks::Table, Networks::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ImportJobs::Table, ImportJobs::InstitutionId)
                        .to(Institutions::Table, Institutions::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ImportJobs::Table, ImportJobs::SpendFileId)
                        .to(SpendFiles::Table, SpendFiles::Id),
                )
                .to_owned(),
        )
        .await?;
        // The jobs still running, which a start-up looks for.
        m.create_index(
            Index::create()
                .name("ix_import_jobs_state")
                .table(ImportJobs::Table)
                .col(ImportJobs::State)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ImportJobs::Table.into_iden(),
            SpendStaging::Table.into_iden(),
            SpendLines::Table.into_iden(),
            SpendFiles::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
