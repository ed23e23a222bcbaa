//! Issued tokens. A token string is shown once and never stored: its signature proves it,
//! and this row (by its `jti`) says whether it is still good, so revocation is immediate.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    Subject,
    Role,
    NetworkId,
    RegionCode,
    OrganisationId,
    Scopes,
    IssuedBy,
    IssuedAt,
    ExpiresAt,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
enum Networks {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tokens::Table)
                .col(
                    ColumnDef::new(Tokens::Id)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Tokens::Subject).string().not_null())
                .col(ColumnDef::new(Tokens::Role).string_len(32).not_null())
                .col(ColumnDef::new(Tokens::NetworkId).big_integer().null())
                .col(ColumnDef::new(Tokens::RegionCode).string_len(9).null())
                .col(ColumnDef::new(Tokens::OrganisationId).big_integer().null())
                .col(ColumnDef::new(Tokens::Scopes).text().null())
                .col(ColumnDef::new(Tokens::IssuedBy).string().not_null())
                .col(
                    ColumnDef::new(Tokens::IssuedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Tokens::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Tokens::RevokedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Tokens::RevokedBy).string().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Tokens::Table, Tokens::NetworkId)
                        .to(Networks::Table, Networks::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Tokens::Table, Tokens::OrganisationId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_tokens_network")
                .table(Tokens::Table)
                .col(Tokens::NetworkId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Tokens::Table).to_owned())
            .await
    }
}
