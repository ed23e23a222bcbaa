//! The directory's read side: regions, districts, networks, institutions, memberships and
//! organisations. The directory is public; resolvers stay thin and go through the loaders.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    geographies, institution_identifiers, institutions, memberships, networks, organisations,
    regions,
};
use sea_orm::DatabaseConnection;

use super::connection::{IdCursor, connect, page_args};
use super::context::{db, id_or_key, loaders};
use super::loaders::*;
use super::scalars::{Date, GssCode};
use crate::directory::{self, InstitutionFilter};
use crate::domain::{self, Identifier as DomainIdentifier, IdentifierScheme};
use crate::error::ApiError;

/// A GSS code read back from the database, where only validated codes are written.
fn stored_gss(code: &str) -> Result<GssCode> {
    domain::GssCode::parse(code)
        .map(GssCode)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored GSS code: {e}")).into())
}

/// What `totalCount` counts; resolved only when the client asks for it.
pub enum CountOf {
    Networks,
    Institutions(InstitutionFilter),
    Members(MembersCount),
    StewardOf(StewardCount),
}

/// The fields every connection adds beside its edges.
pub struct Counted(CountOf);

#[Object]
impl Counted {
    /// How many items the whole list has, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(match &self.0 {
            CountOf::Networks => directory::networks_count(db(ctx)?).await?,
            CountOf::Institutions(f) => directory::institutions_count(db(ctx)?, f).await?,
            CountOf::Members(k) => loaders(ctx)?.load_one(*k).await?.unwrap_or(0),
            CountOf::StewardOf(k) => loaders(ctx)?.load_one(*k).await?.unwrap_or(0),
        })
    }
}

type Conn<N> = Connection<IdCursor, N, Counted>;

/// The sector of an anchor institution.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Sector")]
pub enum SectorGql {
    LocalAuthority,
    NhsTrust,
    IntegratedCareBoard,
    University,
    FeCollege,
    HousingAssociation,
    Police,
    FireAndRescue,
    CombinedAuthority,
    PrivateBusiness,
    Vcse,
    BusinessRepresentative,
    Other,
}

impl From<domain::Sector> for SectorGql {
    fn from(s: domain::Sector) -> Self {
        use domain::Sector as S;
        match s {
            S::LocalAuthority => Self::LocalAuthority,
            S::NhsTrust => Self::NhsTrust,
            S::IntegratedCareBoard => Self::IntegratedCareBoard,
            S::University => Self::University,
            S::FeCollege => Self::FeCollege,
            S::HousingAssociation => Self::HousingAssociation,
            S::Police => Self::Police,
            S::FireAndRescue => Self::FireAndRescue,
            S::CombinedAuthority => Self::CombinedAuthority,
            S::PrivateBusiness => Self::PrivateBusiness,
            S::Vcse => Self::Vcse,
            S::BusinessRepresentative => Self::BusinessRepresentative,
            S::Other => Self::Other,
        }
    }
}

impl From<SectorGql> for domain::Sector {
    fn from(s: SectorGql) -> Self {
        use domain::Sector as S;
        match s {
            SectorGql::LocalAuthority => S::LocalAuthority,
            SectorGql::NhsTrust => S::NhsTrust,
            SectorGql::IntegratedCareBoard => S::IntegratedCareBoard,
            SectorGql::University => S::University,
            SectorGql::FeCollege => S::FeCollege,
            SectorGql::HousingAssociation => S::HousingAssociation,
            SectorGql::Police => S::Police,
            SectorGql::FireAndRescue => S::FireAndRescue,
            SectorGql::CombinedAuthority => S::CombinedAuthority,
            SectorGql::PrivateBusiness => S::PrivateBusiness,
            SectorGql::Vcse => S::Vcse,
            SectorGql::BusinessRepresentative => S::BusinessRepresentative,
            SectorGql::Other => S::Other,
        }
    }
}

/// A local authority district or other ONS geography.
pub struct District(pub(crate) geographies::Model);

#[Object]
impl District {
    async fn code(&self) -> Result<GssCode> {
        stored_gss(&self.0.code)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The GSS entity code, such as `E08` (metropolitan district) or `E07` (non-metropolitan).
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The boundary vintage year.
    async fn vintage(&self) -> i32 {
        self.0.vintage
    }
}

/// A combined authority with its constituent districts.
pub struct Region(pub(crate) regions::Model);

#[Object]
impl Region {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn code(&self) -> Result<GssCode> {
        stored_gss(&self.0.code)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn districts(&self, ctx: &Context<'_>) -> Result<Vec<District>> {
        let rows = loaders(ctx)?.load_one(RegionDistricts(self.0.id)).await?;
        Ok(rows.unwrap_or_default().into_iter().map(District).collect())
    }
}

/// A local anchor network.
pub struct Network(pub networks::Model);

#[Object]
impl Network {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// A stable slug, such as `black-country`, accepted wherever an id is.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn short_name(&self) -> &str {
        &self.0.short_name
    }
    /// The year the network was established.
    async fn established(&self) -> i32 {
        self.0.established
    }
    /// The population of the network's area.
    async fn population(&self) -> i64 {
        self.0.population
    }
    /// The districts the network covers: its place.
    async fn districts(&self, ctx: &Context<'_>) -> Result<Vec<District>> {
        let rows = loaders(ctx)?.load_one(NetworkDistricts(self.0.id)).await?;
        Ok(rows.unwrap_or_default().into_iter().map(District).collect())
    }
    /// The network's model, in the guide's words.
    async fn model(&self) -> &str {
        &self.0.model
    }
    async fn governance(&self) -> &str {
        &self.0.governance
    }
    /// The membership rule: which institutions may join.
    async fn membership(&self) -> &str {
        &self.0.membership_rule
    }
    /// The area's rank on the Index of Multiple Deprivation (1 = most deprived).
    async fn imd_rank(&self) -> Option<i32> {
        self.0.imd_rank
    }
    /// What `imdRank` is out of.
    async fn imd_rank_of(&self) -> Option<i32> {
        self.0.imd_rank_of
    }
    /// Whether its returns need an admin's approval before readers outside it see them.
    async fn requires_approval(&self) -> bool {
        self.0.requires_approval
    }
    async fn region(&self, ctx: &Context<'_>) -> Result<Region> {
        loaders(ctx)?
            .load_one(RegionId(self.0.region_id))
            .await?
            .map(Region)
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("network {} has no region", self.0.id)).into()
            })
    }
    /// Institutions that are members now, or on the date given.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        on: Option<Date>,
    ) -> Result<Conn<Institution>> {
        let page = page_args(first, after.as_deref())?;
        let on = on.map(|d| d.0).unwrap_or_else(directory::today);
        let rows = loaders(ctx)?
            .load_one(MembersPage {
                network: self.0.id,
                on,
                page,
            })
            .await?
            .unwrap_or(crate::pagination::Page {
                items: vec![],
                has_next: false,
            });
        let count = Counted(CountOf::Members(MembersCount {
            network: self.0.id,
            on,
        }));
        Ok(connect(rows, page.after, count, |i| (i.id, Institution(i))))
    }
    /// For the network's admins: each member on the period's last day with the standing of
    /// its return (missing, submitted, approved): the coordinator's chase list.
    async fn submissions(
        &self,
        ctx: &Context<'_>,
        period: super::scalars::FinancialYear,
    ) -> Result<Vec<super::returns::Submission>> {
        super::returns::submissions(ctx, &self.0, period).await
    }
    /// Institutions that report through this network.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn steward_of(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<Conn<Institution>> {
        let page = page_args(first, after.as_deref())?;
        let rows = loaders(ctx)?
            .load_one(StewardPage {
                network: self.0.id,
                page,
            })
            .await?
            .unwrap_or(crate::pagination::Page {
                items: vec![],
                has_next: false,
            });
        let count = Counted(CountOf::StewardOf(StewardCount(self.0.id)));
        Ok(connect(rows, page.after, count, |i| (i.id, Institution(i))))
    }
}

/// An official identifier of an institution.
#[derive(SimpleObject)]
pub struct Identifier {
    /// `GSS`, `ODS`, `UKPRN`, `COMPANIES_HOUSE` or `CHARITY`.
    scheme: String,
    value: String,
}

impl From<institution_identifiers::Model> for Identifier {
    fn from(m: institution_identifiers::Model) -> Self {
        Self {
            scheme: m.scheme,
            value: m.value,
        }
    }
}

/// Whether a membership counts yet.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MembershipStatus {
    /// It counts from its `from` date.
    Active,
    /// Invited by a network that is not the steward; it counts once the steward accepts.
    Invited,
}

/// An institution's membership of a network over a span of dates.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Membership {
    id: ID,
    from: Date,
    /// The last day of membership; null while current.
    to: Option<Date>,
    status: MembershipStatus,
    #[graphql(skip)]
    network_id: i64,
}

#[ComplexObject]
impl Membership {
    async fn network(&self, ctx: &Context<'_>) -> Result<Network> {
        loaders(ctx)?
            .load_one(NetworkId(self.network_id))
            .await?
            .map(Network)
            .ok_or_else(|| {
                ApiError::NotFound(format!("network with id {}", self.network_id)).into()
            })
    }
}

impl From<memberships::Model> for Membership {
    fn from(m: memberships::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            from: Date(m.from_date),
            to: m.to_date.map(Date),
            status: if m.status == directory::ACTIVE {
                MembershipStatus::Active
            } else {
                MembershipStatus::Invited
            },
            network_id: m.network_id,
        }
    }
}

/// An anchor institution.
pub struct Institution(pub institutions::Model);

#[Object]
impl Institution {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn sector(&self) -> Result<SectorGql> {
        let s: domain::Sector = self.0.sector.parse().map_err(|e: domain::Invalid| {
            ApiError::Internal(anyhow::anyhow!("stored sector: {e}"))
        })?;
        Ok(s.into())
    }
    async fn identifiers(&self, ctx: &Context<'_>) -> Result<Vec<Identifier>> {
        let rows = loaders(ctx)?.load_one(IdentifiersOf(self.0.id)).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Identifier::from)
            .collect())
    }
    async fn home_district(&self, ctx: &Context<'_>) -> Result<District> {
        loaders(ctx)?
            .load_one(GeoCode(self.0.home_district_code.clone()))
            .await?
            .map(District)
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "district {} missing",
                    self.0.home_district_code
                ))
                .into()
            })
    }
    /// The month (1 to 12) its financial year ends in.
    async fn year_end_month(&self) -> i32 {
        i32::from(self.0.year_end_month)
    }
    /// The network it reports through, which decides who outside sees its returns.
    async fn steward(&self, ctx: &Context<'_>) -> Result<Network> {
        loaders(ctx)?
            .load_one(NetworkId(self.0.steward_network_id))
            .await?
            .map(Network)
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "steward {} missing",
                    self.0.steward_network_id
                ))
                .into()
            })
    }
    /// Every membership, past, present and invited.
    async fn memberships(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        let rows = loaders(ctx)?.load_one(MembershipsOf(self.0.id)).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Every network that has been its steward, oldest first.
    async fn stewardship_history(&self, ctx: &Context<'_>) -> Result<Vec<Stewardship>> {
        Ok(
            crate::directory::writes::stewardship_history(db(ctx)?, self.0.id)
                .await?
                .into_iter()
                .map(|s| Stewardship {
                    network_id: s.network_id,
                    from: s.from_at,
                    to: s.to_at,
                    changed_by: s.changed_by,
                })
                .collect(),
        )
    }
}

/// A span of time a network was an institution's steward.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Stewardship {
    #[graphql(skip)]
    network_id: i64,
    from: DateTime<Utc>,
    /// Null for the current steward.
    to: Option<DateTime<Utc>>,
    /// Who made the change.
    changed_by: String,
}

#[ComplexObject]
impl Stewardship {
    async fn network(&self, ctx: &Context<'_>) -> Result<Network> {
        loaders(ctx)?
            .load_one(NetworkId(self.network_id))
            .await?
            .map(Network)
            .ok_or_else(|| {
                ApiError::NotFound(format!("network with id {}", self.network_id)).into()
            })
    }
}

/// A registered grantee outside the networks.
pub struct Organisation(pub(crate) organisations::Model);

#[Object]
impl Organisation {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
}

/// An identifier to look an institution up by, such as `{scheme: "ODS", value: "RRK"}`.
#[derive(InputObject)]
pub struct IdentifierInput {
    pub(crate) scheme: String,
    pub(crate) value: String,
}

/// Narrows `institutions`; every filter given must hold.
#[derive(InputObject, Default)]
pub struct InstitutionFilterInput {
    /// Members of this network (id or key) now, or on `on`.
    network: Option<ID>,
    sector: Option<SectorGql>,
    /// The home district.
    district: Option<GssCode>,
    /// A case-insensitive part of the name.
    name: Option<String>,
    identifier: Option<IdentifierInput>,
    /// With `network`: the date membership is checked on (default today).
    on: Option<Date>,
}

impl InstitutionFilterInput {
    async fn validate(self, db: &DatabaseConnection) -> Result<InstitutionFilter, ApiError> {
        let network = match &self.network {
            Some(id) => {
                let key = id_or_key("filter.network", id)?;
                Some(
                    directory::require_network(db, "filter.network", &key)
                        .await?
                        .id,
                )
            }
            None => None,
        };
        let identifier = match &self.identifier {
            Some(i) => {
                let scheme: IdentifierScheme = i
                    .scheme
                    .parse()
                    .map_err(|e| ApiError::bad_input("filter.identifier.scheme", e))?;
                Some(
                    DomainIdentifier::parse(scheme, &i.value)
                        .map_err(|e| ApiError::bad_input("filter.identifier.value", e))?,
                )
            }
            None => None,
        };
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.len() > 200)
        {
            return Err(ApiError::bad_input(
                "filter.name",
                "must be 1 to 200 characters",
            ));
        }
        Ok(InstitutionFilter {
            network,
            sector: self.sector.map(Into::into),
            district: self.district.map(|d| d.0),
            name: self.name.map(|n| n.trim().to_owned()),
            identifier,
            on: self.on.map(|d| d.0),
        })
    }
}

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// Combined authorities and their districts.
    async fn regions(&self, ctx: &Context<'_>) -> Result<Vec<Region>> {
        Ok(directory::regions(db(ctx)?)
            .await?
            .into_iter()
            .map(Region)
            .collect())
    }

    /// A combined authority by its GSS code, such as `E47000007`.
    async fn region(&self, ctx: &Context<'_>, code: GssCode) -> Result<Option<Region>> {
        Ok(directory::region_by_code(db(ctx)?, &code.0)
            .await?
            .map(Region))
    }

    /// Every network, in the order they were registered.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn networks(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<Conn<Network>> {
        let page = page_args(first, after.as_deref())?;
        let rows = directory::networks_page(db(ctx)?, page).await?;
        Ok(connect(rows, page.after, Counted(CountOf::Networks), |n| {
            (n.id, Network(n))
        }))
    }

    /// A network by id or key.
    async fn network(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Network>> {
        let key = id_or_key("id", &id)?;
        Ok(directory::network(db(ctx)?, &key).await?.map(Network))
    }

    /// Institutions, narrowed by the filter.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn institutions(
        &self,
        ctx: &Context<'_>,
        filter: Option<InstitutionFilterInput>,
        first: i32,
        after: Option<String>,
    ) -> Result<Conn<Institution>> {
        let page = page_args(first, after.as_deref())?;
        let db = db(ctx)?;
        let filter = filter.unwrap_or_default().validate(db).await?;
        let rows = directory::institutions_page(db, &filter, page).await?;
        Ok(connect(
            rows,
            page.after,
            Counted(CountOf::Institutions(filter)),
            |i| (i.id, Institution(i)),
        ))
    }

    /// An institution by id or key.
    async fn institution(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Institution>> {
        let key = id_or_key("id", &id)?;
        Ok(directory::institution(db(ctx)?, &key)
            .await?
            .map(Institution))
    }

    /// Registered grantees: the organisations grants and researcher tokens may name.
    async fn organisations(&self, ctx: &Context<'_>) -> Result<Vec<Organisation>> {
        Ok(directory::organisations(db(ctx)?)
            .await?
            .into_iter()
            .map(Organisation)
            .collect())
    }
}
