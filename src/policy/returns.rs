//! Who reads and writes returns (DESIGN.md's rules 1, 2 and 4), as SQL. The data layer puts
//! these fragments inside its statements; nothing filters rows after reading them.
//!
//! The fragments speak of `r` (a row of `returns`) and `i` (its institution: any relation
//! with the institution's `id` and `steward_network_id`, such as `institutions`).

use chrono::{DateTime, Utc};
use sea_orm::Value;

use crate::auth::{Caller, Principal};
use crate::domain::{FinancialYear, MetricGroup, Role, Verb};
use crate::error::ApiError;

/// A piece of SQL with `?` placeholders and the values they take, in order.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    pub sql: String,
    pub values: Vec<Value>,
}

impl Fragment {
    fn new(sql: impl Into<String>, values: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            values,
        }
    }

    /// A fragment that holds for no row.
    pub fn nothing() -> Self {
        Self::new("1 = 0", vec![])
    }

    fn and(mut self, other: Fragment) -> Self {
        self.sql = format!("({}) AND ({})", self.sql, other.sql);
        self.values.extend(other.values);
        self
    }
}

fn forbid(p: &Principal, what: &str) -> ApiError {
    ApiError::Forbidden {
        reason: format!("{p:?}: {what}"),
    }
}

/// The version of a return that is current at `at` for a reader inside the steward network:
/// the latest submitted by then and not rejected by then.
fn current_for_steward(at: DateTime<Utc>) -> Fragment {
    Fragment::new(
        "r.submitted_at <= ? AND NOT (r.status = 'REJECTED' AND r.decided_at <= ?) \
         AND r.version = (SELECT MAX(r2.version) FROM returns r2 \
           WHERE r2.institution_id = r.institution_id AND r2.period = r.period \
             AND r2.submitted_at <= ? AND NOT (r2.status = 'REJECTED' AND r2.decided_at <= ?))",
        vec![at.into(), at.into(), at.into(), at.into()],
    )
}

/// The version current at `at` for readers outside the steward network: the latest
/// published (approved, or submitted where no approval is needed) by then.
fn current_for_outsiders(at: DateTime<Utc>) -> Fragment {
    Fragment::new(
        "r.published_at <= ? AND r.version = (SELECT MAX(r2.version) FROM returns r2 \
           WHERE r2.institution_id = r.institution_id AND r2.period = r.period AND r2.published_at <= ?)",
        vec![at.into(), at.into()],
    )
}

/// `i` belonged to network `network_id` on the day `period_end` (an SQL expression).
fn member_on(network_id: i64, period_end: &str) -> Fragment {
    Fragment::new(
        format!(
            "EXISTS (SELECT 1 FROM memberships m WHERE m.institution_id = i.id AND m.network_id = ? \
               AND m.status = 'ACTIVE' AND m.from_date <= {period_end} \
               AND (m.to_date IS NULL OR m.to_date >= {period_end}))"
        ),
        vec![network_id.into()],
    )
}

/// The caller's network, when their role reads through the network rules.
fn reading_network(p: &Principal) -> Option<i64> {
    p.network
        .as_ref()
        .filter(|_| matches!(p.role, Role::NetworkAdmin | Role::NetworkSubmitter))
        .map(|n| n.id)
}

/// Whether any rule gives the caller institution `i`'s data for a period ending on
/// `period_end` (an SQL expression): the steward rule, or the fellow-member rule for admins.
/// Impact uses it to tell withheld institutions from those that simply did not report.
pub fn has_access(caller: &Caller, period_end: &str) -> Fragment {
    let Some(p) = caller.principal() else {
        return Fragment::nothing();
    };
    let Some(network) = reading_network(p) else {
        return Fragment::nothing();
    };
    let steward = Fragment::new("i.steward_network_id = ?", vec![network.into()]);
    if p.role == Role::NetworkAdmin {
        let fellow = member_on(network, period_end);
        Fragment::new(
            format!("({}) OR ({})", steward.sql, fellow.sql),
            steward.values.into_iter().chain(fellow.values).collect(),
        )
    } else {
        steward
    }
}

/// The token's year and network scopes, as a condition on `r` and `i`.
fn scope_narrowing(p: &Principal) -> Option<Fragment> {
    let mut parts: Vec<Fragment> = vec![];
    if let Some(ranges) = &p.scopes.years {
        let mut periods: Vec<Value> = vec![];
        for r in ranges {
            for y in r.from.start_year()..=r.to.start_year() {
                if let Ok(fy) = FinancialYear::new(y) {
                    periods.push(fy.to_string().into());
                }
            }
        }
        let marks = vec!["?"; periods.len()].join(", ");
        parts.push(Fragment::new(format!("r.period IN ({marks})"), periods));
    }
    if let Some(keys) = &p.scopes.networks {
        let keys: Vec<Value> = keys.iter().map(|k| k.as_str().into()).collect();
        let marks = vec!["?"; keys.len()].join(", ");
        parts.push(Fragment::new(
            format!(
                "EXISTS (SELECT 1 FROM memberships ms JOIN networks ns ON ns.id = ms.network_id \
                   WHERE ms.institution_id = i.id AND ns.key IN ({marks}) AND ms.status = 'ACTIVE' \
                     AND ms.from_date <= r.period_end AND (ms.to_date IS NULL OR ms.to_date >= r.period_end))"
            ),
            keys,
        ));
    }
    parts.into_iter().reduce(Fragment::and)
}

/// The condition under which the caller sees a row of `returns` at DETAIL, as of `at`:
/// the current version for them, of an institution their network stewards (rule 1) or that
/// belonged to their network on the period's last day (rule 2), narrowed by their scopes.
/// Anyone else sees nothing (deny by default); a token whose verbs leave out `read:returns`
/// is refused.
pub fn returns_visible(caller: &Caller, at: DateTime<Utc>) -> Result<Fragment, ApiError> {
    visible_returns(caller, at, Verb::ReadReturns)
}

/// The versions of returns the caller may use at `at` for `verb` (`read:returns` to see them,
/// `read:impact` to count them in aggregates): today the same rows; grants will tell them apart.
pub fn visible_returns(
    caller: &Caller,
    at: DateTime<Utc>,
    verb: Verb,
) -> Result<Fragment, ApiError> {
    let Some(p) = caller.principal() else {
        return Ok(Fragment::nothing());
    };
    if !p.scopes.allows_verb(verb) {
        return Err(forbid(
            p,
            &format!("token scopes do not include {}", verb.as_str()),
        ));
    }
    let Some(network) = reading_network(p) else {
        return Ok(Fragment::nothing());
    };
    let steward = Fragment::new("i.steward_network_id = ?", vec![network.into()])
        .and(current_for_steward(at));
    let visible = if p.role == Role::NetworkAdmin {
        let fellow = Fragment::new("i.steward_network_id <> ?", vec![network.into()])
            .and(member_on(network, "r.period_end"))
            .and(current_for_outsiders(at));
        Fragment::new(
            format!("({}) OR ({})", steward.sql, fellow.sql),
            steward.values.into_iter().chain(fellow.values).collect(),
        )
    } else {
        steward
    };
    Ok(match scope_narrowing(p) {
        Some(n) => visible.and(n),
        None => visible,
    })
}

/// The metric groups whose values the caller may see in a return they may see; `None` for all.
pub fn visible_metric_groups(caller: &Caller) -> Option<Vec<MetricGroup>> {
    let p = caller.principal()?;
    p.scopes
        .metrics
        .as_ref()
        .map(|m| m.iter().copied().collect())
}

/// Submitting returns for `network_id`: its admins and submitters, with `write:returns`.
pub fn may_submit_returns(caller: &Caller, network_id: i64) -> Result<&Principal, ApiError> {
    let p = super::authenticated(caller)?;
    if !p.scopes.allows_verb(Verb::WriteReturns) {
        return Err(forbid(p, "token scopes do not include write:returns"));
    }
    match &p.network {
        Some(n)
            if n.id == network_id
                && matches!(p.role, Role::NetworkAdmin | Role::NetworkSubmitter)
                && p.scopes.allows_network(&n.key) =>
        {
            Ok(p)
        }
        _ => Err(forbid(
            p,
            &format!("submitReturns for network {network_id}"),
        )),
    }
}

/// Whether a submitter's scopes allow a value of this group for this year.
pub fn may_submit_value(p: &Principal, group: MetricGroup, year: FinancialYear) -> bool {
    p.scopes.allows_metric_group(group) && p.scopes.allows_year(year)
}

/// Reading aggregates: a token whose verbs leave out `read:impact` is refused, and so is a
/// request for years or metric groups outside its scopes (scopes narrow; they never pretend).
pub fn may_read_impact(
    caller: &Caller,
    years: &[FinancialYear],
    groups: &[MetricGroup],
) -> Result<(), ApiError> {
    let Some(p) = caller.principal() else {
        return Ok(());
    };
    if !p.scopes.allows_verb(Verb::ReadImpact) {
        return Err(forbid(p, "token scopes do not include read:impact"));
    }
    if let Some(y) = years.iter().find(|y| !p.scopes.allows_year(**y)) {
        return Err(forbid(
            p,
            &format!("year {y} is outside the token's scopes"),
        ));
    }
    if let Some(g) = groups.iter().find(|g| !p.scopes.allows_metric_group(**g)) {
        return Err(forbid(
            p,
            &format!("metric group {} is outside the token's scopes", g.as_str()),
        ));
    }
    Ok(())
}

/// The networks of a request the caller's scopes leave in.
pub fn scoped_networks(caller: &Caller, networks: Vec<(i64, String)>) -> Vec<i64> {
    networks
        .into_iter()
        .filter(|(_, key)| {
            caller
                .principal()
                .is_none_or(|p| p.scopes.allows_network(key))
        })
        .map(|(id, _)| id)
        .collect()
}

/// Approving, rejecting, and reading the chase list: the steward network's admins.
pub fn may_administer_returns(caller: &Caller, network_id: i64) -> Result<&Principal, ApiError> {
    let p = super::authenticated(caller)?;
    match &p.network {
        Some(n)
            if n.id == network_id && p.role == Role::NetworkAdmin && p.scopes.verbs.is_none() =>
        {
            Ok(p)
        }
        _ => Err(forbid(
            p,
            &format!("administer returns of network {network_id}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::tests::principal as caller;

    #[test]
    fn deny_by_default() {
        let now = Utc::now();
        for c in [
            Caller::Anonymous,
            caller(Role::Operator, None, ""),
            caller(Role::RegionAnalyst, None, ""),
            caller(Role::Researcher, None, ""),
        ] {
            assert_eq!(returns_visible(&c, now).unwrap().sql, "1 = 0");
        }
    }

    #[test]
    fn stewards_and_fellows() {
        let now = Utc::now();
        let sub = returns_visible(&caller(Role::NetworkSubmitter, Some(1), ""), now).unwrap();
        assert!(
            sub.sql.contains("i.steward_network_id = ?") && !sub.sql.contains("<>"),
            "submitters have no fellow rule"
        );
        let admin = returns_visible(&caller(Role::NetworkAdmin, Some(1), ""), now).unwrap();
        assert!(
            admin.sql.contains("i.steward_network_id <> ?") && admin.sql.contains("published_at")
        );
        assert_eq!(admin.sql.matches('?').count(), admin.values.len());
        let scoped = returns_visible(
            &caller(
                Role::NetworkAdmin,
                Some(1),
                "years:2021/22-2022/23 network:n1",
            ),
            now,
        )
        .unwrap();
        assert!(scoped.sql.contains("r.period IN (?, ?)") && scoped.sql.contains("ns.key IN (?)"));
        assert_eq!(scoped.sql.matches('?').count(), scoped.values.len());
        assert!(returns_visible(&caller(Role::NetworkAdmin, Some(1), "read:impact"), now).is_err());
    }

    #[test]
    fn submitting() {
        assert!(may_submit_returns(&caller(Role::NetworkSubmitter, Some(1), ""), 1).is_ok());
        assert!(may_submit_returns(&caller(Role::NetworkAdmin, Some(1), ""), 1).is_ok());
        assert!(may_submit_returns(&caller(Role::NetworkSubmitter, Some(1), ""), 2).is_err());
        assert!(
            may_submit_returns(&caller(Role::NetworkSubmitter, Some(1), "read:returns"), 1)
                .is_err()
        );
        assert!(
            may_submit_returns(&caller(Role::NetworkSubmitter, Some(1), "write:returns"), 1)
                .is_ok()
        );
        assert!(may_submit_returns(&caller(Role::Operator, None, ""), 1).is_err());
        assert!(may_submit_returns(&Caller::Anonymous, 1).is_err());
        let p = caller(
            Role::NetworkSubmitter,
            Some(1),
            "metrics:spend years:2022/23",
        );
        let p = p.principal().unwrap();
        let fy = |s: &str| s.parse::<FinancialYear>().unwrap();
        assert!(may_submit_value(p, MetricGroup::Spend, fy("2022/23")));
        assert!(!may_submit_value(p, MetricGroup::Emissions, fy("2022/23")));
        assert!(!may_submit_value(p, MetricGroup::Spend, fy("2021/22")));
    }

    #[test]
    fn administering() {
        assert!(may_administer_returns(&caller(Role::NetworkAdmin, Some(1), ""), 1).is_ok());
        assert!(may_administer_returns(&caller(Role::NetworkAdmin, Some(1), ""), 2).is_err());
        assert!(may_administer_returns(&caller(Role::NetworkSubmitter, Some(1), ""), 1).is_err());
        assert!(may_administer_returns(&caller(Role::Operator, None, ""), 1).is_err());
    }
}
