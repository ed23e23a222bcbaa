//! Who reads and writes returns (DESIGN.md's rules 1, 2 and 4), as SQL. The data layer puts
//! these fragments inside its statements; nothing filters rows after reading them.
//!
//! The fragments speak of `r` (a row of `returns`) and `i` (its institution: any relation
//! with the institution's `id` and `steward_network_id`, such as `institutions`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::Value;

use crate::auth::{Caller, Principal};
use crate::domain::{AccessLevel, FinancialYear, MetricGroup, Role, Verb};
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

/// Which grants reach the caller, as a condition on `g` (a row of `grants`): public grants
/// reach everyone, anonymous readers included; a grant to a region reaches its analysts; a
/// grant to an organisation reaches its researchers.
fn grantee_match(caller: &Caller) -> Fragment {
    let mut f = Fragment::new("g.grantee_kind = 'PUBLIC'", vec![]);
    let Some(p) = caller.principal() else {
        return f;
    };
    match (p.role, &p.region, &p.organisation) {
        (Role::RegionAnalyst, Some(region), _) => {
            f.sql
                .push_str(" OR (g.grantee_kind = 'REGION' AND g.grantee_region = ?)");
            f.values.push(region.as_str().into());
        }
        (Role::Researcher, _, Some(org)) => {
            f.sql.push_str(
                " OR (g.grantee_kind = 'ORGANISATION' AND g.grantee_organisation_id = ?)",
            );
            f.values.push(org.id.into());
        }
        _ => {}
    }
    f
}

/// Which metric groups a grant must cover.
enum Groups<'a> {
    /// Any group at all.
    Any,
    /// One of these (a token's metric scopes).
    OneOf(&'a BTreeSet<MetricGroup>),
    /// The group of the value at hand, an SQL expression.
    Of(&'a str),
}

/// A grant in force now from `i`'s steward network that reaches the caller, covers the period
/// `period` (an SQL expression) and the groups asked for, at one of `levels`.
/// The grants in force that reach the caller, as a common table expression named `reach`
/// that every statement using these fragments defines first (`WITH reach AS …`): evaluated
/// once per statement, so each row's grant check scans a handful of rows at most.
pub fn reach(caller: &Caller) -> Fragment {
    let who = grantee_match(caller);
    let mut values: Vec<Value> = vec![Utc::now().into()];
    values.extend(who.values);
    Fragment::new(
        format!(
            "reach AS MATERIALIZED (SELECT g.id AS id, g.network_id AS network_id, g.level AS level, \
               g.metric_groups AS metric_groups, g.from_year AS from_year, g.to_year AS to_year \
             FROM grants g WHERE g.revoked_at IS NULL AND g.expires_at > ? AND ({}))",
            who.sql
        ),
        values,
    )
}

/// A grant reaching the caller (in `reach`) from `i`'s steward network that covers the period
/// `period` (an SQL expression) and the groups asked for, at one of `levels`.
fn granted(period: &str, groups: &Groups<'_>, levels: &[AccessLevel]) -> Fragment {
    let mut values: Vec<Value> = vec![];
    let group_sql = match groups {
        Groups::Any => String::new(),
        Groups::OneOf(set) => {
            let likes: Vec<&str> = set.iter().map(|_| "g.metric_groups LIKE ?").collect();
            values.extend(
                set.iter()
                    .map(|g| Value::from(format!("%,{},%", g.as_str()))),
            );
            if likes.is_empty() {
                " AND 1 = 0".to_owned()
            } else {
                format!(" AND ({})", likes.join(" OR "))
            }
        }
        // `_` in a group's name is a LIKE wildcard, but only ever matches itself here: the
        // groups are fixed names with no other name one character apart.
        Groups::Of(expr) => format!(" AND g.metric_groups LIKE '%,' || {expr} || ',%'"),
    };
    let levels: Vec<String> = levels.iter().map(|l| format!("'{}'", l.as_str())).collect();
    Fragment::new(
        format!(
            "EXISTS (SELECT 1 FROM reach g WHERE g.network_id = i.steward_network_id \
               AND g.from_year <= {period} AND g.to_year >= {period}{group_sql} \
               AND g.level IN ({}))",
            levels.join(", ")
        ),
        values,
    )
}

fn or(a: Fragment, b: Fragment) -> Fragment {
    Fragment::new(
        format!("({}) OR ({})", a.sql, b.sql),
        a.values.into_iter().chain(b.values).collect(),
    )
}

/// Whether any rule gives the caller anything of institution `i`'s data for the period
/// `period`, ending on `period_end` (SQL expressions): the steward rule, the fellow-member rule
/// for admins, or a grant in force. Impact uses it to tell withheld institutions from those
/// that simply did not report.
pub fn has_access(caller: &Caller, period: &str, period_end: &str) -> Fragment {
    let grant = granted(period, &Groups::Any, &AccessLevel::ALL);
    let Some(network) = caller.principal().and_then(reading_network) else {
        return grant;
    };
    let mut rules = Fragment::new("i.steward_network_id = ?", vec![network.into()]);
    if caller
        .principal()
        .is_some_and(|p| p.role == Role::NetworkAdmin)
    {
        rules = or(rules, member_on(network, period_end));
    }
    or(rules, grant)
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

/// The condition under which the caller sees a row of `returns` at DETAIL, as of `at`.
/// Anyone else sees nothing (deny by default); a token whose verbs leave out `read:returns`
/// is refused.
pub fn returns_visible(caller: &Caller, at: DateTime<Utc>) -> Result<Fragment, ApiError> {
    visible_returns(caller, at, Verb::ReadReturns)
}

/// The versions of returns the caller may use at `at` for `verb`: to see them (`read:returns`,
/// DETAIL) or to count them in aggregates (`read:impact`, AGGREGATE or DETAIL). The current
/// version of a return is the steward's (latest submitted, not rejected) for readers in its
/// steward network (rule 1) and the published one for everyone else: fellow members' admins
/// (rule 2) and grantees (rule 3). Scopes narrow years and networks here (rule 4); metric
/// groups are narrowed value by value ([`value_level`]), and here only as far as a grant must
/// cover one of the groups the token allows.
pub fn visible_returns(
    caller: &Caller,
    at: DateTime<Utc>,
    verb: Verb,
) -> Result<Fragment, ApiError> {
    let principal = caller.principal();
    if let Some(p) = principal
        && !p.scopes.allows_verb(verb)
    {
        return Err(forbid(
            p,
            &format!("token scopes do not include {}", verb.as_str()),
        ));
    }
    let levels: &[AccessLevel] = match verb {
        Verb::ReadImpact => &AccessLevel::ALL,
        _ => &[AccessLevel::Detail],
    };
    let groups = match principal.and_then(|p| p.scopes.metrics.as_ref()) {
        Some(set) => Groups::OneOf(set),
        None => Groups::Any,
    };
    let network = principal.and_then(reading_network);
    let mut outsiders = granted("r.period", &groups, levels);
    if let Some(network) = network
        && principal.is_some_and(|p| p.role == Role::NetworkAdmin)
    {
        outsiders = or(member_on(network, "r.period_end"), outsiders);
    }
    let mut outsiders = outsiders.and(current_for_outsiders(at));
    if let Some(network) = network {
        outsiders = Fragment::new("i.steward_network_id <> ?", vec![network.into()]).and(outsiders);
    }
    let visible = match network {
        Some(network) => or(
            Fragment::new("i.steward_network_id = ?", vec![network.into()])
                .and(current_for_steward(at)),
            outsiders,
        ),
        None => outsiders,
    };
    Ok(match principal.and_then(scope_narrowing) {
        Some(n) => visible.and(n),
        None => visible,
    })
}

/// The level at which the caller sees one value of a return that [`visible_returns`] let
/// through, as an SQL expression over `r`, `i` and `group` (the value's metric group, an SQL
/// expression): 2 for DETAIL, 1 for AGGREGATE, 0 for nothing. The token's metric scopes
/// narrow it; the steward and fellow-member rules give every group at DETAIL; grants give
/// the groups they name at their level.
pub fn value_level(caller: &Caller, group: &str) -> Fragment {
    let principal = caller.principal();
    let mut sql = String::from("CASE");
    let mut values: Vec<Value> = vec![];
    if let Some(set) = principal.and_then(|p| p.scopes.metrics.as_ref()) {
        let groups: Vec<Value> = set.iter().map(|g| Value::from(g.as_str())).collect();
        sql.push_str(&format!(
            " WHEN {group} NOT IN ({}) THEN 0",
            vec!["?"; groups.len().max(1)].join(", ")
        ));
        if groups.is_empty() {
            values.push("".into());
        }
        values.extend(groups);
    }
    if let Some(network) = principal.and_then(reading_network) {
        sql.push_str(" WHEN i.steward_network_id = ? THEN 2");
        values.push(network.into());
        if principal.is_some_and(|p| p.role == Role::NetworkAdmin) {
            let fellow = member_on(network, "r.period_end");
            sql.push_str(&format!(" WHEN {} THEN 2", fellow.sql));
            values.extend(fellow.values);
        }
    }
    for (level, n) in [(AccessLevel::Detail, 2), (AccessLevel::Aggregate, 1)] {
        let g = granted("r.period", &Groups::Of(group), &[level]);
        sql.push_str(&format!(" WHEN {} THEN {n}", g.sql));
        values.extend(g.values);
    }
    sql.push_str(" ELSE 0 END");
    Fragment::new(sql, values)
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
            // Only a grant can give these callers anything.
            let f = returns_visible(&c, now).unwrap();
            assert!(
                !f.sql.contains("i.steward_network_id = ?") && f.sql.contains("FROM reach g"),
                "{}",
                f.sql
            );
            assert_eq!(f.sql.matches('?').count(), f.values.len());
        }
    }

    #[test]
    fn stewards_and_fellows() {
        let now = Utc::now();
        let sub = returns_visible(&caller(Role::NetworkSubmitter, Some(1), ""), now).unwrap();
        assert!(
            sub.sql.contains("i.steward_network_id = ?")
                && !sub.sql.contains("FROM memberships m WHERE"),
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
