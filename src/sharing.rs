//! Grants (DESIGN.md rule 3): a steward network shares its institutions' returns with a
//! grantee under a data-sharing agreement. Every change is recorded in `grant_events` with
//! who and when, in the same transaction as the change. Who may do what is the policy
//! module's; whose returns a grant reaches is decided in SQL by `policy::returns`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use entity::vocab::{GrantAction, GranteeKind};
use entity::{grant_events, grant_metric_groups, grants, networks, organisations, regions};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
};
use serde_json::json;

use anyhow::Context;

use crate::auth::{Caller, NetworkRef};
use crate::domain::{AccessLevel, FinancialYear, GssCode, Key, MetricGroup, YearRange};
use crate::error::{ApiError, ApiResult};
use crate::policy::GrantReach;

/// Who a grant is to, resolved against the directory.
#[derive(Debug, Clone)]
pub enum Grantee {
    Region(regions::Model),
    Organisation(organisations::Model),
    Public,
}

/// The data-sharing agreement a grant rests on.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub reference: String,
    pub lawful_basis: String,
    pub purpose: String,
    pub review_date: NaiveDate,
}

/// A grant to make, validated.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub network: networks::Model,
    pub grantee: Grantee,
    pub level: AccessLevel,
    pub groups: BTreeSet<MetricGroup>,
    pub from_year: FinancialYear,
    pub to_year: FinancialYear,
    pub expires_at: DateTime<Utc>,
    pub agreement: Agreement,
}

/// A text field of an agreement: trimmed, not empty, not longer than `max` characters.
pub fn agreement_text(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(ApiError::bad_input(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(ApiError::bad_input(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(t.to_owned())
}

impl GrantSpec {
    /// The checks that need no database: years in order, at least one group, an expiry and a
    /// review date still to come.
    pub fn check(&self, now: DateTime<Utc>) -> ApiResult<()> {
        if self.groups.is_empty() {
            return Err(ApiError::bad_input(
                "input.metricGroups",
                "name at least one metric group",
            ));
        }
        if self.from_year > self.to_year {
            return Err(ApiError::bad_input(
                "input.toYear",
                format!("{} is before fromYear {}", self.to_year, self.from_year),
            ));
        }
        if self.expires_at <= now {
            return Err(ApiError::bad_input(
                "input.expiresAt",
                "must be in the future",
            ));
        }
        if self.agreement.review_date < now.date_naive() {
            return Err(ApiError::bad_input(
                "input.agreement.reviewDate",
                "must not be in the past",
            ));
        }
        Ok(())
    }
}

/// The metric groups each of these grants covers (none for an id with no rows).
pub async fn groups_of<C: ConnectionTrait>(
    db: &C,
    grant_ids: &[i64],
) -> ApiResult<HashMap<i64, BTreeSet<MetricGroup>>> {
    let rows = grant_metric_groups::Entity::find()
        .filter(grant_metric_groups::Column::GrantId.is_in(grant_ids.iter().copied()))
        .all(db)
        .await
        .context("Failed to read grants' metric groups")?;
    let mut out: HashMap<i64, BTreeSet<MetricGroup>> = HashMap::new();
    for r in rows {
        out.entry(r.grant_id)
            .or_default()
            .insert(r.metric_group.into());
    }
    Ok(out)
}

/// The metric groups one grant covers.
pub async fn groups_of_one<C: ConnectionTrait>(
    db: &C,
    grant_id: i64,
) -> ApiResult<BTreeSet<MetricGroup>> {
    Ok(groups_of(db, &[grant_id])
        .await?
        .remove(&grant_id)
        .unwrap_or_default())
}

pub fn level_of(g: &grants::Model) -> AccessLevel {
    g.level.into()
}

pub fn years_of(g: &grants::Model) -> ApiResult<(FinancialYear, FinancialYear)> {
    let parse = |s: &str| {
        s.parse::<FinancialYear>()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("grant {}: stored year: {e}", g.id)))
    };
    Ok((parse(&g.from_year)?, parse(&g.to_year)?))
}

/// Whether a grant is in force at `now`: not revoked and not expired.
pub fn in_force(g: &grants::Model, now: DateTime<Utc>) -> bool {
    g.revoked_at.is_none() && g.expires_at > now
}

fn snapshot(g: &grants::Model, groups: &BTreeSet<MetricGroup>) -> String {
    json!({
        "network_id": g.network_id,
        "grantee_kind": g.grantee_kind.as_str(),
        "grantee_region": g.grantee_region,
        "grantee_organisation_id": g.grantee_organisation_id,
        "level": g.level.as_str(),
        "metric_groups": groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "from_year": g.from_year,
        "to_year": g.to_year,
        "expires_at": g.expires_at,
        "agreement_reference": g.agreement_reference,
        "lawful_basis": g.lawful_basis,
        "purpose": g.purpose,
        "review_date": g.review_date,
        "revoked_at": g.revoked_at,
        "revoked_by": g.revoked_by,
    })
    .to_string()
}

async fn record<C: ConnectionTrait>(
    db: &C,
    g: &grants::Model,
    groups: &BTreeSet<MetricGroup>,
    action: GrantAction,
    by: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    grant_events::ActiveModel {
        grant_id: Set(g.id),
        action: Set(action),
        at: Set(at),
        by: Set(by.into()),
        detail: Set(snapshot(g, groups)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Makes a grant and records it, in one transaction.
pub async fn grant(db: &DatabaseConnection, spec: GrantSpec, by: &str) -> ApiResult<grants::Model> {
    let now = Utc::now();
    spec.check(now)?;
    let (kind, region, organisation) = match &spec.grantee {
        Grantee::Region(r) => (GranteeKind::Region, Some(r.code.clone()), None),
        Grantee::Organisation(o) => (GranteeKind::Organisation, None, Some(o.id)),
        Grantee::Public => (GranteeKind::Public, None, None),
    };
    let txn = crate::db::begin_write(db).await?;
    let g = grants::ActiveModel {
        network_id: Set(spec.network.id),
        grantee_kind: Set(kind),
        grantee_region: Set(region),
        grantee_organisation_id: Set(organisation),
        level: Set(spec.level.into()),
        from_year: Set(spec.from_year.to_string()),
        to_year: Set(spec.to_year.to_string()),
        expires_at: Set(spec.expires_at),
        agreement_reference: Set(spec.agreement.reference),
        lawful_basis: Set(spec.agreement.lawful_basis),
        purpose: Set(spec.agreement.purpose),
        review_date: Set(spec.agreement.review_date),
        created_at: Set(now),
        created_by: Set(by.into()),
        revoked_at: Set(None),
        revoked_by: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    grant_metric_groups::Entity::insert_many(spec.groups.iter().map(|&group| {
        grant_metric_groups::ActiveModel {
            grant_id: Set(g.id),
            metric_group: Set(group.into()),
        }
    }))
    .exec_without_returning(&txn)
    .await
    .context("Failed to record the grant's metric groups")?;
    record(&txn, &g, &spec.groups, GrantAction::Granted, by, now).await?;
    txn.commit().await?;
    Ok(g)
}

/// Revokes a grant and records it; from the next statement on, it reaches no one.
pub async fn revoke(
    db: &DatabaseConnection,
    g: grants::Model,
    by: &str,
) -> ApiResult<grants::Model> {
    if g.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "grant {} is already revoked",
            g.id
        )));
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let mut am: grants::ActiveModel = g.into();
    am.revoked_at = Set(Some(now));
    am.revoked_by = Set(Some(by.into()));
    let g = am.update(&txn).await?;
    let groups = groups_of_one(&txn, g.id).await?;
    record(&txn, &g, &groups, GrantAction::Revoked, by, now).await?;
    txn.commit().await?;
    Ok(g)
}

pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> ApiResult<Option<grants::Model>> {
    Ok(grants::Entity::find_by_id(id).one(db).await?)
}

/// A network's grants, newest first, revoked and expired ones included (they are history).
pub async fn of_network<C: ConnectionTrait>(
    db: &C,
    network_id: i64,
) -> ApiResult<Vec<grants::Model>> {
    Ok(grants::Entity::find()
        .filter(grants::Column::NetworkId.eq(network_id))
        .order_by_desc(grants::Column::Id)
        .all(db)
        .await?)
}

/// The grants in force that reach the caller, as the policy decides (`policy::returns::reach`):
/// public ones for everyone, their region's for analysts, their organisation's for researchers.
pub async fn reaching<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
) -> ApiResult<Vec<grants::Model>> {
    let statement = crate::policy::returns::reach(caller).with(crate::sql::Sql::raw(
        "SELECT g.* FROM grants g WHERE g.id IN (SELECT id FROM reach) ORDER BY g.id",
    ));
    Ok(
        grants::Model::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await?,
    )
}

/// What the grants in force from `network` to organisation `organisation_id` reach: what a
/// network admin may issue researcher tokens within.
pub async fn to_organisation<C: ConnectionTrait>(
    db: &C,
    network: &NetworkRef,
    organisation_id: i64,
) -> ApiResult<Vec<GrantReach>> {
    let key = Key::parse(&network.key)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("network {}: key: {e}", network.id)))?;
    let grants = grants::Entity::find()
        .filter(grants::Column::NetworkId.eq(network.id))
        .filter(grants::Column::GranteeKind.eq(GranteeKind::Organisation))
        .filter(grants::Column::GranteeOrganisationId.eq(organisation_id))
        .filter(grants::Column::RevokedAt.is_null())
        .filter(grants::Column::ExpiresAt.gt(Utc::now()))
        .all(db)
        .await
        .context("Failed to read the grants to the organisation")?;
    let ids: Vec<i64> = grants.iter().map(|g| g.id).collect();
    let mut groups = groups_of(db, &ids).await?;
    grants
        .iter()
        .map(|g| {
            let (from, to) = years_of(g)?;
            Ok(GrantReach::new(
                g.network_id,
                key.clone(),
                groups.remove(&g.id).unwrap_or_default(),
                YearRange { from, to },
                g.expires_at,
            ))
        })
        .collect()
}

/// Each grant's recorded changes, oldest first.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    grant_id: i64,
) -> ApiResult<Vec<grant_events::Model>> {
    Ok(grant_events::Entity::find()
        .filter(grant_events::Column::GrantId.eq(grant_id))
        .order_by_asc(grant_events::Column::Id)
        .all(db)
        .await?)
}

/// For `serve --demo`: each network that has granted nothing grants the public AGGREGATE
/// access to its demo returns (every group, 2020/21 to 2022/23, for a year), so the impact
/// examples answer anonymous readers in GraphiQL, under disclosure control. Returns how many
/// grants it made; running it again makes none.
pub async fn demo_grants(db: &DatabaseConnection) -> ApiResult<usize> {
    let now = Utc::now();
    let year = |y: u16| {
        FinancialYear::new(y)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("demo grant year: {e}")))
    };
    let mut made = 0;
    for network in networks::Entity::find()
        .order_by_asc(networks::Column::Id)
        .all(db)
        .await?
    {
        if !of_network(db, network.id).await?.is_empty() {
            continue;
        }
        let spec = GrantSpec {
            network,
            grantee: Grantee::Public,
            level: AccessLevel::Aggregate,
            groups: MetricGroup::ALL.into_iter().collect(),
            from_year: year(2020)?,
            to_year: year(2022)?,
            expires_at: now + chrono::Duration::days(365),
            agreement: Agreement {
                reference: "DEMO".into(),
                lawful_basis: "None needed: the demo's institutions and returns are fictional"
                    .into(),
                purpose: "Show the regional dashboard in the demo".into(),
                review_date: (now + chrono::Duration::days(365)).date_naive(),
            },
        };
        grant(db, spec, "demo").await?;
        made += 1;
    }
    Ok(made)
}

/// A region named as a grantee must exist.
pub async fn region_grantee<C: ConnectionTrait>(db: &C, code: &GssCode) -> ApiResult<Grantee> {
    crate::directory::region_by_code(db, code)
        .await?
        .map(Grantee::Region)
        .ok_or_else(|| ApiError::NotFound(format!("input.grantee.region: region {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_force() {
        let model = grants::Model {
            id: 1,
            network_id: 1,
            grantee_kind: GranteeKind::Public,
            grantee_region: None,
            grantee_organisation_id: None,
            level: entity::vocab::AccessLevel::Detail,
            from_year: "2021/22".into(),
            to_year: "2022/23".into(),
            expires_at: Utc::now(),
            agreement_reference: "r".into(),
            lawful_basis: "b".into(),
            purpose: "p".into(),
            review_date: Utc::now().date_naive(),
            created_at: Utc::now(),
            created_by: "t".into(),
            revoked_at: None,
            revoked_by: None,
        };
        assert_eq!(level_of(&model), AccessLevel::Detail);
        assert!(!in_force(&model, Utc::now() + chrono::Duration::seconds(1)));
    }
}
