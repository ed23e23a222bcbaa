//! Equivalences that make totals tangible (land as football pitches). Data, not code: more
//! rows make more equivalences.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Equivalences {
    Table,
    Id,
    MetricCode,
    Name,
    Unit,
    Factor,
    Note,
}

#[derive(DeriveIden)]
enum Metrics {
    Table,
    Code,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Equivalences::Table)
                .col(
                    ColumnDef::new(Equivalences::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Equivalences::MetricCode)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(Equivalences::Name).string().not_null())
                .col(ColumnDef::new(Equivalences::Unit).string_len(64).not_null())
                .col(
                    ColumnDef::new(Equivalences::Factor)
                        .string_len(32)
                        .not_null(),
                )
                .col(ColumnDef::new(Equivalences::Note).text().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Equivalences::Table, Equivalences::MetricCode)
                        .to(Metrics::Table, Metrics::Code),
                )
                .to_owned(),
        )
        .await?;
        let insert = Query::insert()
            .into_table(Equivalences::Table)
            .columns([
                Equivalences::MetricCode,
                Equivalences::Name,
                Equivalences::Unit,
                Equivalences::Factor,
                Equivalences::Note,
            ])
            .values_panic([
                "land_owned".into(),
                "football pitches".into(),
                "pitches".into(),
                "0.714".into(),
                "A football pitch of 105 m by 68 m is about 0.714 hectares (the CLES guide's equivalence).".into(),
            ])
            .to_owned();
        m.exec_stmt(insert).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Equivalences::Table).to_owned())
            .await
    }
}
