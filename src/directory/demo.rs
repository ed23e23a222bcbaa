//! The West Midlands demo dataset, shipped in `demo/`: the combined authority and its
//! districts, the five networks of the CLES guide's Table 1 with their real attributes, and
//! fictional institutions (every name says so) whose memberships reproduce each network's
//! member count and the Black Country overlaps. Loading is idempotent: rows are matched by
//! key or code and only missing ones are written, all in one transaction.

use std::collections::HashMap;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    geographies, institution_identifiers, institutions, memberships, network_districts, networks,
    region_districts, regions, stewardships,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter,
};
use serde::Deserialize;

use crate::domain::{GssCode, Identifier, IdentifierScheme, Invalid, Key, Sector};

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

/// Loads the demo data, writing only what is missing, in one transaction: a second load writes
/// nothing, and a failed one leaves nothing half-loaded.
pub async fn load(db: &DatabaseConnection) -> anyhow::Result<LoadReport> {
    let geos: Vec<GeographyRow> = rows("geographies", GEOGRAPHIES)?;
    let nets: Vec<NetworkRow> = rows("networks", NETWORKS)?;
    let insts: Vec<InstitutionRow> = rows("institutions", INSTITUTIONS)?;
    let now = Utc::now();
    let mut report = LoadReport::default();
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start the demo transaction")?;
    report.geographies = load_geographies(&txn, &geos).await?;
    let region_id = load_regions(&txn, &geos, now, &mut report).await?;
    let network_ids = load_networks(&txn, &nets, region_id, now, &mut report).await?;
    for (i, row) in insts.iter().enumerate() {
        load_institution(&txn, row, i + 2, &network_ids, now, &mut report).await?;
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

/// Writes the geographies not yet known; returns how many.
async fn load_geographies(
    txn: &DatabaseTransaction,
    geos: &[GeographyRow],
) -> anyhow::Result<usize> {
    let known: HashMap<String, geographies::Model> = geographies::Entity::find()
        .all(txn)
        .await
        .context("Failed to read the known geographies")?
        .into_iter()
        .map(|g| (g.code.clone(), g))
        .collect();
    let mut written = 0;
    for g in geos {
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
        .exec(txn)
        .await
        .with_context(|| format!("Failed to insert geography {code}"))?;
        written += 1;
    }
    Ok(written)
}

/// Writes the combined authorities (E47) not yet known, each with its districts; returns the
/// id of the West Midlands one, which every demo network belongs to.
async fn load_regions(
    txn: &DatabaseTransaction,
    geos: &[GeographyRow],
    now: DateTime<Utc>,
    report: &mut LoadReport,
) -> anyhow::Result<i64> {
    let mut region_ids: HashMap<String, i64> = HashMap::new();
    for g in geos.iter().filter(|g| g.code.starts_with("E47")) {
        let existing = regions::Entity::find()
            .filter(regions::Column::Code.eq(g.code.as_str()))
            .one(txn)
            .await
            .with_context(|| format!("Failed to look up region {}", g.code))?;
        let id = match existing {
            Some(r) => r.id,
            None => {
                report.regions += 1;
                insert_region(txn, g, geos, now).await?
            }
        };
        region_ids.insert(g.code.clone(), id);
    }
    let Some(&region_id) = region_ids.get("E47000007") else {
        bail!("the demo geography has no West Midlands Combined Authority (E47000007)");
    };
    Ok(region_id)
}

async fn insert_region(
    txn: &DatabaseTransaction,
    g: &GeographyRow,
    geos: &[GeographyRow],
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let id = regions::Entity::insert(regions::ActiveModel {
        code: Set(g.code.clone()),
        name: Set(g.name.clone()),
        created_at: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await
    .with_context(|| format!("Failed to insert region {}", g.code))?
    .last_insert_id;
    for d in geos.iter().filter(|d| d.in_region == g.code) {
        region_districts::Entity::insert(region_districts::ActiveModel {
            region_id: Set(id),
            district_code: Set(d.code.clone()),
        })
        .exec_without_returning(txn)
        .await
        .with_context(|| format!("Failed to insert district {} of region {}", d.code, g.code))?;
    }
    Ok(id)
}

/// Writes the networks not yet known, each with its districts; returns every network's id
/// and established year, by key.
async fn load_networks(
    txn: &DatabaseTransaction,
    nets: &[NetworkRow],
    region_id: i64,
    now: DateTime<Utc>,
    report: &mut LoadReport,
) -> anyhow::Result<HashMap<String, (i64, i32)>> {
    let mut network_ids = HashMap::new();
    for n in nets {
        let key = network_key(&n.short_name)?;
        let existing = networks::Entity::find()
            .filter(networks::Column::Key.eq(key.as_str()))
            .one(txn)
            .await
            .with_context(|| format!("Failed to look up network {key}"))?;
        let id = match existing {
            Some(row) => row.id,
            None => {
                report.networks += 1;
                insert_network(txn, n, &key, region_id, now).await?
            }
        };
        network_ids.insert(key.to_string(), (id, n.established));
    }
    Ok(network_ids)
}

async fn insert_network(
    txn: &DatabaseTransaction,
    n: &NetworkRow,
    key: &Key,
    region_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let id = networks::Entity::insert(networks::ActiveModel {
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
    .exec(txn)
    .await
    .with_context(|| format!("Failed to insert network {key}"))?
    .last_insert_id;
    for code in n.local_authority_codes.split(';') {
        network_districts::Entity::insert(network_districts::ActiveModel {
            network_id: Set(id),
            district_code: Set(code.trim().to_owned()),
        })
        .exec_without_returning(txn)
        .await
        .with_context(|| format!("Failed to insert district {code} of network {key}"))?;
    }
    Ok(id)
}

/// Writes one institution, unless its key is already taken, with its steward, identifiers and
/// memberships. `line` is its line in the file, for messages.
async fn load_institution(
    txn: &DatabaseTransaction,
    row: &InstitutionRow,
    line: usize,
    network_ids: &HashMap<String, (i64, i32)>,
    now: DateTime<Utc>,
    report: &mut LoadReport,
) -> anyhow::Result<()> {
    let at = format!("demo institution {} (row {line})", row.key);
    let invalid = |e: Invalid| anyhow::anyhow!("{at}: {e}");
    let key = Key::parse(&row.key).map_err(invalid)?;
    let exists = institutions::Entity::find()
        .filter(institutions::Column::Key.eq(key.as_str()))
        .one(txn)
        .await
        .with_context(|| format!("Failed to look up {at}"))?
        .is_some();
    if exists {
        return Ok(());
    }
    let sector: Sector = row.sector.parse().map_err(invalid)?;
    let home = GssCode::parse(&row.home_district).map_err(invalid)?;
    let Some(&(steward, _)) = network_ids.get(&row.steward) else {
        bail!("{at}: steward {} is not a demo network", row.steward);
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
    .exec(txn)
    .await
    .with_context(|| format!("Failed to insert {at}"))?
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
    .exec(txn)
    .await
    .with_context(|| format!("Failed to insert the stewardship of {at}"))?;
    insert_identifiers(txn, inst, &row.identifiers, &at).await?;
    report.memberships +=
        insert_memberships(txn, inst, &row.networks, network_ids, now, &at).await?;
    Ok(())
}

/// Writes an institution's identifiers, given as `SCHEME:VALUE;…`.
async fn insert_identifiers(
    txn: &DatabaseTransaction,
    institution: i64,
    identifiers: &str,
    at: &str,
) -> anyhow::Result<()> {
    let invalid = |e: Invalid| anyhow::anyhow!("{at}: {e}");
    for ident in identifiers.split(';').filter(|s| !s.is_empty()) {
        let (scheme, value) = ident
            .split_once(':')
            .with_context(|| format!("{at}: identifier {ident} is not SCHEME:VALUE"))?;
        let scheme: IdentifierScheme = scheme.parse().map_err(invalid)?;
        let id = Identifier::parse(scheme, value).map_err(invalid)?;
        institution_identifiers::Entity::insert(institution_identifiers::ActiveModel {
            institution_id: Set(institution),
            scheme: Set(id.scheme().as_str().to_owned()),
            value: Set(id.value().to_owned()),
            ..Default::default()
        })
        .exec(txn)
        .await
        .with_context(|| format!("Failed to insert identifier {ident} of {at}"))?;
    }
    Ok(())
}

/// Writes an institution's memberships of the networks given as `key;…`, each from the
/// start of the network's established year; returns how many.
async fn insert_memberships(
    txn: &DatabaseTransaction,
    institution: i64,
    networks: &str,
    network_ids: &HashMap<String, (i64, i32)>,
    now: DateTime<Utc>,
    at: &str,
) -> anyhow::Result<usize> {
    let mut written = 0;
    for net in networks.split(';') {
        let Some(&(network_id, established)) = network_ids.get(net) else {
            bail!("{at}: network {net} is not a demo network");
        };
        let from = NaiveDate::from_ymd_opt(established, 4, 1)
            .with_context(|| format!("{at}: bad established year"))?;
        memberships::Entity::insert(memberships::ActiveModel {
            institution_id: Set(institution),
            network_id: Set(network_id),
            from_date: Set(from),
            to_date: Set(None),
            status: Set(entity::vocab::MembershipStatus::Active),
            created_at: Set(now),
            accepted_at: Set(Some(now)),
            ..Default::default()
        })
        .exec(txn)
        .await
        .with_context(|| format!("Failed to insert the membership of {at} in {net}"))?;
        written += 1;
    }
    Ok(written)
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
