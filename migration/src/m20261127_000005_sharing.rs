//! Network-controlled sharing: grants (rule 3) with the agreements they rest on and every change
//! to them, stewards' disclosure thresholds, the access log, and each institution's secret
//! record key for cell-key perturbation.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    NetworkId,
    /// `REGION`, `ORGANISATION` or `PUBLIC`.
    GranteeKind,
    GranteeRegion,
    GranteeOrganisationId,
    /// `AGGREGATE` or `DETAIL`.
    Level,
    /// `,SPEND,EMISSIONS,`: each group between commas, so SQL can match one with `LIKE`.
    MetricGroups,
    FromYear,
    ToYear,
    ExpiresAt,
    AgreementReference,
    LawfulBasis,
    Purpose,
    ReviewDate,
    CreatedAt,
    CreatedBy,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
enum GrantEvents {
    Table,
    Id,
    GrantId,
    /// `GRANTED` or `REVOKED`.
    Action,
    At,
    By,
    /// The grant as it stood after the change, as JSON.
    Detail,
}

#[derive(DeriveIden)]
enum DisclosureThresholds {
    Table,
    NetworkId,
    MinContributors,
    DominancePercent,
    PeopleCountMin,
    PeopleCountRound,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum AccessLog {
    Table,
    Id,
    At,
    Subject,
    Role,
    OrganisationId,
    Operation,
    Refused,
}

#[derive(DeriveIden)]
enum AccessLogNetworks {
    Table,
    EntryId,
    NetworkId,
}

#[derive(DeriveIden)]
enum Networks {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Institutions {
    Table,
    RecordKey,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Institutions::Table)
                .add_column(
                    ColumnDef::new(Institutions::RecordKey)
                        .small_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        // Existing institutions draw their secret record keys here; new ones on insert.
        let fill = match m.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE institutions SET record_key = CAST(floor(random() * 256) AS SMALLINT)"
            }
            _ => "UPDATE institutions SET record_key = abs(random()) % 256",
        };
        m.get_connection().execute_unprepared(fill).await?;
        m.create_table(
            Table::create()
                .table(Grants::Table)
                .col(
                    ColumnDef::new(Grants::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Grants::NetworkId).big_integer().not_null())
                .col(
                    ColumnDef::new(Grants::GranteeKind)
                        .string_len(16)
                        .not_null(),
                )
                .col(ColumnDef::new(Grants::GranteeRegion).string_len(9).null())
                .col(
                    ColumnDef::new(Grants::GranteeOrganisationId)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(Grants::Level).string_len(16).not_null())
                .col(
                    ColumnDef::new(Grants::MetricGroups)
                        .string_len(80)
                        .not_null(),
                )
                .col(ColumnDef::new(Grants::FromYear).string_len(7).not_null())
                .col(ColumnDef::new(Grants::ToYear).string_len(7).not_null())
                .col(
                    ColumnDef::new(Grants::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Grants::AgreementReference)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(Grants::LawfulBasis).text().not_null())
                .col(ColumnDef::new(Grants::Purpose).text().not_null())
                .col(ColumnDef::new(Grants::ReviewDate).date().not_null())
                .col(
                    ColumnDef::new(Grants::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Grants::CreatedBy).string().not_null())
                .col(
                    ColumnDef::new(Grants::RevokedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Grants::RevokedBy).string().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Grants::Table, Grants::NetworkId)
                        .to(Networks::Table, Networks::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Grants::Table, Grants::GranteeOrganisationId)
                        .to(Organisations::Table, Organisations::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_grants_network")
                .table(Grants::Table)
                .col(Grants::NetworkId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GrantEvents::Table)
                .col(
                    ColumnDef::new(GrantEvents::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(GrantEvents::GrantId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(GrantEvents::Action)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(GrantEvents::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(GrantEvents::By).string().not_null())
                .col(ColumnDef::new(GrantEvents::Detail).text().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(GrantEvents::Table, GrantEvents::GrantId)
                        .to(Grants::Table, Grants::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_grant_events_grant")
                .table(GrantEvents::Table)
                .col(GrantEvents::GrantId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DisclosureThresholds::Table)
                .col(
                    ColumnDef::new(DisclosureThresholds::NetworkId)
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::MinContributors)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::DominancePercent)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::PeopleCountMin)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::PeopleCountRound)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DisclosureThresholds::UpdatedBy)
                        .string()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(DisclosureThresholds::Table, DisclosureThresholds::NetworkId)
                        .to(Networks::Table, Networks::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AccessLog::Table)
                .col(
                    ColumnDef::new(AccessLog::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AccessLog::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(AccessLog::Subject).string().null())
                .col(ColumnDef::new(AccessLog::Role).string_len(32).null())
                .col(
                    ColumnDef::new(AccessLog::OrganisationId)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(AccessLog::Operation).string().not_null())
                .col(ColumnDef::new(AccessLog::Refused).boolean().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AccessLogNetworks::Table)
                .col(
                    ColumnDef::new(AccessLogNetworks::EntryId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AccessLogNetworks::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(AccessLogNetworks::EntryId)
                        .col(AccessLogNetworks::NetworkId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(AccessLogNetworks::Table, AccessLogNetworks::EntryId)
                        .to(AccessLog::Table, AccessLog::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_access_log_networks_network")
                .table(AccessLogNetworks::Table)
                .col(AccessLogNetworks::NetworkId)
                .col(AccessLogNetworks::EntryId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AccessLogNetworks::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(AccessLog::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(DisclosureThresholds::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(GrantEvents::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Grants::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Institutions::Table)
                .drop_column(Institutions::RecordKey)
                .to_owned(),
        )
        .await
    }
}
