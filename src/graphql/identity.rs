//! Who is calling (`viewer`) and tokens (`issueToken`, `revokeToken`).

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::tokens;

use super::context::{caller, db, id_or_key, keys};
use super::enums::RoleGql;
use super::objects::{Network, Organisation, Region};
use super::scalars::GssCode;
use crate::auth::{self, Caller, IssueRequest, Principal};
use crate::directory;
use crate::domain::{self, IdOrKey};
use crate::error::ApiError;
use crate::policy;

/// The caller, as their token says.
pub struct Viewer(Principal);

#[Object]
impl Viewer {
    /// The token's subject.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn role(&self) -> RoleGql {
        self.0.role.into()
    }
    /// For network admins and submitters: their network.
    async fn network(&self, ctx: &Context<'_>) -> Result<Option<Network>> {
        match &self.0.network {
            Some(n) => Ok(directory::network(db(ctx)?, &IdOrKey::Id(n.id))
                .await?
                .map(Network)),
            None => Ok(None),
        }
    }
    /// For region analysts: their region.
    async fn region(&self, ctx: &Context<'_>) -> Result<Option<Region>> {
        match &self.0.region {
            Some(code) => Ok(directory::region_by_code(db(ctx)?, code).await?.map(Region)),
            None => Ok(None),
        }
    }
    /// For researchers: their organisation.
    async fn organisation(&self, ctx: &Context<'_>) -> Result<Option<Organisation>> {
        match &self.0.organisation {
            Some(o) => Ok(directory::organisation(db(ctx)?, &IdOrKey::Id(o.id))
                .await?
                .map(Organisation)),
            None => Ok(None),
        }
    }
    /// The token's scopes, one entry each; empty for the role's full reach.
    async fn scopes(&self) -> Vec<String> {
        self.0
            .scopes
            .to_string()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// The token's id (`jti`), which `revokeToken` takes.
    async fn token_id(&self) -> Option<&str> {
        self.0.token_id.as_deref()
    }
    /// Who issued the token (`iss`).
    async fn issuer(&self) -> &str {
        &self.0.issuer
    }
    /// The grants in force that reach the caller: public ones, their region's (analysts) or
    /// their organisation's (researchers). Their token's scopes may narrow them further.
    async fn grants(&self, ctx: &Context<'_>) -> Result<Vec<super::sharing::Grant>> {
        let caller = Caller::Token(Box::new(self.0.clone()));
        Ok(crate::sharing::reaching(db(ctx)?, &caller)
            .await?
            .into_iter()
            .map(super::sharing::Grant)
            .collect())
    }
}

#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The caller as their token says; null when anonymous.
    async fn viewer(&self, ctx: &Context<'_>) -> Option<Viewer> {
        caller(ctx).principal().cloned().map(Viewer)
    }
}

/// What to issue a token for. `network` for admins and submitters, `region` for analysts,
/// `organisation` for researchers, none for operators.
#[derive(InputObject)]
pub struct IssueTokenInput {
    role: RoleGql,
    network: Option<ID>,
    region: Option<GssCode>,
    organisation: Option<ID>,
    /// API.md's scope grammar, one entry each (`metrics:spend`, `years:2021/22-2023/24`,
    /// `network:black-country`, `read:impact`, …); absent for the role's full reach.
    scopes: Option<Vec<String>>,
    /// Lifetime in seconds (default 30 days; the maximum is a setting).
    ttl_seconds: Option<i32>,
    /// Who or what will hold it, for the record.
    subject: Option<String>,
}

/// A new token: the only time its value is shown.
#[derive(SimpleObject)]
pub struct IssuedToken {
    id: ID,
    token: String,
    expires_at: DateTime<Utc>,
    info: TokenInfo,
}

/// An issued token's record (never the token itself).
#[derive(SimpleObject)]
pub struct TokenInfo {
    id: ID,
    subject: String,
    role: RoleGql,
    scopes: Vec<String>,
    issued_by: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<tokens::Model> for TokenInfo {
    type Error = ApiError;
    fn try_from(t: tokens::Model) -> Result<Self, ApiError> {
        let role = domain::Role::from(t.role);
        Ok(Self {
            id: ID(t.id),
            subject: t.subject,
            role: role.into(),
            scopes: t
                .scopes
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            issued_by: t.issued_by,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        })
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// Issues a token. Operators issue any; a network admin issues submitter tokens for its
    /// own network, and researcher tokens for an organisation its network has granted to,
    /// within one grant (groups, years, network, expiry). Never wider than the issuer's own
    /// token. The token is shown once.
    async fn issue_token(&self, ctx: &Context<'_>, input: IssueTokenInput) -> Result<IssuedToken> {
        let caller = caller(ctx);
        let who = policy::authenticated(caller)?.subject.clone();
        let network = input
            .network
            .as_ref()
            .map(|n| id_or_key("input.network", n))
            .transpose()?;
        let organisation = input
            .organisation
            .as_ref()
            .map(|o| id_or_key("input.organisation", o))
            .transpose()?;
        let ttl_seconds = input
            .ttl_seconds
            .map(|t| {
                u64::try_from(t)
                    .map_err(|_| ApiError::bad_input("input.ttlSeconds", "must be positive"))
            })
            .transpose()?;
        let db = db(ctx)?;
        let keys = keys(ctx)?;
        let resolved = IssueRequest {
            role: input.role.into(),
            network,
            region: input.region.map(|r| r.0),
            organisation,
            scopes: input.scopes.map(|s| s.join(" ")),
            ttl_seconds,
            subject: input.subject,
            issued_by: who,
        }
        .resolve(db, keys)
        .await?;
        // A network admin's researcher token must fit a grant from the admin's network.
        let grants = match (
            resolved.role,
            &resolved.organisation,
            caller.principal().and_then(|p| p.network.as_ref()),
        ) {
            (domain::Role::Researcher, Some(org), Some(own)) => {
                crate::sharing::to_organisation(db, own, org.id).await?
            }
            _ => vec![],
        };
        // Issuing stamps its own clock a moment later: leave a second for it.
        let expires_at = Utc::now()
            + chrono::Duration::seconds(
                i64::try_from(resolved.ttl_seconds).unwrap_or(i64::MAX / 4),
            )
            + chrono::Duration::seconds(1);
        policy::may_issue_token(
            caller,
            &policy::TokenAsk {
                role: resolved.role,
                network_id: resolved.network.as_ref().map(|n| n.id),
                scopes: &resolved.scopes,
                expires_at,
                grants: &grants,
            },
        )?;
        let issued = auth::issue(db, keys, resolved).await?;
        Ok(IssuedToken {
            id: ID(issued.row.id.clone()),
            token: issued.token,
            expires_at: issued.row.expires_at,
            info: issued.row.try_into()?,
        })
    }

    /// Revokes a token by id; it is refused from the next request on. Operators revoke any; a
    /// network admin its network's submitter tokens and researcher tokens scoped to its
    /// network alone; anyone the token they are using.
    async fn revoke_token(&self, ctx: &Context<'_>, id: ID) -> Result<TokenInfo> {
        let caller = caller(ctx);
        let p = policy::authenticated(caller)?;
        let db = db(ctx)?;
        let row = entity::tokens::Entity::find_by_id(id.to_string())
            .one(db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("token {}", id.as_str())))?;
        policy::may_revoke_token(
            caller,
            &row.id,
            row.role.into(),
            row.network_id,
            row.scopes.as_deref(),
        )?;
        Ok(auth::revoke(db, &row.id, &p.subject).await?.try_into()?)
    }
}

use sea_orm::EntityTrait;
