//! Grants: `grantAccess`, `revokeGrant`, `grants(networkId)`, and the grants that reach the
//! viewer. Who may read what through them is decided in `policy::returns`.

use std::collections::BTreeSet;

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{grant_events, grants};

use super::connection::{IdCursor, connect, page_args};
use super::context::{caller, db, id_or_key, loaders};
use super::enums::{AccessLevelGql, GranteeKind, MetricGroupGql};
use super::loaders::{GroupsOfGrant, NetworkId};
use super::objects::{Network, Organisation, Region};
use super::scalars::{Date, FinancialYear, GssCode};
use crate::directory;
use crate::domain;
use crate::error::ApiError;
use crate::policy;
use crate::sharing::{self, Agreement, GrantSpec, Grantee};

/// Who a grant is to: exactly one of the three.
#[derive(InputObject)]
pub struct GranteeInput {
    /// The region's analysts.
    region: Option<GssCode>,
    /// A registered organisation's researchers (its id or key).
    organisation: Option<ID>,
    /// Everyone, anonymous readers included.
    public: Option<bool>,
}

/// The data-sharing agreement a grant rests on.
#[derive(InputObject)]
pub struct AgreementInput {
    reference: String,
    lawful_basis: String,
    purpose: String,
    review_date: Date,
}

#[derive(InputObject)]
pub struct GrantInput {
    /// The steward network granting its institutions' returns.
    network_id: ID,
    grantee: GranteeInput,
    level: AccessLevelGql,
    metric_groups: Vec<MetricGroupGql>,
    from_year: FinancialYear,
    to_year: FinancialYear,
    expires_at: DateTime<Utc>,
    agreement: AgreementInput,
}

/// One recorded change to a grant.
#[derive(SimpleObject)]
pub struct GrantEvent {
    /// `GRANTED` or `REVOKED`.
    action: String,
    at: DateTime<Utc>,
    by: String,
}

impl From<grant_events::Model> for GrantEvent {
    fn from(e: grant_events::Model) -> Self {
        Self {
            action: e.action.as_str().to_owned(),
            at: e.at,
            by: e.by,
        }
    }
}

/// A data-sharing agreement, as recorded on its grant.
#[derive(SimpleObject)]
#[graphql(name = "Agreement")]
pub struct AgreementGql {
    reference: String,
    lawful_basis: String,
    purpose: String,
    review_date: Date,
}

/// A steward network's grant of its institutions' returns.
pub struct Grant(pub(crate) grants::Model);

#[Object]
impl Grant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The granting (steward) network.
    async fn network(&self, ctx: &Context<'_>) -> Result<Option<Network>> {
        Ok(loaders(ctx)?
            .load_one(NetworkId(self.0.network_id))
            .await?
            .map(Network))
    }
    async fn grantee_kind(&self) -> GranteeKind {
        self.0.grantee_kind.into()
    }
    /// For grants to a region.
    async fn grantee_region(&self, ctx: &Context<'_>) -> Result<Option<Region>> {
        let Some(code) = &self.0.grantee_region else {
            return Ok(None);
        };
        let code = domain::GssCode::parse(code)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored region code: {e}")))?;
        Ok(directory::region_by_code(db(ctx)?, &code)
            .await?
            .map(Region))
    }
    /// For grants to an organisation.
    async fn grantee_organisation(&self, ctx: &Context<'_>) -> Result<Option<Organisation>> {
        let Some(id) = self.0.grantee_organisation_id else {
            return Ok(None);
        };
        Ok(directory::organisation(db(ctx)?, &domain::IdOrKey::Id(id))
            .await?
            .map(Organisation))
    }
    async fn level(&self) -> AccessLevelGql {
        sharing::level_of(&self.0).into()
    }
    async fn metric_groups(&self, ctx: &Context<'_>) -> Result<Vec<MetricGroupGql>> {
        Ok(loaders(ctx)?
            .load_one(GroupsOfGrant(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect())
    }
    #[graphql(name = "fromYear")]
    async fn first_year(&self) -> Result<FinancialYear> {
        Ok(FinancialYear(sharing::years_of(&self.0)?.0))
    }
    #[graphql(name = "toYear")]
    async fn last_year(&self) -> Result<FinancialYear> {
        Ok(FinancialYear(sharing::years_of(&self.0)?.1))
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn agreement(&self) -> AgreementGql {
        AgreementGql {
            reference: self.0.agreement_reference.clone(),
            lawful_basis: self.0.lawful_basis.clone(),
            purpose: self.0.purpose.clone(),
            review_date: Date(self.0.review_date),
        }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    async fn revoked_by(&self) -> Option<&str> {
        self.0.revoked_by.as_deref()
    }
    /// Not revoked and not expired.
    async fn in_force(&self) -> bool {
        sharing::in_force(&self.0, Utc::now())
    }
    /// Every change to the grant, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<GrantEvent>> {
        Ok(sharing::history(db(ctx)?, self.0.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// A steward network's disclosure thresholds for readers who see its data only in aggregate.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "DisclosureThresholdsInput")]
pub struct DisclosureThresholds {
    /// Aggregate-only contributors a cell needs (default 3).
    min_contributors: i32,
    /// The dominance rule: the total less its two largest contributors must be at least this
    /// percentage of the largest (default 10).
    dominance_percent: i32,
    /// Counts of people under this are suppressed (default 10).
    people_count_min: i32,
    /// Counts of people are rounded to a multiple of this (default 5).
    people_count_round: i32,
}

impl From<crate::policy::disclosure::Thresholds> for DisclosureThresholds {
    fn from(t: crate::policy::disclosure::Thresholds) -> Self {
        let int = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            min_contributors: int(t.min_contributors),
            dominance_percent: int(t.dominance_percent),
            people_count_min: int(t.people_count_min),
            people_count_round: int(t.people_count_round),
        }
    }
}

/// One logged read of returns or aggregates, or a refused one.
pub struct AccessLogEntry {
    row: entity::access_log::Model,
    networks: Vec<i64>,
}

#[Object]
impl AccessLogEntry {
    async fn at(&self) -> DateTime<Utc> {
        self.row.at
    }
    /// The token's subject; null when anonymous.
    async fn subject(&self) -> Option<&str> {
        self.row.subject.as_deref()
    }
    /// Null when anonymous.
    async fn role(&self) -> Option<super::enums::RoleGql> {
        self.row.role.map(|r| domain::Role::from(r).into())
    }
    /// A researcher's organisation.
    async fn organisation(&self, ctx: &Context<'_>) -> Result<Option<Organisation>> {
        let Some(id) = self.row.organisation_id else {
            return Ok(None);
        };
        Ok(directory::organisation(db(ctx)?, &domain::IdOrKey::Id(id))
            .await?
            .map(Organisation))
    }
    /// `returns` or `impact`.
    async fn operation(&self) -> &str {
        &self.row.operation
    }
    /// The steward networks whose data the read touched (for a refused read: asked about).
    async fn networks(&self, ctx: &Context<'_>) -> Result<Vec<Network>> {
        let mut found: Vec<Network> = loaders(ctx)?
            .load_many(self.networks.iter().map(|&n| NetworkId(n)))
            .await?
            .into_values()
            .map(Network)
            .collect();
        found.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(found)
    }
    async fn refused(&self) -> bool {
        self.row.refused
    }
}

pub struct AccessLogCount {
    network_id: i64,
}

#[Object]
impl AccessLogCount {
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(crate::access_log::count(db(ctx)?, self.network_id).await?)
    }
}

#[derive(Default)]
pub struct SharingQuery;

#[Object]
impl SharingQuery {
    /// Reads of a network's data (and refused reads that asked for it), newest first: for
    /// its admins.
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        network_id: ID,
        first: i32,
        after: Option<String>,
    ) -> Result<Connection<IdCursor, AccessLogEntry, AccessLogCount>> {
        let page = page_args(first, after.as_deref())?;
        let db = db(ctx)?;
        let network =
            directory::require_network(db, "networkId", &id_or_key("networkId", &network_id)?)
                .await?;
        policy::may_administer_sharing(caller(ctx), network.id, "accessLog")?;
        // Reads handed to the writer a moment ago belong in the answer.
        if let Ok(log) = ctx.data::<crate::access_log::AccessLog>() {
            log.flush().await;
        }
        let rows = crate::access_log::page(db, network.id, page).await?;
        let ids: Vec<i64> = rows.items.iter().map(|r| r.id).collect();
        let networks = crate::access_log::networks_of(db, &ids).await?;
        Ok(connect(
            rows,
            page.after,
            AccessLogCount {
                network_id: network.id,
            },
            |row| {
                (
                    row.id,
                    AccessLogEntry {
                        networks: networks.get(&row.id).cloned().unwrap_or_default(),
                        row,
                    },
                )
            },
        ))
    }

    /// A network's disclosure thresholds: for its admins.
    async fn disclosure_thresholds(
        &self,
        ctx: &Context<'_>,
        network_id: ID,
    ) -> Result<DisclosureThresholds> {
        let db = db(ctx)?;
        let network =
            directory::require_network(db, "networkId", &id_or_key("networkId", &network_id)?)
                .await?;
        policy::may_administer_sharing(caller(ctx), network.id, "disclosureThresholds")?;
        Ok(directory::settings::thresholds(db, network.id)
            .await?
            .into())
    }

    /// A network's grants, newest first, revoked and expired ones included: for its admins.
    async fn grants(&self, ctx: &Context<'_>, network_id: ID) -> Result<Vec<Grant>> {
        let db = db(ctx)?;
        let network =
            directory::require_network(db, "networkId", &id_or_key("networkId", &network_id)?)
                .await?;
        policy::may_administer_sharing(caller(ctx), network.id, "grants")?;
        Ok(sharing::of_network(db, network.id)
            .await?
            .into_iter()
            .map(Grant)
            .collect())
    }
}

#[derive(Default)]
pub struct SharingMutation;

#[Object]
impl SharingMutation {
    /// A steward network's admins grant its institutions' returns to the region's analysts,
    /// a registered organisation's researchers, or the public, under an agreement.
    async fn grant_access(&self, ctx: &Context<'_>, input: GrantInput) -> Result<Grant> {
        let db = db(ctx)?;
        let network = directory::require_network(
            db,
            "input.networkId",
            &id_or_key("input.networkId", &input.network_id)?,
        )
        .await?;
        let p = policy::may_administer_sharing(caller(ctx), network.id, "grantAccess")?;
        let by = p.subject.clone();
        let g = &input.grantee;
        let grantee = match (&g.region, &g.organisation, g.public.unwrap_or(false)) {
            (Some(code), None, false) => sharing::region_grantee(db, &code.0).await?,
            (None, Some(id), false) => Grantee::Organisation(
                directory::organisation(db, &id_or_key("input.grantee.organisation", id)?)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "input.grantee.organisation: organisation {}",
                            id.as_str()
                        ))
                    })?,
            ),
            (None, None, true) => Grantee::Public,
            _ => {
                return Err(ApiError::bad_input(
                    "input.grantee",
                    "give exactly one of region, organisation or public: true",
                )
                .into());
            }
        };
        let a = &input.agreement;
        let spec = GrantSpec {
            network,
            grantee,
            level: input.level.into(),
            groups: input
                .metric_groups
                .iter()
                .map(|g| (*g).into())
                .collect::<BTreeSet<_>>(),
            from_year: input.from_year.0,
            to_year: input.to_year.0,
            expires_at: input.expires_at,
            agreement: Agreement {
                reference: sharing::agreement_text("input.agreement.reference", &a.reference, 200)?,
                lawful_basis: sharing::agreement_text(
                    "input.agreement.lawfulBasis",
                    &a.lawful_basis,
                    2000,
                )?,
                purpose: sharing::agreement_text("input.agreement.purpose", &a.purpose, 2000)?,
                review_date: a.review_date.0,
            },
        };
        Ok(Grant(sharing::grant(db, spec, &by).await?))
    }

    /// A steward network's admins raise its disclosure thresholds (never below the defaults);
    /// where the stewards in a cell differ, the strictest applies.
    async fn set_disclosure_thresholds(
        &self,
        ctx: &Context<'_>,
        network_id: ID,
        input: DisclosureThresholds,
    ) -> Result<DisclosureThresholds> {
        let db = db(ctx)?;
        let network =
            directory::require_network(db, "networkId", &id_or_key("networkId", &network_id)?)
                .await?;
        let p = policy::may_administer_sharing(caller(ctx), network.id, "setDisclosureThresholds")?;
        let by = p.subject.clone();
        let t = crate::policy::disclosure::Thresholds {
            min_contributors: i64::from(input.min_contributors),
            dominance_percent: i64::from(input.dominance_percent),
            people_count_min: i64::from(input.people_count_min),
            people_count_round: i64::from(input.people_count_round),
        };
        Ok(directory::settings::set_thresholds(db, network.id, t, &by)
            .await?
            .into())
    }

    /// Revokes a grant: from the next request on it reaches no one. The grant stays, with
    /// who revoked it and when.
    async fn revoke_grant(&self, ctx: &Context<'_>, id: ID) -> Result<Grant> {
        let db = db(ctx)?;
        let n: i64 = id
            .parse()
            .map_err(|_| ApiError::bad_input("id", "a grant id is a number"))?;
        let g = sharing::find(db, n)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("id: grant {n}")))?;
        let p = policy::may_administer_sharing(caller(ctx), g.network_id, "revokeGrant")?;
        let by = p.subject.clone();
        Ok(Grant(sharing::revoke(db, g, &by).await?))
    }
}
