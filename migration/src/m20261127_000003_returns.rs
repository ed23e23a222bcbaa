//! The metric catalogue (seeded here), returns in versions, their values, and the record of
//! accepted batches that makes a retried submission a no-op.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Metrics {
    Table,
    Code,
    Name,
    Unit,
    Scale,
    MetricGroup,
    Definition,
    Source,
    Aggregation,
    Numerator,
    Denominator,
    Disclosure,
    PartOf,
    Breakdown,
    Position,
}

#[derive(DeriveIden)]
enum Returns {
    Table,
    Id,
    InstitutionId,
    Period,
    PeriodStart,
    PeriodEnd,
    Version,
    Status,
    Basis,
    Notes,
    BatchId,
    SubmittedAt,
    SubmittedBy,
    PublishedAt,
    DecidedAt,
    DecidedBy,
    RejectReason,
}

#[derive(DeriveIden)]
enum ReturnValues {
    Table,
    Id,
    ReturnId,
    MetricCode,
    Breakdown,
    Value,
    NotReported,
    Method,
}

#[derive(DeriveIden)]
enum SubmissionBatches {
    Table,
    Id,
    NetworkId,
    IdempotencyKey,
    BodyHash,
    ReturnIds,
    CreatedBy,
    CreatedAt,
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

struct Seed {
    code: &'static str,
    name: &'static str,
    unit: &'static str,
    scale: i16,
    group: &'static str,
    definition: &'static str,
    aggregation: &'static str,
    ratio: Option<(&'static str, &'static str)>,
    disclosure: &'static str,
    part_of: Option<&'static str>,
    breakdown: Option<&'static str>,
}

const SOURCE: &str = "Returns of the anchor institutions, as CLES's anchor network guide sets out";

const SEED: &[Seed] = &[
    Seed {
        code: "procurement_spend_total",
        name: "Procurement spend",
        unit: "GBP",
        scale: 2,
        group: "SPEND",
        definition: "Spend on goods and services in the period.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "procurement_spend_local",
        name: "Local procurement spend",
        unit: "GBP",
        scale: 2,
        group: "SPEND",
        definition: "Of procurement spend, with suppliers in the steward network's place.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: Some("procurement_spend_total"),
        breakdown: None,
    },
    Seed {
        code: "procurement_spend_region",
        name: "Regional procurement spend",
        unit: "GBP",
        scale: 2,
        group: "SPEND",
        definition: "Of procurement spend, with suppliers in the region's districts.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: Some("procurement_spend_total"),
        breakdown: None,
    },
    Seed {
        code: "spend_sme",
        name: "Spend with SMEs",
        unit: "GBP",
        scale: 2,
        group: "SPEND",
        definition: "Of procurement spend, with small and medium-sized enterprises.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: Some("procurement_spend_total"),
        breakdown: None,
    },
    Seed {
        code: "spend_vcse",
        name: "Spend with VCSE organisations",
        unit: "GBP",
        scale: 2,
        group: "SPEND",
        definition: "Of procurement spend, with voluntary, community and social enterprise organisations.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: Some("procurement_spend_total"),
        breakdown: None,
    },
    Seed {
        code: "local_spend_share",
        name: "Local share of spend",
        unit: "ratio",
        scale: 4,
        group: "SPEND",
        definition: "Local procurement spend over procurement spend, over the same contributors.",
        aggregation: "RATIO",
        ratio: Some(("procurement_spend_local", "procurement_spend_total")),
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "region_spend_share",
        name: "Regional share of spend",
        unit: "ratio",
        scale: 4,
        group: "SPEND",
        definition: "Regional procurement spend over procurement spend, over the same contributors.",
        aggregation: "RATIO",
        ratio: Some(("procurement_spend_region", "procurement_spend_total")),
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "headcount",
        name: "Employees",
        unit: "persons",
        scale: 0,
        group: "EMPLOYMENT",
        definition: "Employees at the period's end.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "fte",
        name: "Full-time equivalent employees",
        unit: "FTE",
        scale: 2,
        group: "EMPLOYMENT",
        definition: "Full-time equivalent employees at the period's end.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "employees_by_residence",
        name: "Employees by residence",
        unit: "persons",
        scale: 0,
        group: "EMPLOYMENT",
        definition: "Employees at the period's end by home district (district:CODE) or by the IMD 2019 decile of their home LSOA (imd_decile:1 is most deprived).",
        aggregation: "SUM",
        ratio: None,
        disclosure: "PEOPLE_COUNT",
        part_of: None,
        breakdown: Some("district,imd_decile"),
    },
    Seed {
        code: "apprentices",
        name: "Apprentices",
        unit: "persons",
        scale: 0,
        group: "EMPLOYMENT",
        definition: "Apprentices employed at the period's end.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "PEOPLE_COUNT",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "living_wage_employees",
        name: "Employees paid the real Living Wage",
        unit: "persons",
        scale: 0,
        group: "EMPLOYMENT",
        definition: "Employees paid at least the real Living Wage at the period's end.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "land_owned",
        name: "Land owned",
        unit: "hectares",
        scale: 2,
        group: "LAND_AND_ASSETS",
        definition: "Land held freehold or on a long lease at the period's end.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "emissions_scope1",
        name: "Scope 1 emissions",
        unit: "kg CO2e",
        scale: 0,
        group: "EMISSIONS",
        definition: "Direct emissions in the period; the method note gives the conversion factors' year.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
    Seed {
        code: "emissions_scope2",
        name: "Scope 2 emissions",
        unit: "kg CO2e",
        scale: 0,
        group: "EMISSIONS",
        definition: "Indirect emissions from purchased energy in the period; the method note gives the conversion factors' year and whether location- or market-based.",
        aggregation: "SUM",
        ratio: None,
        disclosure: "MAGNITUDE",
        part_of: None,
        breakdown: None,
    },
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Metrics::Table)
                .col(
                    ColumnDef::new(Metrics::Code)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Metrics::Name).string().not_null())
                .col(ColumnDef::new(Metrics::Unit).string_len(32).not_null())
                .col(ColumnDef::new(Metrics::Scale).small_integer().not_null())
                .col(
                    ColumnDef::new(Metrics::MetricGroup)
                        .string_len(32)
                        .not_null(),
                )
                .col(ColumnDef::new(Metrics::Definition).text().not_null())
                .col(ColumnDef::new(Metrics::Source).text().not_null())
                .col(
                    ColumnDef::new(Metrics::Aggregation)
                        .string_len(16)
                        .not_null(),
                )
                .col(ColumnDef::new(Metrics::Numerator).string_len(64).null())
                .col(ColumnDef::new(Metrics::Denominator).string_len(64).null())
                .col(
                    ColumnDef::new(Metrics::Disclosure)
                        .string_len(16)
                        .not_null(),
                )
                .col(ColumnDef::new(Metrics::PartOf).string_len(64).null())
                .col(ColumnDef::new(Metrics::Breakdown).string_len(64).null())
                .col(ColumnDef::new(Metrics::Position).integer().not_null())
                .to_owned(),
        )
        .await?;
        let mut insert = Query::insert();
        insert.into_table(Metrics::Table).columns([
            Metrics::Code,
            Metrics::Name,
            Metrics::Unit,
            Metrics::Scale,
            Metrics::MetricGroup,
            Metrics::Definition,
            Metrics::Source,
            Metrics::Aggregation,
            Metrics::Numerator,
            Metrics::Denominator,
            Metrics::Disclosure,
            Metrics::PartOf,
            Metrics::Breakdown,
            Metrics::Position,
        ]);
        for (i, s) in SEED.iter().enumerate() {
            insert.values_panic([
                s.code.into(),
                s.name.into(),
                s.unit.into(),
                s.scale.into(),
                s.group.into(),
                s.definition.into(),
                SOURCE.into(),
                s.aggregation.into(),
                s.ratio.map(|r| r.0).into(),
                s.ratio.map(|r| r.1).into(),
                s.disclosure.into(),
                s.part_of.into(),
                s.breakdown.into(),
                (i as i32).into(),
            ]);
        }
        m.exec_stmt(insert).await?;

        m.create_table(
            Table::create()
                .table(SubmissionBatches::Table)
                .col(
                    ColumnDef::new(SubmissionBatches::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::NetworkId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::IdempotencyKey)
                        .string_len(200)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::BodyHash)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::ReturnIds)
                        .text()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::CreatedBy)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SubmissionBatches::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(SubmissionBatches::Table, SubmissionBatches::NetworkId)
                        .to(Networks::Table, Networks::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_batches_network_key")
                .table(SubmissionBatches::Table)
                .col(SubmissionBatches::NetworkId)
                .col(SubmissionBatches::IdempotencyKey)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Returns::Table)
                .col(
                    ColumnDef::new(Returns::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Returns::InstitutionId)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Returns::Period).string_len(7).not_null())
                .col(ColumnDef::new(Returns::PeriodStart).date().not_null())
                .col(ColumnDef::new(Returns::PeriodEnd).date().not_null())
                .col(ColumnDef::new(Returns::Version).integer().not_null())
                .col(ColumnDef::new(Returns::Status).string_len(16).not_null())
                .col(ColumnDef::new(Returns::Basis).text().null())
                .col(ColumnDef::new(Returns::Notes).text().null())
                .col(ColumnDef::new(Returns::BatchId).big_integer().null())
                .col(
                    ColumnDef::new(Returns::SubmittedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Returns::SubmittedBy).string().not_null())
                .col(
                    ColumnDef::new(Returns::PublishedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(Returns::DecidedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Returns::DecidedBy).string().null())
                .col(ColumnDef::new(Returns::RejectReason).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Returns::Table, Returns::InstitutionId)
                        .to(Institutions::Table, Institutions::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Returns::Table, Returns::BatchId)
                        .to(SubmissionBatches::Table, SubmissionBatches::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_returns_version")
                .table(Returns::Table)
                .col(Returns::InstitutionId)
                .col(Returns::Period)
                .col(Returns::Version)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_returns_period")
                .table(Returns::Table)
                .col(Returns::Period)
                .col(Returns::InstitutionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ReturnValues::Table)
                .col(
                    ColumnDef::new(ReturnValues::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ReturnValues::ReturnId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReturnValues::MetricCode)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ReturnValues::Breakdown)
                        .string_len(64)
                        .not_null()
                        .default(""),
                )
                .col(ColumnDef::new(ReturnValues::Value).big_integer().null())
                .col(
                    ColumnDef::new(ReturnValues::NotReported)
                        .boolean()
                        .not_null(),
                )
                .col(ColumnDef::new(ReturnValues::Method).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(ReturnValues::Table, ReturnValues::ReturnId)
                        .to(Returns::Table, Returns::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ReturnValues::Table, ReturnValues::MetricCode)
                        .to(Metrics::Table, Metrics::Code),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_values_return_metric")
                .table(ReturnValues::Table)
                .col(ReturnValues::ReturnId)
                .col(ReturnValues::MetricCode)
                .col(ReturnValues::Breakdown)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_values_metric")
                .table(ReturnValues::Table)
                .col(ReturnValues::MetricCode)
                .col(ReturnValues::ReturnId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ReturnValues::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Returns::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(SubmissionBatches::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Metrics::Table).to_owned())
            .await
    }
}
