//! The West Midlands demo dataset, shipped in `demo/`: the combined authority and its
//! districts, the five networks of the CLES guide's Table 1 with their real attributes, and
//! fictional institutions (every name says so) whose memberships reproduce each network's
//! member count and the Black Country overlaps. Loading is idempotent: rows are matched by
//! key or code and only missing ones are written, all in one transaction.

use std::collections::HashMap;

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use entity::{
    geographies, institution_identifiers, institutions, memberships, network_districts, networks,
    region_districts, regions, stewardships,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::Deserialize;

use crate::domain::{GssCode, Identifier, IdentifierScheme, Key, Sector};

const GEOGRAPHIES: &str = include_str!("../../demo/west-midlands-geographies.csv");
const NETWORKS: &str = include_str!("../../demo/west-midlands-networks.csv");
const INSTITUTIONS: &str = include_str!("../../demo/west-midlands-institutions.csv");

/// The boundary vintage of the shipped geography.
const VINTAGE: i32 = 2023;

#[derive(Debug, Deserialize)]
struct GeographyRow {
    code: String,
    name: String,
    parent: String,
    in_region: String,
}

#[derive(Debug, Deserialize)]
struct NetworkRow {
    network: String,
    short_name: String,
    established: i32,
    area_population: i64,
    members: usize,
    imd_rank: i32,
    imd_rank_of: i32,
    model: String,
    membership: String,
    governance: String,
    local_authority_codes: String,
}

#[derive(Debug, Deserialize)]
struct InstitutionRow {
    key: String,
    name: String,
    sector: String,
    home_district: String,
    year_end_month: Option<u8>,
    steward: String,
    networks: String,
    identifiers: String,
}

/// What a load wrote; all zero when the data was already there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub geographies: usize,
    pub regions: usize,
    pub networks: usize,
    pub institutions: usize,
    pub memberships: usize,
}

fn rows<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> anyhow::Result<Vec<T>> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("demo file {name}, row {}", i + 2)))
        .collect()
}

/// The network key a Table 1 short name becomes (`Black Country` → `black-country`).
pub fn network_key(short_name: &str) -> anyhow::Result<Key> {
    let slug: String = short_name
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    Key::parse(&slug).map_err(|e| anyhow::anyhow!("network {short_name}: {e}"))
}

/// The member count Table 1 gives each network, by key; the tests compare against it.
pub fn expected_member_counts() -> anyhow::Result<HashMap<String, usize>> {
    rows::<NetworkRow>("networks", NETWORKS)?
        .into_iter()
        .map(|n| Ok((network_key(&n.short_name)?.to_string(), n.members)))
        .collect()
}

pub async fn load(db: &DatabaseConnection) -> anyhow::Result<LoadReport> {
    let geos: Vec<GeographyRow> = rows("geographies", GEOGRAPHIES)?;
    let nets: Vec<NetworkRow> = rows("networks", NETWORKS)?;
    let insts: Vec<InstitutionRow> = rows("institutions", INSTITUTIONS)?;
    let now = Utc::now();
    let mut report = LoadReport::default();
    let txn = db
        .begin()
        .await
        .context("Failed to start the demo transaction")?;

    // Geography and the region.
    let known: HashMap<String, geographies::Model> = geographies::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|g| (g.code.clone(), g))
        .collect();
    for g in &geos {
        let code = GssCode::parse(&g.code).map_err(|e| anyhow::anyhow!("demo geography: {e}"))?;
        if known.contains_key(code.as_str()) {
            continue;
        }
        geographies::Entity::insert(geographies::ActiveModel {
            code: Set(code.to_string()),
            name: Set(g.name.clone()),
            kind: Set(code.entity().to_owned()),
            vintage: Set(VINTAGE),
            parent_code: Set((!g.parent.is_empty()).then(|| g.parent.clone())),
        })
        .exec(&txn)
        .await?;
        report.geographies += 1;
    }
    let mut region_ids: HashMap<String, i64> = HashMap::new();
    for g in geos.iter().filter(|g| g.code.starts_with("E47")) {
        let existing = regions::Entity::find()
            .filter(regions::Column::Code.eq(g.code.as_str()))
            .one(&txn)
            .await?;
        let id = match existing {
            Some(r) => r.id,
            None => {
                report.regions += 1;
                let r = regions::Entity::insert(regions::ActiveModel {
                    code: Set(g.code.clone()),
                    name: Set(g.name.clone()),
                    created_at: Set(now),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
                for d in geos.iter().filter(|d| d.in_region == g.code) {
                    region_districts::Entity::insert(region_districts::ActiveModel {
                        region_id: Set(r.last_insert_id),
                        district_code: Set(d.code.clone()),
                    })
                    .exec_without_returning(&txn)
                    .await?;
                }
                r.last_insert_id
            }
        };
        region_ids.insert(g.code.clone(), id);
    }
    let Some(&region_id) = region_ids.get("E47000007") else {
        bail!("the demo geography has no West Midlands Combined Authority (E47000007)");
    };

    // Networks.
    let mut network_ids: HashMap<String, (i64, i32)> = HashMap::new();
    for n in &nets {
        let key = network_key(&n.short_name)?;
        let existing = networks::Entity::find()
            .filter(networks::Column::Key.eq(key.as_str()))
            .one(&txn)
            .await?;
        let id = match existing {
            Some(row) => row.id,
            None => {
                report.networks += 1;
                let r = networks::Entity::insert(networks::ActiveModel {
                    key: Set(key.to_string()),
                    name: Set(n.network.clone()),
                    short_name: Set(n.short_name.clone()),
                    region_id: Set(region_id),
                    established: Set(n.established),
                    population: Set(n.area_population),
                    model: Set(n.model.clone()),
                    membership_rule: Set(n.membership.clone()),
                    governance: Set(n.governance.clone()),
                    imd_rank: Set(Some(n.imd_rank)),
                    imd_rank_of: Set(Some(n.imd_rank_of)),
                    requires_approval: Set(false),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
                for code in n.local_authority_codes.split(';') {
                    network_districts::Entity::insert(network_districts::ActiveModel {
                        network_id: Set(r.last_insert_id),
                        district_code: Set(code.trim().to_owned()),
                    })
                    .exec_without_returning(&txn)
                    .await?;
                }
                r.last_insert_id
            }
        };
        network_ids.insert(key.to_string(), (id, n.established));
    }

    // Institutions with their identifiers, steward and memberships.
    for (i, row) in insts.iter().enumerate() {
        let at = || format!("demo institution {} (row {})", row.key, i + 2);
        let key = Key::parse(&row.key).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let exists = institutions::Entity::find()
            .filter(institutions::Column::Key.eq(key.as_str()))
            .one(&txn)
            .await?
            .is_some();
        if exists {
            continue;
        }
        let sector: Sector = row
            .sector
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let home =
            GssCode::parse(&row.home_district).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let Some(&(steward, _)) = network_ids.get(&row.steward) else {
            bail!("{}: steward {} is not a demo network", at(), row.steward);
        };
        let month = row
            .year_end_month
            .unwrap_or(sector.default_year_end_month());
        let inst = institutions::Entity::insert(institutions::ActiveModel {
            key: Set(key.to_string()),
            name: Set(row.name.clone()),
            sector: Set(sector.into()),
            home_district_code: Set(home.to_string()),
            year_end_month: Set(i16::from(month)),
            steward_network_id: Set(steward),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?
        .last_insert_id;
        report.institutions += 1;
        stewardships::Entity::insert(stewardships::ActiveModel {
            institution_id: Set(inst),
            network_id: Set(steward),
            from_at: Set(now),
            to_at: Set(None),
            changed_by: Set("demo".into()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        for ident in row.identifiers.split(';').filter(|s| !s.is_empty()) {
            let (scheme, value) = ident
                .split_once(':')
                .with_context(|| format!("{}: identifier {ident} is not SCHEME:VALUE", at()))?;
            let scheme: IdentifierScheme = scheme
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            let id =
                Identifier::parse(scheme, value).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            institution_identifiers::Entity::insert(institution_identifiers::ActiveModel {
                institution_id: Set(inst),
                scheme: Set(id.scheme().as_str().to_owned()),
                value: Set(id.value().to_owned()),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
        }
        for net in row.networks.split(';') {
            let Some(&(network_id, established)) = network_ids.get(net) else {
                bail!("{}: network {net} is not a demo network", at());
            };
            let from = NaiveDate::from_ymd_opt(established, 4, 1)
                .with_context(|| format!("{}: bad established year", at()))?;
            memberships::Entity::insert(memberships::ActiveModel {
                institution_id: Set(inst),
                network_id: Set(network_id),
                from_date: Set(from),
                to_date: Set(None),
                status: Set(entity::vocab::MembershipStatus::Active),
                created_at: Set(now),
                accepted_at: Set(Some(now)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            report.memberships += 1;
        }
    }
    txn.commit()
        .await
        .context("Failed to commit the demo data")?;
    tracing::info!(
        demo.institutions = report.institutions,
        demo.memberships = report.memberships,
        "demo data loaded"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_parse_and_reproduce_table_1() {
        let nets: Vec<NetworkRow> = rows("networks", NETWORKS).unwrap();
        let insts: Vec<InstitutionRow> = rows("institutions", INSTITUTIONS).unwrap();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in &insts {
            assert!(
                i.name.starts_with("Fictional "),
                "{} must be plainly fictional",
                i.key
            );
            let nets: Vec<&str> = i.networks.split(';').collect();
            assert!(
                nets.contains(&i.steward.as_str()),
                "{} not a member of its steward",
                i.key
            );
            for n in nets {
                *counts.entry(n.to_owned()).or_default() += 1;
            }
        }
        for n in &nets {
            let key = network_key(&n.short_name).unwrap().to_string();
            assert_eq!(counts.get(&key), Some(&n.members), "{key}");
        }
        assert_eq!(counts.values().sum::<usize>(), 55);
        assert!(
            insts.len() < 55,
            "the overlaps make fewer distinct institutions"
        );
    }

    #[test]
    fn keys_from_short_names() {
        assert_eq!(
            network_key("Black Country").unwrap().as_str(),
            "black-country"
        );
        assert_eq!(
            network_key("Coventry and Warwickshire").unwrap().as_str(),
            "coventry-and-warwickshire"
        );
    }
}
