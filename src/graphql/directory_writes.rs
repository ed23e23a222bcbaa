//! Directory mutations. Each checks its input into domain types, asks the policy module,
//! then calls one service function.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::NaiveDate;

use super::context::{caller, db, id_or_key};
use super::directory::IdentifierInput;
use super::enums::SectorGql;
use super::objects::{Institution, Membership, Network, Organisation, Region};
use super::scalars::{Date, GssCode};
use crate::directory::{self, writes};
use crate::domain::{Identifier, IdentifierScheme, Key};
use crate::error::ApiError;
use crate::policy;

fn key(field: &str, raw: &str) -> Result<Key, ApiError> {
    Key::parse(raw).map_err(|e| ApiError::bad_input(field, e))
}

fn text(field: &str, raw: String, max: usize) -> Result<String, ApiError> {
    let t = raw.trim().to_owned();
    if t.is_empty() || t.chars().count() > max {
        return Err(ApiError::bad_input(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(t)
}

fn opt_text(field: &str, raw: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    raw.map(|r| text(field, r, max)).transpose()
}

fn year(field: &str, y: i32) -> Result<i32, ApiError> {
    if !(1900..=2100).contains(&y) {
        return Err(ApiError::bad_input(
            field,
            "must be a year between 1900 and 2100",
        ));
    }
    Ok(y)
}

fn non_negative(field: &str, n: i64) -> Result<i64, ApiError> {
    if n < 0 {
        return Err(ApiError::bad_input(field, "must not be negative"));
    }
    Ok(n)
}

fn month(field: &str, m: i32) -> Result<u8, ApiError> {
    u8::try_from(m)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| ApiError::bad_input(field, "must be a month, 1 to 12"))
}

fn identifiers(field: &str, raw: Vec<IdentifierInput>) -> Result<Vec<Identifier>, ApiError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let scheme: IdentifierScheme = id
                .scheme
                .parse()
                .map_err(|e| ApiError::bad_input(format!("{field}[{i}].scheme"), e))?;
            Identifier::parse(scheme, &id.value)
                .map_err(|e| ApiError::bad_input(format!("{field}[{i}].value"), e))
        })
        .collect()
}

/// A district of a new region.
#[derive(InputObject)]
pub struct DistrictInput {
    code: GssCode,
    name: String,
}

/// A combined authority and its constituent districts.
#[derive(InputObject)]
pub struct RegionInput {
    code: GssCode,
    name: String,
    districts: Vec<DistrictInput>,
}

/// Changes to a region; what is left out stays as it is. `districts`, when given, replaces
/// the whole list.
#[derive(InputObject)]
pub struct RegionUpdate {
    name: Option<String>,
    districts: Option<Vec<DistrictInput>>,
}

/// Changes to an organisation.
#[derive(InputObject)]
pub struct OrganisationUpdate {
    name: String,
}

fn districts(
    field: &str,
    raw: Vec<DistrictInput>,
) -> Result<Vec<(crate::domain::GssCode, String)>, ApiError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.code.0.is_district() {
                return Err(ApiError::bad_input(
                    format!("{field}[{i}].code"),
                    format!("{} is not a local authority district", d.code.0),
                ));
            }
            Ok((d.code.0, text(&format!("{field}[{i}].name"), d.name, 200)?))
        })
        .collect()
}

#[derive(InputObject)]
pub struct NetworkInput {
    /// A stable slug such as `black-country`.
    key: String,
    name: String,
    short_name: Option<String>,
    /// The region (combined authority) it belongs to.
    region: GssCode,
    established: i32,
    population: i64,
    /// The districts it covers: its place.
    districts: Vec<GssCode>,
    model: Option<String>,
    governance: Option<String>,
    membership: Option<String>,
    requires_approval: Option<bool>,
    imd_rank: Option<i32>,
    imd_rank_of: Option<i32>,
}

/// Changes to a network; what is left out stays as it is.
#[derive(InputObject)]
pub struct NetworkUpdate {
    name: Option<String>,
    short_name: Option<String>,
    established: Option<i32>,
    population: Option<i64>,
    districts: Option<Vec<GssCode>>,
    model: Option<String>,
    governance: Option<String>,
    membership: Option<String>,
    requires_approval: Option<bool>,
    imd_rank: Option<i32>,
    imd_rank_of: Option<i32>,
}

#[derive(InputObject)]
pub struct InstitutionInput {
    key: String,
    name: String,
    sector: SectorGql,
    home_district: GssCode,
    /// The month its financial year ends in (default March; July for universities).
    year_end_month: Option<i32>,
    /// The network it reports through; it becomes a member of it.
    steward: ID,
    identifiers: Option<Vec<IdentifierInput>>,
    /// When its membership of the steward starts (default today).
    member_from: Option<Date>,
}

/// Changes to an institution; what is left out stays as it is. `identifiers`, when given,
/// replaces the whole set.
#[derive(InputObject)]
pub struct InstitutionUpdate {
    name: Option<String>,
    sector: Option<SectorGql>,
    home_district: Option<GssCode>,
    year_end_month: Option<i32>,
    identifiers: Option<Vec<IdentifierInput>>,
}

/// A registered grantee.
#[derive(InputObject)]
pub struct OrganisationInput {
    key: String,
    name: String,
}

#[derive(Default)]
pub struct DirectoryMutation;

async fn network_arg(
    ctx: &Context<'_>,
    field: &str,
    id: &ID,
) -> Result<entity::networks::Model, ApiError> {
    let db = db(ctx).map_err(|e| ApiError::Internal(anyhow::anyhow!("{}", e.message)))?;
    directory::require_network(db, field, &id_or_key(field, id)?).await
}

async fn institution_arg(
    ctx: &Context<'_>,
    field: &str,
    id: &ID,
) -> Result<entity::institutions::Model, ApiError> {
    let db = db(ctx).map_err(|e| ApiError::Internal(anyhow::anyhow!("{}", e.message)))?;
    directory::institution(db, &id_or_key(field, id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{field}: institution {}", id.as_str())))
}

fn membership_id(id: &ID) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::bad_input("id", "a membership id is a positive number"))
}

#[Object]
impl DirectoryMutation {
    /// Operators: a combined authority with its districts.
    async fn create_region(&self, ctx: &Context<'_>, input: RegionInput) -> Result<Region> {
        policy::operator_only(caller(ctx), "createRegion")?;
        let districts = districts("input.districts", input.districts)?;
        let r = writes::create_region(
            db(ctx)?,
            writes::NewRegion {
                code: input.code.0,
                name: text("input.name", input.name, 200)?,
                districts,
            },
        )
        .await?;
        Ok(Region(r))
    }

    /// Operators: rename a region or replace its districts.
    async fn update_region(
        &self,
        ctx: &Context<'_>,
        code: GssCode,
        input: RegionUpdate,
    ) -> Result<Region> {
        policy::operator_only(caller(ctx), "updateRegion")?;
        let db = db(ctx)?;
        let current = directory::region_by_code(db, &code.0)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("code: region {}", code.0)))?;
        let name = opt_text("input.name", input.name, 200)?;
        let ds = input
            .districts
            .map(|d| districts("input.districts", d))
            .transpose()?;
        Ok(Region(writes::update_region(db, current, name, ds).await?))
    }

    /// Operators: a new network.
    async fn create_network(&self, ctx: &Context<'_>, input: NetworkInput) -> Result<Network> {
        policy::operator_only(caller(ctx), "createNetwork")?;
        let n = writes::NewNetwork {
            key: key("input.key", &input.key)?,
            name: text("input.name", input.name, 200)?,
            short_name: opt_text("input.shortName", input.short_name, 100)?,
            region: input.region.0,
            established: year("input.established", input.established)?,
            population: non_negative("input.population", input.population)?,
            districts: input.districts.into_iter().map(|d| d.0).collect(),
            model: opt_text("input.model", input.model, 2000)?.unwrap_or_default(),
            governance: opt_text("input.governance", input.governance, 2000)?.unwrap_or_default(),
            membership: opt_text("input.membership", input.membership, 2000)?.unwrap_or_default(),
            requires_approval: input.requires_approval.unwrap_or(false),
            imd_rank: input.imd_rank,
            imd_rank_of: input.imd_rank_of,
        };
        Ok(Network(writes::create_network(db(ctx)?, n).await?))
    }

    /// Operators, and the network's own admins.
    async fn update_network(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: NetworkUpdate,
    ) -> Result<Network> {
        let current = network_arg(ctx, "id", &id).await?;
        policy::operator_or_admin_of(caller(ctx), current.id, "updateNetwork")?;
        let p = writes::NetworkPatch {
            name: opt_text("input.name", input.name, 200)?,
            short_name: opt_text("input.shortName", input.short_name, 100)?,
            established: input
                .established
                .map(|y| year("input.established", y))
                .transpose()?,
            population: input
                .population
                .map(|n| non_negative("input.population", n))
                .transpose()?,
            districts: input
                .districts
                .map(|d| d.into_iter().map(|c| c.0).collect()),
            model: opt_text("input.model", input.model, 2000)?,
            governance: opt_text("input.governance", input.governance, 2000)?,
            membership: opt_text("input.membership", input.membership, 2000)?,
            requires_approval: input.requires_approval,
            imd_rank: input.imd_rank,
            imd_rank_of: input.imd_rank_of,
        };
        Ok(Network(writes::update_network(db(ctx)?, current, p).await?))
    }

    /// Operators, and admins of the steward network it names.
    async fn create_institution(
        &self,
        ctx: &Context<'_>,
        input: InstitutionInput,
    ) -> Result<Institution> {
        let steward = network_arg(ctx, "input.steward", &input.steward).await?;
        let c = caller(ctx);
        policy::operator_or_admin_of(c, steward.id, "createInstitution")?;
        let by = policy::authenticated(c)?.subject.clone();
        let n = writes::NewInstitution {
            key: key("input.key", &input.key)?,
            name: text("input.name", input.name, 200)?,
            sector: input.sector.into(),
            home_district: input.home_district.0,
            year_end_month: input
                .year_end_month
                .map(|m| month("input.yearEndMonth", m))
                .transpose()?,
            steward,
            identifiers: identifiers("input.identifiers", input.identifiers.unwrap_or_default())?,
            member_from: input
                .member_from
                .map(|d| d.0)
                .unwrap_or_else(directory::today),
        };
        Ok(Institution(
            writes::create_institution(db(ctx)?, n, &by).await?,
        ))
    }

    /// Operators, and admins of its steward network.
    async fn update_institution(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: InstitutionUpdate,
    ) -> Result<Institution> {
        let current = institution_arg(ctx, "id", &id).await?;
        policy::operator_or_admin_of(caller(ctx), current.steward_network_id, "updateInstitution")?;
        let p = writes::InstitutionPatch {
            name: opt_text("input.name", input.name, 200)?,
            sector: input.sector.map(Into::into),
            home_district: input.home_district.map(|d| d.0),
            year_end_month: input
                .year_end_month
                .map(|m| month("input.yearEndMonth", m))
                .transpose()?,
            identifiers: input
                .identifiers
                .map(|i| identifiers("input.identifiers", i))
                .transpose()?,
        };
        Ok(Institution(
            writes::update_institution(db(ctx)?, current, p).await?,
        ))
    }

    /// Operators, and the network's admins. The membership counts at once when the network is
    /// the institution's steward or an operator invites; otherwise once the steward's admin
    /// accepts it (`acceptMembership`).
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        network_id: ID,
        institution_id: ID,
        from: Option<Date>,
    ) -> Result<Membership> {
        let network = network_arg(ctx, "networkId", &network_id).await?;
        let c = caller(ctx);
        policy::operator_or_admin_of(c, network.id, "inviteMember")?;
        let inst = institution_arg(ctx, "institutionId", &institution_id).await?;
        let at_once = policy::invitation_counts_at_once(c, network.id, inst.steward_network_id);
        let from: NaiveDate = from.map(|d| d.0).unwrap_or_else(directory::today);
        Ok(
            writes::invite_member(db(ctx)?, &network, &inst, from, at_once)
                .await?
                .into(),
        )
    }

    /// The steward network's admins (or operators) accept an invitation of their institution.
    async fn accept_membership(&self, ctx: &Context<'_>, id: ID) -> Result<Membership> {
        let db = db(ctx)?;
        let (m, inst) = writes::membership(db, membership_id(&id)?).await?;
        policy::operator_or_admin_of(caller(ctx), inst.steward_network_id, "acceptMembership")?;
        Ok(writes::accept_membership(db, m).await?.into())
    }

    /// Ends a membership on `to` (inclusive). The steward membership cannot end while it is the
    /// steward.
    async fn end_membership(&self, ctx: &Context<'_>, id: ID, to: Date) -> Result<Membership> {
        let db = db(ctx)?;
        let (m, inst) = writes::membership(db, membership_id(&id)?).await?;
        policy::may_end_membership(caller(ctx), m.network_id, inst.steward_network_id)?;
        Ok(writes::end_membership(db, m, inst.steward_network_id, to.0)
            .await?
            .into())
    }

    /// Operators: a registered grantee.
    async fn create_organisation(
        &self,
        ctx: &Context<'_>,
        input: OrganisationInput,
    ) -> Result<Organisation> {
        policy::operator_only(caller(ctx), "createOrganisation")?;
        let k = key("input.key", &input.key)?;
        let name = text("input.name", input.name, 200)?;
        Ok(Organisation(
            writes::create_organisation(db(ctx)?, k, name).await?,
        ))
    }

    /// Operators: rename an organisation.
    async fn update_organisation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: OrganisationUpdate,
    ) -> Result<Organisation> {
        policy::operator_only(caller(ctx), "updateOrganisation")?;
        let db = db(ctx)?;
        let current = directory::organisation(db, &id_or_key("id", &id)?)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("id: organisation {}", id.as_str())))?;
        let name = text("input.name", input.name, 200)?;
        Ok(Organisation(
            writes::update_organisation(db, current, name).await?,
        ))
    }

    /// Operators: moves an institution's stewardship (kept in its history).
    async fn transfer_stewardship(
        &self,
        ctx: &Context<'_>,
        institution_id: ID,
        network_id: ID,
    ) -> Result<Institution> {
        let c = caller(ctx);
        policy::operator_only(c, "transferStewardship")?;
        let by = policy::authenticated(c)?.subject.clone();
        let inst = institution_arg(ctx, "institutionId", &institution_id).await?;
        let to = network_arg(ctx, "networkId", &network_id).await?;
        Ok(Institution(
            writes::transfer_stewardship(db(ctx)?, inst, &to, &by).await?,
        ))
    }
}
