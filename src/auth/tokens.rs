//! Issuing, revoking and checking tokens.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use entity::{networks, organisations, regions, tokens};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation, decode, decode_header, encode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::keys::Keys;
use super::{NetworkRef, OrganisationRef, Principal};
use crate::directory;
use crate::domain::{GssCode, IdOrKey, Role, Scopes};
use crate::error::{ApiError, ApiResult};

/// Why a token was refused. The client is told `client_message()`; the log gets the detail.
#[derive(Debug)]
pub enum AuthError {
    Malformed(String),
    Invalid(String),
    Expired,
    NotYetValid,
    Revoked,
    UnknownIssuer(String),
    UnknownKey(String),
    Internal(anyhow::Error),
}

impl AuthError {
    pub fn client_message(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "the bearer token is malformed",
            AuthError::Invalid(_) | AuthError::UnknownIssuer(_) | AuthError::UnknownKey(_) => {
                "the bearer token is not valid here"
            }
            AuthError::Expired => "the bearer token has expired",
            AuthError::NotYetValid => "the bearer token is not valid yet",
            AuthError::Revoked => "the bearer token has been revoked",
            AuthError::Internal(_) => "the bearer token could not be checked; try again",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            AuthError::Malformed(d) | AuthError::Invalid(d) => d.clone(),
            AuthError::UnknownIssuer(i) => format!("unknown issuer `{i}`"),
            AuthError::UnknownKey(k) => format!("unknown key id `{k}`"),
            AuthError::Internal(e) => format!("{e:#}"),
            other => other.client_message().to_owned(),
        }
    }
}

impl From<anyhow::Error> for AuthError {
    fn from(e: anyhow::Error) -> Self {
        AuthError::Internal(e)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct OwnClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// What a token is to be issued for, before it is checked.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub role: Role,
    pub network: Option<IdOrKey>,
    pub region: Option<GssCode>,
    pub organisation: Option<IdOrKey>,
    pub scopes: Option<String>,
    pub ttl_seconds: Option<u64>,
    pub subject: Option<String>,
    /// Who issues it, for the record (a principal's subject, or `cli`).
    pub issued_by: String,
}

/// A token resolved to what it names, ready for a policy check and then `issue`.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub role: Role,
    pub network: Option<networks::Model>,
    pub region: Option<regions::Model>,
    pub organisation: Option<organisations::Model>,
    pub scopes: Scopes,
    pub ttl_seconds: u64,
    pub subject: Option<String>,
    pub issued_by: String,
}

/// An issued token: shown once, never stored.
pub struct Issued {
    pub token: String,
    pub row: tokens::Model,
}

/// Parses a lifetime such as `1h`, `30d` or `3600` (seconds).
pub fn parse_ttl(raw: &str) -> Result<u64, String> {
    if let Ok(secs) = raw.trim().parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(raw.trim())
        .map(|d| d.as_secs())
        .map_err(|e| format!("`{raw}` is not a lifetime such as 1h, 30d or 3600: {e}"))
}

impl IssueRequest {
    /// Checks the request's shape and resolves what it names. Errors name the input field.
    pub async fn resolve<C: ConnectionTrait>(self, db: &C, keys: &Keys) -> ApiResult<Resolved> {
        self.check_anchor()?;
        let network = match &self.network {
            Some(id) => Some(directory::require_network(db, "input.network", id).await?),
            None => None,
        };
        let region = match &self.region {
            Some(code) => Some(
                directory::region_by_code(db, code)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("input.region: region {code}")))?,
            ),
            None => None,
        };
        let organisation = match &self.organisation {
            Some(id) => Some(directory::organisation(db, id).await?.ok_or_else(|| {
                ApiError::NotFound("input.organisation: organisation".to_owned())
            })?),
            None => None,
        };
        let scopes = self.resolve_scopes(db).await?;
        let ttl_seconds = self.check_ttl(keys)?;
        self.check_subject()?;
        Ok(Resolved {
            role: self.role,
            network,
            region,
            organisation,
            scopes,
            ttl_seconds,
            subject: self.subject,
            issued_by: self.issued_by,
        })
    }

    /// The role's anchor (network, region or organisation) is given, and nothing else is.
    fn check_anchor(&self) -> ApiResult<()> {
        let anchor = self.role.anchor();
        let given = [
            ("network", self.network.is_some()),
            ("region", self.region.is_some()),
            ("organisation", self.organisation.is_some()),
        ];
        for (field, present) in given {
            let wanted = match anchor {
                Some("network") => field == "network",
                Some("region") => field == "region",
                Some("org") => field == "organisation",
                _ => false,
            };
            if present && !wanted {
                return Err(ApiError::bad_input(
                    format!("input.{field}"),
                    format!("a {} token does not take a {field}", self.role),
                ));
            }
            if !present && wanted {
                return Err(ApiError::bad_input(
                    format!("input.{field}"),
                    format!("a {} token needs a {field}", self.role),
                ));
            }
        }
        Ok(())
    }

    /// The scopes asked for (all of them if none), every network they name known.
    async fn resolve_scopes<C: ConnectionTrait>(&self, db: &C) -> ApiResult<Scopes> {
        let scopes = match &self.scopes {
            Some(s) => Scopes::parse(s).map_err(|e| ApiError::bad_input("input.scopes", e))?,
            None => Scopes::full(),
        };
        if let Some(keys_named) = &scopes.networks {
            for k in keys_named {
                if directory::network(db, &IdOrKey::Key(k.clone()))
                    .await?
                    .is_none()
                {
                    return Err(ApiError::bad_input(
                        "input.scopes",
                        format!("scope network:{k} names no network"),
                    ));
                }
            }
        }
        Ok(scopes)
    }

    /// The lifetime asked for (the default if none), within the configured maximum.
    fn check_ttl(&self, keys: &Keys) -> ApiResult<u64> {
        let ttl_seconds = self.ttl_seconds.unwrap_or(keys.default_ttl);
        if ttl_seconds == 0 || ttl_seconds > keys.max_ttl {
            return Err(ApiError::bad_input(
                "input.ttlSeconds",
                format!("must be between 1 and {} seconds", keys.max_ttl),
            ));
        }
        Ok(ttl_seconds)
    }

    fn check_subject(&self) -> ApiResult<()> {
        if let Some(s) = &self.subject
            && (s.trim().is_empty() || s.len() > 200)
        {
            return Err(ApiError::bad_input(
                "input.subject",
                "must be 1 to 200 characters",
            ));
        }
        Ok(())
    }
}

/// Records and signs a token. The caller has checked that the issuer may issue it.
pub async fn issue<C: ConnectionTrait>(db: &C, keys: &Keys, r: Resolved) -> ApiResult<Issued> {
    let Some(encoding) = &keys.own.encoding else {
        return Err(ApiError::Conflict(
            "this node holds no signing key (auth.private_key_file), so it cannot issue tokens"
                .into(),
        ));
    };
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let now = Utc::now();
    let expires = now + Duration::seconds(i64::try_from(r.ttl_seconds).unwrap_or(i64::MAX / 2));
    let scope = (!r.scopes.is_full()).then(|| r.scopes.to_string());
    let subject = r.subject.clone().unwrap_or_else(|| format!("token:{jti}"));
    let row = tokens::ActiveModel {
        id: Set(jti.clone()),
        subject: Set(subject.clone()),
        role: Set(r.role.into()),
        network_id: Set(r.network.as_ref().map(|n| n.id)),
        region_code: Set(r.region.as_ref().map(|g| g.code.clone())),
        organisation_id: Set(r.organisation.as_ref().map(|o| o.id)),
        scopes: Set(scope.clone()),
        issued_by: Set(r.issued_by.clone()),
        issued_at: Set(now),
        expires_at: Set(expires),
        revoked_at: Set(None),
        revoked_by: Set(None),
    }
    .insert(db)
    .await
    .context("Failed to record the token")?;
    let claims = OwnClaims {
        iss: keys.issuer.clone(),
        aud: keys.audience.clone(),
        sub: subject,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        exp: expires.timestamp(),
        jti,
        role: r.role.as_str().to_owned(),
        network: r.network.as_ref().map(|n| n.key.clone()),
        region: r.region.as_ref().map(|g| g.code.clone()),
        org: r.organisation.as_ref().map(|o| o.key.clone()),
        scope,
    };
    let mut header = Header::new(keys.own.algorithm);
    header.kid = keys.own.kid.clone();
    let token = encode(&header, &claims, encoding)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("signing a token")))?;
    Ok(Issued { token, row })
}

/// Marks a token revoked from now on. Revoking twice keeps the first time.
pub async fn revoke<C: ConnectionTrait>(db: &C, jti: &str, by: &str) -> ApiResult<tokens::Model> {
    let row = tokens::Entity::find_by_id(jti.to_owned())
        .one(db)
        .await
        .context("Failed to read the token's record")?
        .ok_or_else(|| ApiError::NotFound(format!("token {jti}")))?;
    if row.revoked_at.is_some() {
        return Ok(row);
    }
    let mut am: tokens::ActiveModel = row.into();
    am.revoked_at = Set(Some(Utc::now()));
    am.revoked_by = Set(Some(by.to_owned()));
    Ok(am
        .update(db)
        .await
        .context("Failed to record the revocation")?)
}

fn validation(
    algorithms: Vec<jsonwebtoken::Algorithm>,
    issuer: &str,
    audience: &str,
    leeway: u64,
) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.leeway = leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    v
}

fn jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed(e.to_string()),
        ErrorKind::MissingRequiredClaim(c) => AuthError::Malformed(format!("missing claim {c}")),
        ErrorKind::InvalidClaimFormat(c) => AuthError::Malformed(format!("malformed claim {c}")),
        _ => AuthError::Invalid(e.to_string()),
    }
}

#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
}

/// Checks a bearer token and returns who it names.
pub async fn authenticate<C: ConnectionTrait>(
    db: &C,
    keys: &Keys,
    token: &str,
) -> Result<Principal, AuthError> {
    // `alg: none` and unknown algorithms fail here: they are not in jsonwebtoken's list.
    let header = decode_header(token).map_err(|e| AuthError::Malformed(format!("header: {e}")))?;
    // The issuer only chooses which keys to try; nothing unverified is trusted past this.
    let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|e| AuthError::Malformed(format!("claims: {e}")))?;
    let iss = peek
        .iss
        .ok_or_else(|| AuthError::Malformed("no iss claim".into()))?;

    if iss == keys.issuer {
        if header.alg != keys.own.algorithm {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not the pinned {:?}",
                header.alg, keys.own.algorithm
            )));
        }
        if let Some(kid) = &keys.own.kid
            && header.kid.as_deref() != Some(kid.as_str())
        {
            return Err(AuthError::UnknownKey(header.kid.unwrap_or_default()));
        }
        let v = validation(
            vec![keys.own.algorithm],
            &keys.issuer,
            &keys.audience,
            keys.leeway,
        );
        let data = decode::<OwnClaims>(token, &keys.own.decoding, &v).map_err(jwt_error)?;
        return own_principal(db, data.claims).await;
    }

    let Some(ext) = keys.external.iter().find(|e| e.issuer == iss) else {
        return Err(AuthError::UnknownIssuer(iss));
    };
    if !ext.algorithms.contains(&header.alg) {
        return Err(AuthError::Invalid(format!(
            "algorithm {:?} is not accepted from {iss}",
            header.alg
        )));
    }
    let kid = header.kid.clone().unwrap_or_default();
    let Some(key) = ext.keys.get(&kid) else {
        return Err(AuthError::UnknownKey(kid));
    };
    let v = validation(
        ext.algorithms.clone(),
        &ext.issuer,
        &ext.audience,
        keys.leeway,
    );
    let data = decode::<serde_json::Map<String, Json>>(token, key, &v).map_err(jwt_error)?;
    external_principal(db, ext, data.claims).await
}

/// A token's record with the keys of the network and organisation it names, read in one
/// statement: every authenticated request reads it.
#[derive(sea_orm::FromQueryResult)]
struct TokenRecord {
    id: String,
    subject: String,
    role: entity::vocab::Role,
    network_id: Option<i64>,
    region_code: Option<String>,
    organisation_id: Option<i64>,
    scopes: Option<String>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    network_key: Option<String>,
    organisation_key: Option<String>,
}

async fn own_principal<C: ConnectionTrait>(db: &C, c: OwnClaims) -> Result<Principal, AuthError> {
    // The row is the authority: a signed token this service has no record of is refused.
    let statement = crate::sql::Sql::format(
        "SELECT t.id, t.subject, t.role, t.network_id, t.region_code, t.organisation_id, \
           t.scopes, t.expires_at, t.revoked_at, n.key AS network_key, o.key AS organisation_key \
         FROM tokens t LEFT JOIN networks n ON n.id = t.network_id \
           LEFT JOIN organisations o ON o.id = t.organisation_id WHERE t.id = {}",
        [crate::sql::Sql::value(c.jti.clone())],
    );
    let row = <TokenRecord as sea_orm::FromQueryResult>::find_by_statement(
        statement.statement(db.get_database_backend()),
    )
    .one(db)
    .await
    .context("Failed to read the token's record")?
    .ok_or_else(|| AuthError::Invalid(format!("token {} was not issued here", c.jti)))?;
    if row.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    let role = Role::from(row.role);
    // A network or organisation deleted since the token was issued: the token is invalid.
    let gone = |what: &str, id: i64| AuthError::Invalid(format!("{what} {id} no longer exists"));
    let network = match (row.network_id, row.network_key) {
        (Some(id), Some(key)) => Some(NetworkRef { id, key }),
        (Some(id), None) => return Err(gone("network", id)),
        (None, _) => None,
    };
    let organisation = match (row.organisation_id, row.organisation_key) {
        (Some(id), Some(key)) => Some(OrganisationRef { id, key }),
        (Some(id), None) => return Err(gone("organisation", id)),
        (None, _) => None,
    };
    let region = row
        .region_code
        .as_deref()
        .map(GssCode::parse)
        .transpose()
        .map_err(|e| AuthError::Internal(anyhow::anyhow!("stored region: {e}")))?;
    let scopes = Scopes::parse(row.scopes.as_deref().unwrap_or(""))
        .map_err(|e| AuthError::Internal(anyhow::anyhow!("stored scopes: {e}")))?;
    Ok(Principal {
        subject: row.subject,
        role,
        network,
        region,
        organisation,
        scopes,
        token_id: Some(row.id),
        issuer: c.iss,
        expires_at: row.expires_at,
    })
}

fn claim_str(claims: &serde_json::Map<String, Json>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

async fn external_principal<C: ConnectionTrait>(
    db: &C,
    ext: &super::keys::ExternalKeys,
    claims: serde_json::Map<String, Json>,
) -> Result<Principal, AuthError> {
    let map = &ext.claims;
    let subject = claim_str(&claims, &map.subject)
        .ok_or_else(|| AuthError::Malformed(format!("no {} claim", map.subject)))?;
    let role = external_role(map, &claims)?;
    let mut principal = Principal {
        subject,
        role,
        network: None,
        region: None,
        organisation: None,
        scopes: Scopes::parse(claim_str(&claims, &map.scope).as_deref().unwrap_or(""))
            .map_err(|e| AuthError::Invalid(e.0))?,
        token_id: claim_str(&claims, "jti"),
        issuer: ext.issuer.clone(),
        expires_at: claims
            .get("exp")
            .and_then(Json::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| AuthError::Malformed("exp is not a timestamp".into()))?,
    };
    match role.anchor() {
        Some("network") => {
            let key = anchor_claim(&claims, role, &map.network)?;
            principal.network = Some(claimed_network(db, &key).await?);
        }
        Some("region") => {
            let code = anchor_claim(&claims, role, &map.region)?;
            principal.region = Some(GssCode::parse(&code).map_err(|e| AuthError::Invalid(e.0))?);
        }
        Some("org") => {
            let key = anchor_claim(&claims, role, &map.organisation)?;
            principal.organisation = Some(claimed_organisation(db, &key).await?);
        }
        _ => {}
    }
    Ok(principal)
}

/// The role an external token claims, through the issuer's role mapping if it has one.
fn external_role(
    map: &crate::config::ClaimMapping,
    claims: &serde_json::Map<String, Json>,
) -> Result<Role, AuthError> {
    let raw_role = claim_str(claims, &map.role)
        .ok_or_else(|| AuthError::Malformed(format!("no {} claim", map.role)))?;
    let role_name = if map.roles.is_empty() {
        raw_role.clone()
    } else {
        map.roles
            .get(&raw_role)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("role `{raw_role}` is not mapped")))?
    };
    role_name
        .parse()
        .map_err(|e: crate::domain::Invalid| AuthError::Invalid(e.0))
}

/// The claim that anchors a `role` token (its network, region or organisation).
fn anchor_claim(
    claims: &serde_json::Map<String, Json>,
    role: Role,
    name: &str,
) -> Result<String, AuthError> {
    claim_str(claims, name)
        .ok_or_else(|| AuthError::Invalid(format!("a {role} token needs {name}")))
}

async fn claimed_network<C: ConnectionTrait>(db: &C, key: &str) -> Result<NetworkRef, AuthError> {
    let id = IdOrKey::parse(key).map_err(|e| AuthError::Invalid(e.0))?;
    let n = directory::network(db, &id)
        .await
        .map_err(|e| {
            AuthError::Internal(
                e.into_anyhow()
                    .context("Failed to look up the network claim"),
            )
        })?
        .ok_or_else(|| AuthError::Invalid(format!("network `{key}` is unknown")))?;
    Ok(NetworkRef {
        id: n.id,
        key: n.key,
    })
}

async fn claimed_organisation<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<OrganisationRef, AuthError> {
    let id = IdOrKey::parse(key).map_err(|e| AuthError::Invalid(e.0))?;
    let o = directory::organisation(db, &id)
        .await
        .map_err(|e| {
            AuthError::Internal(
                e.into_anyhow()
                    .context("Failed to look up the organisation claim"),
            )
        })?
        .ok_or_else(|| AuthError::Invalid(format!("organisation `{key}` is unknown")))?;
    Ok(OrganisationRef {
        id: o.id,
        key: o.key,
    })
}
