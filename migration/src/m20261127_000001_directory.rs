//! The directory: geography, regions, networks, institutions, memberships over time,
//! stewardship history and registered organisations.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Geographies {
    Table,
    Code,
    Name,
    Kind,
    Vintage,
    ParentCode,
}

#[derive(DeriveIden)]
enum Regions {
    Table,
    Id,
    Code,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RegionDistricts {
    Table,
    RegionId,
    DistrictCode,
}

#[derive(DeriveIden)]
enum Networks {
    Table,
    Id,
    Key,
    Name,
    ShortName,
    RegionId,
    Established,
    Population,
    Model,
    MembershipRule,
    Governance,
    ImdRank,
    ImdRankOf,
    RequiresApproval,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NetworkDistricts {
    Table,
    NetworkId,
    DistrictCode,
}

#[derive(DeriveIden)]
enum Institutions {
    Table,
    Id,
    Key,
    Name,
    Sector,
    HomeDistrictCode,
    YearEndMonth,
    StewardNetworkId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InstitutionIdentifiers {
    Table,
    Id,
    InstitutionId,
    Scheme,
    Value,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    InstitutionId,
    NetworkId,
    FromDate,
    ToDate,
    Status,
    CreatedAt,
    AcceptedAt,
}

#[derive(DeriveIden)]
enum Stewardships {
    Table,
    Id,
    InstitutionId,
    NetworkId,
    FromAt,
    ToAt,
    ChangedBy,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
    Key,
    Name,
    CreatedAt,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn fk(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Geographies::Table)
                .col(
                    ColumnDef::new(Geographies::Code)
                        .string_len(9)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Geographies::Name).string().not_null())
                .col(ColumnDef::new(Geographies::Kind).string_len(3).not_null())
                .col(ColumnDef::new(Geographies::Vintage).integer().not_null())
                .col(ColumnDef::new(Geographies::ParentCode).string_len(9).null())
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Regions::Table)
                .col(id_col(Regions::Id))
                .col(
                    ColumnDef::new(Regions::Code)
                        .string_len(9)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Regions::Name).string().not_null())
                .col(
                    ColumnDef::new(Regions::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(&mut fk(
                    Regions::Table,
                    Regions::Code,
                    Geographies::Table,
                    Geographies::Code,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RegionDistricts::Table)
                .col(
                    ColumnDef::new(RegionDistricts::RegionId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(RegionDistricts::DistrictCode)
                        .string_len(9)
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(RegionDistricts::RegionId)
                        .col(RegionDistricts::DistrictCode),
                )
                .foreign_key(&mut fk(
                    RegionDistricts::Table,
                    RegionDistricts::RegionId,
                    Regions::Table,
                    Regions::Id,
                ))
                .foreign_key(&mut fk(
                    RegionDistricts::Table,
                    RegionDistricts::DistrictCode,
                    Geographies::Table,
                    Geographies::Code,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Networks::Table)
                .col(id_col(Networks::Id))
                .col(
                    ColumnDef::new(Networks::Key)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Networks::Name).string().not_null())
                .col(ColumnDef::new(Networks::ShortName).string().not_null())
                .col(ColumnDef::new(Networks::RegionId).big_integer().not_null())
                .col(ColumnDef::new(Networks::Established).integer().not_null())
                .col(
                    ColumnDef::new(Networks::Population)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Networks::Model).text().not_null())
                .col(ColumnDef::new(Networks::MembershipRule).text().not_null())
                .col(ColumnDef::new(Networks::Governance).text().not_null())
                .col(ColumnDef::new(Networks::ImdRank).integer().null())
                .col(ColumnDef::new(Networks::ImdRankOf).integer().null())
                .col(
                    ColumnDef::new(Networks::RequiresApproval)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(
                    ColumnDef::new(Networks::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Networks::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(&mut fk(
                    Networks::Table,
                    Networks::RegionId,
                    Regions::Table,
                    Regions::Id,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(NetworkDistricts::Table)
                .col(
                    ColumnDef::new(NetworkDistricts::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(NetworkDistricts::DistrictCode)
                        .string_len(9)
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(NetworkDistricts::NetworkId)
                        .col(NetworkDistricts::DistrictCode),
                )
                .foreign_key(&mut fk(
                    NetworkDistricts::Table,
                    NetworkDistricts::NetworkId,
                    Networks::Table,
                    Networks::Id,
                ))
                .foreign_key(&mut fk(
                    NetworkDistricts::Table,
                    NetworkDistricts::DistrictCode,
                    Geographies::Table,
                    Geographies::Code,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Institutions::Table)
                .col(id_col(Institutions::Id))
                .col(
                    ColumnDef::new(Institutions::Key)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Institutions::Name).string().not_null())
                .col(
                    ColumnDef::new(Institutions::Sector)
                        .string_len(32)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Institutions::HomeDistrictCode)
                        .string_len(9)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Institutions::YearEndMonth)
                        .small_integer()
                        .not_null()
                        .default(3),
                )
                .col(
                    ColumnDef::new(Institutions::StewardNetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Institutions::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Institutions::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(&mut fk(
                    Institutions::Table,
                    Institutions::HomeDistrictCode,
                    Geographies::Table,
                    Geographies::Code,
                ))
                .foreign_key(&mut fk(
                    Institutions::Table,
                    Institutions::StewardNetworkId,
                    Networks::Table,
                    Networks::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_institutions_steward")
                .table(Institutions::Table)
                .col(Institutions::StewardNetworkId)
                .col(Institutions::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(InstitutionIdentifiers::Table)
                .col(id_col(InstitutionIdentifiers::Id))
                .col(
                    ColumnDef::new(InstitutionIdentifiers::InstitutionId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(InstitutionIdentifiers::Scheme)
                        .string_len(32)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(InstitutionIdentifiers::Value)
                        .string_len(64)
                        .not_null(),
                )
                .foreign_key(&mut fk(
                    InstitutionIdentifiers::Table,
                    InstitutionIdentifiers::InstitutionId,
                    Institutions::Table,
                    Institutions::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_identifiers_scheme_value")
                .table(InstitutionIdentifiers::Table)
                .col(InstitutionIdentifiers::Scheme)
                .col(InstitutionIdentifiers::Value)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_identifiers_institution")
                .table(InstitutionIdentifiers::Table)
                .col(InstitutionIdentifiers::InstitutionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(id_col(Memberships::Id))
                .col(
                    ColumnDef::new(Memberships::InstitutionId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Memberships::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Memberships::FromDate).date().not_null())
                .col(ColumnDef::new(Memberships::ToDate).date().null())
                .col(
                    ColumnDef::new(Memberships::Status)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Memberships::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Memberships::AcceptedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(&mut fk(
                    Memberships::Table,
                    Memberships::InstitutionId,
                    Institutions::Table,
                    Institutions::Id,
                ))
                .foreign_key(&mut fk(
                    Memberships::Table,
                    Memberships::NetworkId,
                    Networks::Table,
                    Networks::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_network")
                .table(Memberships::Table)
                .col(Memberships::NetworkId)
                .col(Memberships::InstitutionId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_institution")
                .table(Memberships::Table)
                .col(Memberships::InstitutionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Stewardships::Table)
                .col(id_col(Stewardships::Id))
                .col(
                    ColumnDef::new(Stewardships::InstitutionId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Stewardships::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Stewardships::FromAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Stewardships::ToAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Stewardships::ChangedBy).string().not_null())
                .foreign_key(&mut fk(
                    Stewardships::Table,
                    Stewardships::InstitutionId,
                    Institutions::Table,
                    Institutions::Id,
                ))
                .foreign_key(&mut fk(
                    Stewardships::Table,
                    Stewardships::NetworkId,
                    Networks::Table,
                    Networks::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_stewardships_institution")
                .table(Stewardships::Table)
                .col(Stewardships::InstitutionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Organisations::Table)
                .col(id_col(Organisations::Id))
                .col(
                    ColumnDef::new(Organisations::Key)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Organisations::Name).string().not_null())
                .col(
                    ColumnDef::new(Organisations::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Reverse order of creation so no foreign key is left dangling.
        m.drop_table(Table::drop().table(Organisations::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Stewardships::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Memberships::Table).to_owned())
            .await?;
        m.drop_table(
            Table::drop()
                .table(InstitutionIdentifiers::Table)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(Institutions::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(NetworkDistricts::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Networks::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RegionDistricts::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Regions::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Geographies::Table).to_owned())
            .await?;
        Ok(())
    }
}
