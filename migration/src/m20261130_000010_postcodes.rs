//! Where suppliers are: postcodes to districts and LSOAs (from the ONS National Statistics
//! Postcode Lookup), and each LSOA's deprivation decile (from the English Indices of
//! Deprivation). Both are loaded from the published files (`anchorfed geography load`).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000010_postcodes"
    }
}

#[derive(DeriveIden)]
enum Postcodes {
    Table,
    Postcode,
    DistrictCode,
    Lsoa11Code,
    Lsoa21Code,
    Introduced,
    Terminated,
}

#[derive(DeriveIden)]
enum LsoaDeprivation {
    Table,
    Edition,
    LsoaCode,
    LsoaVintage,
    ImdRank,
    ImdDecile,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Postcodes::Table)
                // The unit postcode in its one spelling: upper case, one space before the
                // inward code (`B69 4HE`), as NSPL's `pcds`.
                .col(
                    ColumnDef::new(Postcodes::Postcode)
                        .string_len(8)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Postcodes::DistrictCode).string_len(9).null())
                .col(ColumnDef::new(Postcodes::Lsoa11Code).string_len(9).null())
                .col(ColumnDef::new(Postcodes::Lsoa21Code).string_len(9).null())
                // Months as yyyymm, as NSPL writes `dointr` and `doterm`.
                .col(ColumnDef::new(Postcodes::Introduced).integer().null())
                .col(ColumnDef::new(Postcodes::Terminated).integer().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LsoaDeprivation::Table)
                // The year of the Indices (2019, 2025).
                .col(
                    ColumnDef::new(LsoaDeprivation::Edition)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(LsoaDeprivation::LsoaCode)
                        .string_len(9)
                        .not_null(),
                )
                // The LSOA boundaries the edition uses (2011 or 2021).
                .col(
                    ColumnDef::new(LsoaDeprivation::LsoaVintage)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(LsoaDeprivation::ImdRank)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(LsoaDeprivation::ImdDecile)
                        .small_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(LsoaDeprivation::Edition)
                        .col(LsoaDeprivation::LsoaCode),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(LsoaDeprivation::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Postcodes::Table).to_owned())
            .await
    }
}
