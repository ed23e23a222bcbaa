//! The national generator (shared by bench_impact and bench_reads): a national-scale
//! federation of 10 regions, 100 networks, 3,000 institutions with overlapping memberships and
//! 10 years of returns, the same on every run (a fixed seed, drawn over rows in id order). Included with
//! `#[path = "common/national.rs"] mod national;`.

use crate::common::Rng;
use anchorfed::domain::FinancialYear;
use chrono::{NaiveDate, Utc};
use entity::vocab::{AccessLevel, GranteeKind, MembershipStatus, ReturnStatus, Sector};
use entity::{
    geographies, grants, institutions, memberships, networks, regions, return_values, returns,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryOrder,
};

pub const REGIONS: usize = 10;
pub const NETWORKS_PER_REGION: usize = 10;
const STEWARDED_PER_NETWORK: usize = 30;
const YEARS: std::ops::Range<u16> = 2014..2024;

async fn insert_chunks<A, E>(db: &DatabaseConnection, rows: Vec<A>, chunk: usize)
where
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
    E: EntityTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let part: Vec<A> = rows.by_ref().take(chunk).collect();
        E::insert_many(part)
            .exec_without_returning(db)
            .await
            .unwrap();
    }
}

/// Builds the federation; returns the network ids by region.
pub async fn generate(db: &DatabaseConnection) -> Vec<Vec<i64>> {
    let now = Utc::now();
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let mut geos = vec![];
    for r in 0..REGIONS {
        geos.push(geographies::ActiveModel {
            code: Set(format!("E47{:06}", 100 + r)),
            name: Set(format!("Region {r}")),
            kind: Set("E47".into()),
            vintage: Set(2023),
            parent_code: Set(None),
        });
        for d in 0..10 {
            geos.push(geographies::ActiveModel {
                code: Set(format!("E08{:06}", 100_000 + r * 100 + d)),
                name: Set(format!("District {r}.{d}")),
                kind: Set("E08".into()),
                vintage: Set(2023),
                parent_code: Set(None),
            });
        }
    }
    insert_chunks(db, geos, 500).await;
    let mut by_region = vec![];
    let mut inst_rows = vec![];
    for r in 0..REGIONS {
        let region = regions::Entity::insert(regions::ActiveModel {
            code: Set(format!("E47{:06}", 100 + r)),
            name: Set(format!("Region {r}")),
            created_at: Set(now),
            ..Default::default()
        })
        .exec(db)
        .await
        .unwrap()
        .last_insert_id;
        let mut ids = vec![];
        for n in 0..NETWORKS_PER_REGION {
            let id = networks::Entity::insert(networks::ActiveModel {
                key: Set(format!("r{r}-n{n}")),
                name: Set(format!("Network {r}.{n}")),
                short_name: Set(format!("N{r}.{n}")),
                region_id: Set(region),
                established: Set(2010),
                population: Set(500_000),
                model: Set(String::new()),
                membership_rule: Set(String::new()),
                governance: Set(String::new()),
                imd_rank: Set(None),
                imd_rank_of: Set(None),
                requires_approval: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
            .exec(db)
            .await
            .unwrap()
            .last_insert_id;
            ids.push(id);
            for k in 0..STEWARDED_PER_NETWORK {
                let sector = [
                    Sector::LocalAuthority,
                    Sector::NhsTrust,
                    Sector::University,
                    Sector::FeCollege,
                    Sector::HousingAssociation,
                    Sector::Police,
                ][k % 6];
                inst_rows.push(institutions::ActiveModel {
                    key: Set(format!("r{r}-n{n}-i{k}")),
                    name: Set(format!("Fictional institution {r}.{n}.{k}")),
                    sector: Set(sector),
                    home_district_code: Set(format!("E08{:06}", 100_000 + r * 100 + (k % 10))),
                    year_end_month: Set(if sector == Sector::University { 7 } else { 3 }),
                    steward_network_id: Set(id),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                });
            }
        }
        by_region.push(ids);
    }
    insert_chunks(db, inst_rows, 500).await;
    // In id order, so that the seeded draws below fall on the same rows every run.
    let insts = institutions::Entity::find()
        .order_by_asc(institutions::Column::Id)
        .all(db)
        .await
        .unwrap();
    let mut mem = vec![];
    let mut rets = vec![];
    for i in &insts {
        mem.push(memberships::ActiveModel {
            institution_id: Set(i.id),
            network_id: Set(i.steward_network_id),
            from_date: Set(NaiveDate::from_ymd_opt(2010, 4, 1).unwrap()),
            to_date: Set(None),
            status: Set(MembershipStatus::Active),
            created_at: Set(now),
            accepted_at: Set(Some(now)),
            ..Default::default()
        });
        let region = by_region
            .iter()
            .find(|ids| ids.contains(&i.steward_network_id))
            .unwrap();
        if rng.below(100) < 30 {
            let other = region[rng.below(region.len() as u64) as usize];
            if other != i.steward_network_id {
                mem.push(memberships::ActiveModel {
                    institution_id: Set(i.id),
                    network_id: Set(other),
                    from_date: Set(NaiveDate::from_ymd_opt(2015, 4, 1).unwrap()),
                    to_date: Set(None),
                    status: Set(MembershipStatus::Active),
                    created_at: Set(now),
                    accepted_at: Set(Some(now)),
                    ..Default::default()
                });
            }
        }
        for y in YEARS {
            if rng.below(100) < 85 {
                let fy = FinancialYear::new(y).unwrap();
                let month = u8::try_from(i.year_end_month).unwrap();
                rets.push(returns::ActiveModel {
                    institution_id: Set(i.id),
                    period: Set(fy.to_string()),
                    period_start: Set(fy.start_date(month).unwrap()),
                    period_end: Set(fy.end_date(month).unwrap()),
                    version: Set(1),
                    status: Set(ReturnStatus::Submitted),
                    submitted_at: Set(now),
                    submitted_by: Set("generator".into()),
                    published_at: Set(Some(now)),
                    ..Default::default()
                });
            }
        }
    }
    insert_chunks(db, mem, 1000).await;
    insert_chunks(db, rets, 1000).await;
    let ids: Vec<i64> = returns::Entity::find()
        .order_by_asc(returns::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut vals = vec![];
    for rid in ids {
        let total = 1_000_000 + rng.below(500_000_000) as i64;
        let mut push = |m: &str, v: i64| {
            vals.push(return_values::ActiveModel {
                return_id: Set(rid),
                metric_code: Set(m.into()),
                breakdown: Set(String::new()),
                value: Set(Some(v)),
                not_reported: Set(false),
                method: Set(None),
                ..Default::default()
            })
        };
        push("procurement_spend_total", total);
        push("procurement_spend_local", total / 4);
        push("procurement_spend_region", total / 3);
        push("headcount", 50 + rng.below(5000) as i64);
        if rng.below(100) < 40 {
            push("land_owned", rng.below(100_000) as i64);
        }
        push("emissions_scope1", rng.below(10_000_000) as i64);
    }
    insert_chunks(db, vals, 2000).await;
    // Written around the service, so mark the current versions as its writes do.
    for sql in migration::m20261130_000009_current_returns::REFRESH_ALL {
        db.execute_unprepared(sql).await.unwrap();
    }
    by_region
}

/// A grant from `network` of every metric group and year, in force for a year.
pub async fn grant_every_group(
    db: &DatabaseConnection,
    network: i64,
    kind: GranteeKind,
    region: Option<String>,
    organisation: Option<i64>,
    level: AccessLevel,
) {
    let now = Utc::now();
    let grant = grants::ActiveModel {
        network_id: Set(network),
        grantee_kind: Set(kind),
        grantee_region: Set(region),
        grantee_organisation_id: Set(organisation),
        level: Set(level),
        from_year: Set("2014/15".into()),
        to_year: Set("2023/24".into()),
        expires_at: Set(now + chrono::Duration::days(365)),
        agreement_reference: Set("bench".into()),
        lawful_basis: Set("bench".into()),
        purpose: Set("bench".into()),
        review_date: Set(now.date_naive()),
        created_at: Set(now),
        created_by: Set("bench".into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO grant_metric_groups (grant_id, metric_group) VALUES ({0}, 'SPEND'), \
         ({0}, 'EMPLOYMENT'), ({0}, 'LAND_AND_ASSETS'), ({0}, 'EMISSIONS')",
        grant.id
    ))
    .await
    .unwrap();
}
