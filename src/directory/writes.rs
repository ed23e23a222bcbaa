//! Directory writes. Each is one transaction that checks what it needs inside it, so a
//! refused write leaves nothing behind. Who may call them is the policy module's decision,
//! taken before these run.

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use entity::{
    geographies, institution_identifiers, institutions, memberships, network_districts, networks,
    organisations, region_districts, regions, stewardships,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
};

use crate::domain::{GssCode, Identifier, Key, Sector};
use crate::error::{ApiError, ApiResult, ConflictOnUnique};
use entity::vocab::MembershipStatus;

async fn begin(db: &DatabaseConnection) -> ApiResult<DatabaseTransaction> {
    Ok(crate::db::begin_write(db)
        .await
        .context("Failed to begin a directory transaction")?)
}

async fn require_geographies<C: ConnectionTrait>(
    db: &C,
    field: &str,
    codes: &[GssCode],
    districts_only: bool,
) -> ApiResult<()> {
    let found =
        super::geographies_by_code(db, &codes.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .await?;
    for c in codes {
        if !found.contains_key(c.as_str()) {
            return Err(ApiError::bad_input(
                field,
                format!("{c} is not a known district: create the region that holds it first"),
            ));
        }
        if districts_only && !c.is_district() {
            return Err(ApiError::bad_input(
                field,
                format!("{c} is not a local authority district"),
            ));
        }
    }
    Ok(())
}

/// Adds the geographies not known yet, with the names given (known ones keep theirs).
async fn ensure_geographies<C: ConnectionTrait>(
    db: &C,
    geos: &[(GssCode, String)],
) -> ApiResult<()> {
    let codes: Vec<String> = geos.iter().map(|(c, _)| c.to_string()).collect();
    let known = super::geographies_by_code(db, &codes).await?;
    for (code, name) in geos.iter().filter(|(c, _)| !known.contains_key(c.as_str())) {
        geographies::ActiveModel {
            code: Set(code.to_string()),
            name: Set(name.clone()),
            kind: Set(code.entity().to_owned()),
            vintage: Set(2023),
            parent_code: Set(None),
        }
        .insert(db)
        .await
        .conflict_on_unique(&format!("geography {code}"))?;
    }
    Ok(())
}

/// Replaces a region's constituent districts.
async fn set_region_districts<C: ConnectionTrait>(
    db: &C,
    region: i64,
    districts: &[(GssCode, String)],
) -> ApiResult<()> {
    region_districts::Entity::delete_many()
        .filter(region_districts::Column::RegionId.eq(region))
        .exec(db)
        .await
        .context("Failed to clear the region's districts")?;
    let mut seen = std::collections::BTreeSet::new();
    for (code, _) in districts.iter().filter(|(c, _)| seen.insert(c.to_string())) {
        region_districts::ActiveModel {
            region_id: Set(region),
            district_code: Set(code.to_string()),
        }
        .insert(db)
        .await
        .conflict_on_unique(&format!("the region's district {code}"))?;
    }
    Ok(())
}

pub struct NewRegion {
    pub code: GssCode,
    pub name: String,
    pub districts: Vec<(GssCode, String)>,
}

pub async fn create_region(db: &DatabaseConnection, r: NewRegion) -> ApiResult<regions::Model> {
    let txn = begin(db).await?;
    if super::region_by_code(&txn, &r.code).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "input.code: region {} already exists",
            r.code
        )));
    }
    let mut all = vec![(r.code.clone(), r.name.clone())];
    all.extend(r.districts.iter().cloned());
    ensure_geographies(&txn, &all).await?;
    let region = regions::ActiveModel {
        code: Set(r.code.to_string()),
        name: Set(r.name),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .conflict_on_unique(&format!("input.code: region {}", r.code))?;
    set_region_districts(&txn, region.id, &r.districts).await?;
    txn.commit()
        .await
        .context("Failed to commit the new region")?;
    Ok(region)
}

/// Renames a region and, when given, replaces its constituent districts (new district codes
/// are added to the geography with the names given).
pub async fn update_region(
    db: &DatabaseConnection,
    current: regions::Model,
    name: Option<String>,
    districts: Option<Vec<(GssCode, String)>>,
) -> ApiResult<regions::Model> {
    let txn = begin(db).await?;
    if let Some(ds) = &districts {
        ensure_geographies(&txn, ds).await?;
        set_region_districts(&txn, current.id, ds).await?;
    }
    let mut am: regions::ActiveModel = current.into();
    if let Some(n) = name {
        am.name = Set(n);
    }
    let r = am
        .update(&txn)
        .await
        .context("Failed to update the region")?;
    txn.commit()
        .await
        .context("Failed to commit the region's update")?;
    Ok(r)
}

pub struct NewNetwork {
    pub key: Key,
    pub name: String,
    pub short_name: Option<String>,
    pub region: GssCode,
    pub established: i32,
    pub population: i64,
    pub districts: Vec<GssCode>,
    pub model: String,
    pub governance: String,
    pub membership: String,
    pub requires_approval: bool,
    pub imd_rank: Option<i32>,
    pub imd_rank_of: Option<i32>,
}

pub async fn create_network(db: &DatabaseConnection, n: NewNetwork) -> ApiResult<networks::Model> {
    let txn = begin(db).await?;
    let region = super::region_by_code(&txn, &n.region)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("input.region: region {}", n.region)))?;
    if super::network(&txn, &crate::domain::IdOrKey::Key(n.key.clone()))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "input.key: a network `{}` already exists",
            n.key
        )));
    }
    require_geographies(&txn, "input.districts", &n.districts, true).await?;
    let now = Utc::now();
    let net = networks::ActiveModel {
        key: Set(n.key.to_string()),
        short_name: Set(n.short_name.unwrap_or_else(|| n.name.clone())),
        name: Set(n.name),
        region_id: Set(region.id),
        established: Set(n.established),
        population: Set(n.population),
        model: Set(n.model),
        membership_rule: Set(n.membership),
        governance: Set(n.governance),
        imd_rank: Set(n.imd_rank),
        imd_rank_of: Set(n.imd_rank_of),
        requires_approval: Set(n.requires_approval),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .conflict_on_unique(&format!("input.key: a network `{}`", n.key))?;
    set_network_districts(&txn, net.id, &n.districts).await?;
    txn.commit()
        .await
        .context("Failed to commit the new network")?;
    Ok(net)
}

async fn set_network_districts<C: ConnectionTrait>(
    db: &C,
    id: i64,
    districts: &[GssCode],
) -> ApiResult<()> {
    network_districts::Entity::delete_many()
        .filter(network_districts::Column::NetworkId.eq(id))
        .exec(db)
        .await
        .context("Failed to clear the network's districts")?;
    let mut seen = std::collections::BTreeSet::new();
    for d in districts.iter().filter(|d| seen.insert(d.to_string())) {
        network_districts::ActiveModel {
            network_id: Set(id),
            district_code: Set(d.to_string()),
        }
        .insert(db)
        .await
        .conflict_on_unique(&format!("the network's district {d}"))?;
    }
    Ok(())
}

/// A patch's field: set where given, left as stored where not.
fn set_given<T: Into<sea_orm::Value>>(field: &mut sea_orm::ActiveValue<T>, given: Option<T>) {
    if let Some(v) = given {
        *field = Set(v);
    }
}

#[derive(Default)]
pub struct NetworkPatch {
    pub name: Option<String>,
    pub short_name: Option<String>,
    pub established: Option<i32>,
    pub population: Option<i64>,
    pub districts: Option<Vec<GssCode>>,
    pub model: Option<String>,
    pub governance: Option<String>,
    pub membership: Option<String>,
    pub requires_approval: Option<bool>,
    pub imd_rank: Option<i32>,
    pub imd_rank_of: Option<i32>,
}

pub async fn update_network(
    db: &DatabaseConnection,
    current: networks::Model,
    p: NetworkPatch,
) -> ApiResult<networks::Model> {
    let txn = begin(db).await?;
    if let Some(d) = &p.districts {
        require_geographies(&txn, "input.districts", d, true).await?;
        set_network_districts(&txn, current.id, d).await?;
    }
    let mut am: networks::ActiveModel = current.into();
    set_given(&mut am.name, p.name);
    set_given(&mut am.short_name, p.short_name);
    set_given(&mut am.established, p.established);
    set_given(&mut am.population, p.population);
    set_given(&mut am.model, p.model);
    set_given(&mut am.governance, p.governance);
    set_given(&mut am.membership_rule, p.membership);
    set_given(&mut am.requires_approval, p.requires_approval);
    set_given(&mut am.imd_rank, p.imd_rank.map(Some));
    set_given(&mut am.imd_rank_of, p.imd_rank_of.map(Some));
    am.updated_at = Set(Utc::now());
    let net = am
        .update(&txn)
        .await
        .context("Failed to update the network")?;
    txn.commit()
        .await
        .context("Failed to commit the network's update")?;
    Ok(net)
}

async fn check_identifiers<C: ConnectionTrait>(
    db: &C,
    ids: &[Identifier],
    except: Option<i64>,
) -> ApiResult<()> {
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].iter().any(|o| o.scheme() == id.scheme()) {
            return Err(ApiError::bad_input(
                format!("input.identifiers[{i}]"),
                format!("more than one {} identifier", id.scheme()),
            ));
        }
        let holder = institution_identifiers::Entity::find()
            .filter(institution_identifiers::Column::Scheme.eq(id.scheme().as_str()))
            .filter(institution_identifiers::Column::Value.eq(id.value()))
            .one(db)
            .await
            .context("Failed to look up the identifier's holder")?;
        if let Some(h) = holder.filter(|h| Some(h.institution_id) != except) {
            return Err(ApiError::Conflict(format!(
                "input.identifiers[{i}]: {} {} already belongs to institution {}",
                id.scheme(),
                id.value(),
                h.institution_id
            )));
        }
    }
    Ok(())
}

async fn set_identifiers<C: ConnectionTrait>(
    db: &C,
    institution: i64,
    ids: &[Identifier],
) -> ApiResult<()> {
    institution_identifiers::Entity::delete_many()
        .filter(institution_identifiers::Column::InstitutionId.eq(institution))
        .exec(db)
        .await
        .context("Failed to clear the institution's identifiers")?;
    for id in ids {
        institution_identifiers::ActiveModel {
            institution_id: Set(institution),
            scheme: Set(id.scheme().as_str().to_owned()),
            value: Set(id.value().to_owned()),
            ..Default::default()
        }
        .insert(db)
        .await
        .conflict_on_unique(&format!("{} {}", id.scheme(), id.value()))?;
    }
    Ok(())
}

pub struct NewInstitution {
    pub key: Key,
    pub name: String,
    pub sector: Sector,
    pub home_district: GssCode,
    pub year_end_month: Option<u8>,
    pub steward: networks::Model,
    pub identifiers: Vec<Identifier>,
    pub member_from: NaiveDate,
}

/// Creates an institution with its steward membership (from `member_from`) and the first
/// entry of its stewardship history.
pub async fn create_institution(
    db: &DatabaseConnection,
    n: NewInstitution,
    by: &str,
) -> ApiResult<institutions::Model> {
    let txn = begin(db).await?;
    if super::institution(&txn, &crate::domain::IdOrKey::Key(n.key.clone()))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "input.key: an institution `{}` already exists",
            n.key
        )));
    }
    require_geographies(
        &txn,
        "input.homeDistrict",
        std::slice::from_ref(&n.home_district),
        true,
    )
    .await?;
    check_identifiers(&txn, &n.identifiers, None).await?;
    let now = Utc::now();
    let inst = institutions::ActiveModel {
        key: Set(n.key.to_string()),
        name: Set(n.name),
        sector: Set(n.sector.into()),
        home_district_code: Set(n.home_district.to_string()),
        year_end_month: Set(i16::from(
            n.year_end_month
                .unwrap_or(n.sector.default_year_end_month()),
        )),
        steward_network_id: Set(n.steward.id),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .conflict_on_unique(&format!("input.key: an institution `{}`", n.key))?;
    set_identifiers(&txn, inst.id, &n.identifiers).await?;
    memberships::ActiveModel {
        institution_id: Set(inst.id),
        network_id: Set(n.steward.id),
        from_date: Set(n.member_from),
        to_date: Set(None),
        status: Set(MembershipStatus::Active),
        created_at: Set(now),
        accepted_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("Failed to record the institution's steward membership")?;
    stewardships::ActiveModel {
        institution_id: Set(inst.id),
        network_id: Set(n.steward.id),
        from_at: Set(now),
        to_at: Set(None),
        changed_by: Set(by.to_owned()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("Failed to record the institution's first stewardship")?;
    txn.commit()
        .await
        .context("Failed to commit the new institution")?;
    Ok(inst)
}

#[derive(Default)]
pub struct InstitutionPatch {
    pub name: Option<String>,
    pub sector: Option<Sector>,
    pub home_district: Option<GssCode>,
    pub year_end_month: Option<u8>,
    pub identifiers: Option<Vec<Identifier>>,
}

pub async fn update_institution(
    db: &DatabaseConnection,
    current: institutions::Model,
    p: InstitutionPatch,
) -> ApiResult<institutions::Model> {
    let txn = begin(db).await?;
    if let Some(d) = &p.home_district {
        require_geographies(&txn, "input.homeDistrict", std::slice::from_ref(d), true).await?;
    }
    if let Some(ids) = &p.identifiers {
        check_identifiers(&txn, ids, Some(current.id)).await?;
        set_identifiers(&txn, current.id, ids).await?;
    }
    let mut am: institutions::ActiveModel = current.into();
    set_given(&mut am.name, p.name);
    set_given(&mut am.sector, p.sector.map(Into::into));
    set_given(
        &mut am.home_district_code,
        p.home_district.map(|d| d.to_string()),
    );
    set_given(&mut am.year_end_month, p.year_end_month.map(i16::from));
    am.updated_at = Set(Utc::now());
    let inst = am
        .update(&txn)
        .await
        .context("Failed to update the institution")?;
    txn.commit()
        .await
        .context("Failed to commit the institution's update")?;
    Ok(inst)
}

/// Whether the institution has a membership of the network (counting or invited) that is
/// open on or after `from`.
async fn overlapping<C: ConnectionTrait>(
    db: &C,
    institution: i64,
    network: i64,
    from: NaiveDate,
) -> ApiResult<Option<memberships::Model>> {
    Ok(memberships::Entity::find()
        .filter(memberships::Column::InstitutionId.eq(institution))
        .filter(memberships::Column::NetworkId.eq(network))
        .filter(
            Condition::any()
                .add(memberships::Column::ToDate.is_null())
                .add(memberships::Column::ToDate.gte(from)),
        )
        .one(db)
        .await
        .context("Failed to look for an overlapping membership")?)
}

pub async fn invite_member(
    db: &DatabaseConnection,
    network: &networks::Model,
    institution: &institutions::Model,
    from: NaiveDate,
    counts_at_once: bool,
) -> ApiResult<memberships::Model> {
    let txn = begin(db).await?;
    if let Some(m) = overlapping(&txn, institution.id, network.id, from).await? {
        return Err(ApiError::Conflict(format!(
            "{} already has a membership of {} (id {}, {}) that overlaps {from}",
            institution.key,
            network.key,
            m.id,
            m.status.as_str().to_lowercase()
        )));
    }
    let now = Utc::now();
    let m = memberships::ActiveModel {
        institution_id: Set(institution.id),
        network_id: Set(network.id),
        from_date: Set(from),
        to_date: Set(None),
        status: Set(if counts_at_once {
            MembershipStatus::Active
        } else {
            MembershipStatus::Invited
        }),
        created_at: Set(now),
        accepted_at: Set(counts_at_once.then_some(now)),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("Failed to record the invitation")?;
    txn.commit()
        .await
        .context("Failed to commit the invitation")?;
    Ok(m)
}

pub async fn membership<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> ApiResult<(memberships::Model, institutions::Model)> {
    let (m, i) = memberships::Entity::find_by_id(id)
        .find_also_related(institutions::Entity)
        .one(db)
        .await
        .context("Failed to read the membership and its institution")?
        .ok_or_else(|| ApiError::NotFound(format!("membership {id}")))?;
    let i =
        i.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("membership {id} has no institution")))?;
    Ok((m, i))
}

pub async fn accept_membership(
    db: &DatabaseConnection,
    m: memberships::Model,
) -> ApiResult<memberships::Model> {
    if m.status != MembershipStatus::Invited {
        return Err(ApiError::Conflict(format!(
            "membership {} is not waiting for acceptance",
            m.id
        )));
    }
    if m.to_date.is_some() {
        return Err(ApiError::Conflict(format!(
            "the invitation {} was withdrawn",
            m.id
        )));
    }
    let txn = begin(db).await?;
    let mut am: memberships::ActiveModel = m.into();
    am.status = Set(MembershipStatus::Active);
    am.accepted_at = Set(Some(Utc::now()));
    let m = am
        .update(&txn)
        .await
        .context("Failed to record the acceptance")?;
    txn.commit()
        .await
        .context("Failed to commit the acceptance")?;
    Ok(m)
}

pub async fn end_membership(
    db: &DatabaseConnection,
    m: memberships::Model,
    steward_network: i64,
    to: NaiveDate,
) -> ApiResult<memberships::Model> {
    if to < m.from_date {
        return Err(ApiError::bad_input(
            "to",
            format!("must not be before the membership's start, {}", m.from_date),
        ));
    }
    if m.network_id == steward_network && m.status == MembershipStatus::Active {
        return Err(ApiError::Conflict(
            "the steward membership cannot end while the network is the steward: an operator transfers stewardship first".into(),
        ));
    }
    if let Some(end) = m.to_date {
        return Err(ApiError::Conflict(format!(
            "membership {} already ended on {end}",
            m.id
        )));
    }
    let txn = begin(db).await?;
    let mut am: memberships::ActiveModel = m.into();
    am.to_date = Set(Some(to));
    let m = am
        .update(&txn)
        .await
        .context("Failed to record the membership's end")?;
    txn.commit()
        .await
        .context("Failed to commit the membership's end")?;
    Ok(m)
}

pub async fn create_organisation(
    db: &DatabaseConnection,
    key: Key,
    name: String,
) -> ApiResult<organisations::Model> {
    let txn = begin(db).await?;
    if super::organisation(&txn, &crate::domain::IdOrKey::Key(key.clone()))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "input.key: an organisation `{key}` already exists"
        )));
    }
    let o = organisations::ActiveModel {
        key: Set(key.to_string()),
        name: Set(name),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .conflict_on_unique(&format!("input.key: an organisation `{key}`"))?;
    txn.commit()
        .await
        .context("Failed to commit the new organisation")?;
    Ok(o)
}

pub async fn update_organisation(
    db: &DatabaseConnection,
    current: organisations::Model,
    name: String,
) -> ApiResult<organisations::Model> {
    let mut am: organisations::ActiveModel = current.into();
    am.name = Set(name);
    Ok(am
        .update(db)
        .await
        .context("Failed to update the organisation")?)
}

/// Moves an institution's stewardship to `to`, which it joins today if it is not already a
/// member, and keeps the history.
pub async fn transfer_stewardship(
    db: &DatabaseConnection,
    inst: institutions::Model,
    to: &networks::Model,
    by: &str,
) -> ApiResult<institutions::Model> {
    if inst.steward_network_id == to.id {
        return Err(ApiError::Conflict(format!(
            "{} is already the steward of {}",
            to.key, inst.key
        )));
    }
    let txn = begin(db).await?;
    let today = super::today();
    let now = Utc::now();
    let member = memberships::Entity::find()
        .filter(memberships::Column::InstitutionId.eq(inst.id))
        .filter(memberships::Column::NetworkId.eq(to.id))
        .filter(super::active_on(today))
        .one(&txn)
        .await
        .context("Failed to read the institution's membership of the new steward")?;
    if member.is_none() {
        if let Some(pending) = overlapping(&txn, inst.id, to.id, today).await? {
            // A pending invitation or a future membership becomes a current one.
            let mut am: memberships::ActiveModel = pending.into();
            am.status = Set(MembershipStatus::Active);
            am.from_date = Set(today);
            am.accepted_at = Set(Some(now));
            am.update(&txn)
                .await
                .context("Failed to activate the pending membership")?;
        } else {
            memberships::ActiveModel {
                institution_id: Set(inst.id),
                network_id: Set(to.id),
                from_date: Set(today),
                to_date: Set(None),
                status: Set(MembershipStatus::Active),
                created_at: Set(now),
                accepted_at: Set(Some(now)),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .context("Failed to record the membership of the new steward")?;
        }
    }
    stewardships::Entity::update_many()
        .col_expr(stewardships::Column::ToAt, Expr::value(now))
        .filter(stewardships::Column::InstitutionId.eq(inst.id))
        .filter(stewardships::Column::ToAt.is_null())
        .exec(&txn)
        .await
        .context("Failed to close the current stewardship")?;
    stewardships::ActiveModel {
        institution_id: Set(inst.id),
        network_id: Set(to.id),
        from_at: Set(now),
        to_at: Set(None),
        changed_by: Set(by.to_owned()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("Failed to record the new stewardship")?;
    let mut am: institutions::ActiveModel = inst.into();
    am.steward_network_id = Set(to.id);
    am.updated_at = Set(now);
    let inst = am
        .update(&txn)
        .await
        .context("Failed to record the institution's new steward")?;
    txn.commit()
        .await
        .context("Failed to commit the stewardship transfer")?;
    Ok(inst)
}

/// The stewardship history of an institution, oldest first.
pub async fn stewardship_history<C: ConnectionTrait>(
    db: &C,
    institution: i64,
) -> ApiResult<Vec<stewardships::Model>> {
    use sea_orm::QueryOrder;
    Ok(stewardships::Entity::find()
        .filter(stewardships::Column::InstitutionId.eq(institution))
        .order_by_asc(stewardships::Column::FromAt)
        .order_by_asc(stewardships::Column::Id)
        .all(db)
        .await
        .context("Failed to read the stewardship history")?)
}
