//! The schema's object types: the directory (regions, districts, networks, institutions,
//! memberships, organisations) and returns (returns, their values, the chase list). They are
//! one module because the schema's graph is one: a network's chase list holds returns, whose
//! institution has a steward network. The area modules (`directory`, `returns`, `sharing`,
//! `impact`, `identity`) hold root fields and inputs, and import these; these import no area
//! module. Resolvers stay thin and go through the loaders.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    geographies, institution_identifiers, institutions, memberships, networks, organisations,
    regions, return_values, returns,
};

use super::catalogue::Metric;
use super::connection::{IdCursor, connect, page_args};
use super::context::{caller, db, internal, loaders};
use super::enums::{MembershipStatus, ReturnStatus, SectorGql};
use super::loaders::*;
use super::scalars::{Date, Decimal, FinancialYear, GssCode};
use crate::directory::{self, InstitutionFilter};
use crate::domain::{self, quantity};
use crate::error::ApiError;
use crate::ingest;
use crate::policy;
use crate::returns as svc;

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
pub struct Counted(pub(crate) CountOf);

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

pub(crate) type Conn<N> = Connection<IdCursor, N, Counted>;

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
    ) -> Result<Vec<Submission>> {
        submissions(ctx, &self.0, period).await
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
            status: m.status.into(),
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
        Ok(domain::Sector::from(self.0.sector).into())
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

/// One value of a return.
pub struct MetricValue {
    v: return_values::Model,
    scale: Option<u32>,
}

/// The catalogue entry of a value's metric; a code outside the catalogue is an internal error.
async fn metric_of(
    ctx: &Context<'_>,
    v: &return_values::Model,
) -> Result<std::sync::Arc<crate::catalogue::Metric>> {
    loaders(ctx)?
        .loader()
        .catalogue()
        .await?
        .get(&v.metric_code)
        .cloned()
        .ok_or_else(|| {
            internal(&format!(
                "return_values row {}, column metric_code: `{}` is not in the catalogue",
                v.id, v.metric_code
            ))
        })
}

#[Object]
impl MetricValue {
    async fn metric(&self, ctx: &Context<'_>) -> Result<Metric> {
        Ok(Metric(metric_of(ctx, &self.v).await?))
    }
    /// The value in the metric's unit, with its scale's decimal places; null when not reported.
    async fn value(&self, ctx: &Context<'_>) -> Result<Option<Decimal>> {
        let Some(v) = self.v.value else {
            return Ok(None);
        };
        let scale = match self.scale {
            Some(s) => s,
            None => metric_of(ctx, &self.v).await?.scale,
        };
        Ok(Some(Decimal(quantity::from_minor_units(v, scale))))
    }
    /// Not reported, which is not zero.
    async fn not_reported(&self) -> bool {
        self.v.not_reported
    }
    /// `district:CODE` or `imd_decile:N` for breakdown metrics.
    async fn breakdown(&self) -> Option<&str> {
        Some(self.v.breakdown.as_str()).filter(|b| !b.is_empty())
    }
    async fn method(&self) -> Option<&str> {
        self.v.method.as_deref()
    }
}

/// One version of an institution's return for one period.
pub struct Return {
    r: returns::Model,
    values: Values,
    institution: Option<entity::institutions::Model>,
}

/// A return's values, as far as they are known when the return is made.
enum Values {
    /// Not read yet: `values` reads them through the policy.
    Load,
    /// The caller's own submission (a dry run's, or a fresh one's): the token's metric
    /// scopes still narrow what shows.
    Submitted(Vec<return_values::Model>),
    /// Read through the policy with the page they belong to: shown as they are.
    Visible(Vec<return_values::Model>),
}

impl Return {
    /// What a batch would write (a dry run's answer): not stored, so no id or version yet.
    pub(crate) fn prepared(p: ingest::Prepared) -> Self {
        Return {
            r: returns::Model {
                id: 0,
                institution_id: p.institution.id,
                period: p.period.to_string(),
                period_start: p.start,
                period_end: p.end,
                version: 0,
                status: entity::vocab::ReturnStatus::Submitted,
                basis: p.basis,
                notes: p.notes,
                batch_id: None,
                submitted_at: Utc::now(),
                submitted_by: String::new(),
                published_at: None,
                decided_at: None,
                decided_by: None,
                reject_reason: None,
                current_steward: false,
                current_published: false,
            },
            values: Values::Submitted(
                p.values
                    .into_iter()
                    .map(|v| return_values::Model {
                        id: 0,
                        return_id: 0,
                        metric_code: v.metric,
                        breakdown: v.breakdown,
                        not_reported: v.value.is_none(),
                        value: v.value,
                        method: v.method,
                    })
                    .collect(),
            ),
            institution: Some(p.institution),
        }
    }

    pub(crate) fn stored(r: returns::Model) -> Self {
        Self {
            r,
            values: Values::Load,
            institution: None,
        }
    }

    /// A return read with its institution and, when the query asked for them, the values the
    /// caller sees (`returns::values_of`).
    pub(crate) fn read(
        r: returns::Model,
        institution: entity::institutions::Model,
        values: Option<Vec<return_values::Model>>,
    ) -> Self {
        Self {
            r,
            values: values.map_or(Values::Load, Values::Visible),
            institution: Some(institution),
        }
    }
}

#[Object]
impl Return {
    /// The return's id; empty for a dry run's returns, which are not written.
    async fn id(&self) -> ID {
        ID(if self.r.id > 0 {
            self.r.id.to_string()
        } else {
            String::new()
        })
    }
    async fn institution(&self, ctx: &Context<'_>) -> Result<Institution> {
        if let Some(i) = &self.institution {
            return Ok(Institution(i.clone()));
        }
        loaders(ctx)?
            .load_one(InstitutionId(self.r.institution_id))
            .await?
            .map(Institution)
            .ok_or_else(|| internal("return without institution"))
    }
    async fn period(&self) -> Result<FinancialYear> {
        Ok(FinancialYear(
            self.r
                .period
                .parse()
                .map_err(|_| internal("stored period"))?,
        ))
    }
    async fn period_start(&self) -> Date {
        Date(self.r.period_start)
    }
    async fn period_end(&self) -> Date {
        Date(self.r.period_end)
    }
    /// 1 for the first submission; each resubmission is a new version of the whole return.
    async fn version(&self) -> i32 {
        self.r.version
    }
    async fn status(&self) -> ReturnStatus {
        self.r.status.into()
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.r.submitted_at
    }
    /// When it became current for readers outside the steward network.
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.r.published_at
    }
    /// Why it was rejected.
    async fn reject_reason(&self) -> Option<&str> {
        self.r.reject_reason.as_deref()
    }
    async fn basis(&self) -> Option<&str> {
        self.r.basis.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.r.notes.as_deref()
    }
    /// The values the caller may see (its token's metric scopes apply).
    async fn values(&self, ctx: &Context<'_>) -> Result<Vec<MetricValue>> {
        let rows = match &self.values {
            Values::Visible(v) => v.clone(),
            Values::Submitted(v) => {
                // Known values are the caller's own submission; scopes still narrow what shows.
                let allowed = policy::returns::visible_metric_groups(caller(ctx));
                let mut out = vec![];
                for v in v {
                    let visible = match &allowed {
                        Some(groups) => groups.contains(&metric_of(ctx, v).await?.group),
                        None => true,
                    };
                    if visible {
                        out.push(v.clone());
                    }
                }
                out
            }
            Values::Load => loaders(ctx)?
                .load_one(ValuesOf(self.r.id))
                .await?
                .unwrap_or_default(),
        };
        Ok(rows
            .into_iter()
            .map(|v| MetricValue { v, scale: None })
            .collect())
    }
}

/// The standing of a member's return for one period.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SubmissionState {
    Missing,
    Submitted,
    Approved,
}

/// One line of the coordinator's chase list.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Submission {
    state: SubmissionState,
    /// The last day of the institution's period.
    period_end: Date,
    #[graphql(skip)]
    institution: entity::institutions::Model,
    #[graphql(skip)]
    latest: Option<returns::Model>,
}

#[ComplexObject]
impl Submission {
    async fn institution(&self) -> Institution {
        Institution(self.institution.clone())
    }
    /// The current version, when there is one.
    #[graphql(name = "return")]
    async fn current(&self) -> Option<Return> {
        self.latest.clone().map(Return::stored)
    }
}

pub(crate) async fn submissions(
    ctx: &Context<'_>,
    network: &entity::networks::Model,
    period: FinancialYear,
) -> Result<Vec<Submission>> {
    let rows = svc::submissions(db(ctx)?, caller(ctx), network, period.0).await?;
    Ok(rows
        .into_iter()
        .map(|s| Submission {
            state: match s.latest.as_ref().map(|r| r.status) {
                None => SubmissionState::Missing,
                Some(entity::vocab::ReturnStatus::Approved) => SubmissionState::Approved,
                Some(
                    entity::vocab::ReturnStatus::Submitted | entity::vocab::ReturnStatus::Rejected,
                ) => SubmissionState::Submitted,
            },
            period_end: Date(s.period_end),
            institution: s.institution,
            latest: s.latest,
        })
        .collect())
}
