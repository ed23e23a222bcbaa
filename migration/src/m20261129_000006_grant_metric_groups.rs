//! A grant's metric groups as rows of `grant_metric_groups`, one per group, instead of the
//! text `,SPEND,EMISSIONS,` matched with `LIKE`: the policy joins them like any relation,
//! and a group outside the vocabulary cannot be stored. Existing grants are converted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000006_grant_metric_groups"
    }
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    MetricGroups,
}

#[derive(DeriveIden)]
enum GrantMetricGroups {
    Table,
    GrantId,
    MetricGroup,
}

const GROUPS: [&str; 4] = ["SPEND", "EMPLOYMENT", "LAND_AND_ASSETS", "EMISSIONS"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(GrantMetricGroups::Table)
                .col(
                    ColumnDef::new(GrantMetricGroups::GrantId)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(GrantMetricGroups::MetricGroup)
                        .string_len(16)
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(GrantMetricGroups::GrantId)
                        .col(GrantMetricGroups::MetricGroup),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(GrantMetricGroups::Table, GrantMetricGroups::GrantId)
                        .to(Grants::Table, Grants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Each known group a grant names, by the same test the policy made (`LIKE`), so
        // every grant reaches exactly what it reached before.
        let db = m.get_connection();
        for group in GROUPS {
            db.execute_raw(Statement::from_string(
                m.get_database_backend(),
                format!(
                    "INSERT INTO grant_metric_groups (grant_id, metric_group) \
                     SELECT id, '{group}' FROM grants WHERE metric_groups LIKE '%,{group},%'"
                ),
            ))
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .drop_column(Grants::MetricGroups)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .add_column(
                    ColumnDef::new(Grants::MetricGroups)
                        .string_len(80)
                        .not_null()
                        .default(","),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        for group in GROUPS {
            db.execute_raw(Statement::from_string(
                m.get_database_backend(),
                format!(
                    "UPDATE grants SET metric_groups = metric_groups || '{group},' \
                     WHERE id IN (SELECT grant_id FROM grant_metric_groups WHERE metric_group = '{group}')"
                ),
            ))
            .await?;
        }
        m.drop_table(Table::drop().table(GrantMetricGroups::Table).to_owned())
            .await
    }
}
