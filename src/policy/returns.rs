//! Who reads and writes returns (DESIGN.md's rules 1, 2 and 4), as SQL. The data layer puts
//! these predicates inside its statements; nothing filters rows after reading them.
//!
//! The predicates read relations that this module names and the statement puts in its `FROM`
//! clause: `r`, a row of `returns`, and `i`, its institution ([`ReturnRows`],
//! [`ChosenReturns`], [`InstitutionRows`]), and the [`Reach`] common table expression. Each
//! predicate takes the value that defines what it reads by reference, so a statement cannot
//! use one without the `FROM` clause or the `WITH` entry it needs, and every alias is defined
//! here, next to the predicates that read it.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::auth::{Caller, Principal};
use crate::domain::{AccessLevel, AsOf, FinancialYear, MetricGroup, Role, Verb};
use crate::error::ApiError;
use crate::sql::Sql;

fn forbid(p: &Principal, what: &str) -> ApiError {
    ApiError::Forbidden {
        reason: format!("{p:?}: {what}"),
    }
}

/// The version of a return that is current at `at` for a reader inside the steward network:
/// the latest submitted by then and not rejected by then. Now, the flag kept at every write.
fn current_for_steward(at: AsOf) -> Sql {
    let at = match at {
        AsOf::Now => return Sql::raw("r.current_steward"),
        AsOf::At(t) => t,
    };
    Sql::format(
        "r.submitted_at <= {} AND NOT (r.status = 'REJECTED' AND r.decided_at <= {}) \
         AND r.version = (SELECT MAX(r2.version) FROM returns r2 \
           WHERE r2.institution_id = r.institution_id AND r2.period = r.period \
             AND r2.submitted_at <= {} AND NOT (r2.status = 'REJECTED' AND r2.decided_at <= {}))",
        [
            Sql::value(at),
            Sql::value(at),
            Sql::value(at),
            Sql::value(at),
        ],
    )
}

/// The version current at `at` for readers outside the steward network: the latest
/// published (approved, or submitted where no approval is needed) by then. Now, the flag kept
/// at every write.
fn current_for_outsiders(at: AsOf) -> Sql {
    let at = match at {
        AsOf::Now => return Sql::raw("r.current_published"),
        AsOf::At(t) => t,
    };
    Sql::format(
        "r.published_at <= {} AND r.version = (SELECT MAX(r2.version) FROM returns r2 \
           WHERE r2.institution_id = r.institution_id AND r2.period = r.period AND r2.published_at <= {})",
        [Sql::value(at), Sql::value(at)],
    )
}

/// `i` belonged to network `network_id` on the day `period_end` (an expression).
fn member_on(network_id: i64, period_end: Sql) -> Sql {
    Sql::format(
        "EXISTS (SELECT 1 FROM memberships m WHERE m.institution_id = i.id AND m.network_id = {} \
           AND m.status = 'ACTIVE' AND m.from_date <= {} \
           AND (m.to_date IS NULL OR m.to_date >= {}))",
        [Sql::value(network_id), period_end.clone(), period_end],
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
fn grantee_match(caller: &Caller) -> Sql {
    let public = Sql::raw("g.grantee_kind = 'PUBLIC'");
    let Some(p) = caller.principal() else {
        return public;
    };
    match (p.role, &p.region, &p.organisation) {
        (Role::RegionAnalyst, Some(region), _) => public.or(Sql::format(
            "g.grantee_kind = 'REGION' AND g.grantee_region = {}",
            [Sql::value(region.as_str())],
        )),
        (Role::Researcher, _, Some(org)) => public.or(Sql::format(
            "g.grantee_kind = 'ORGANISATION' AND g.grantee_organisation_id = {}",
            [Sql::value(org.id)],
        )),
        _ => public,
    }
}

/// Which metric groups a grant must cover.
enum Groups<'a> {
    /// Any group at all.
    Any,
    /// One of these (a token's metric scopes).
    OneOf(&'a BTreeSet<MetricGroup>),
    /// The group of the value at hand, an expression.
    Of(Sql),
}

/// The grants in force that reach the caller, as a common table expression named `reach`
/// with a row per grant and metric group it covers, evaluated once per statement, so each
/// row's grant check scans a handful of rows at most.
/// The predicates that read it take it by reference; the statement defines it with
/// [`Reach::cte`] or [`Reach::with`].
#[must_use = "a statement that reads `reach` must define it"]
pub struct Reach(Sql);

impl Reach {
    /// `reach AS MATERIALIZED (…)`, for a statement's `WITH` list.
    pub fn cte(self) -> Sql {
        self.0
    }

    /// `WITH reach AS … body`.
    pub fn with(self, body: Sql) -> Sql {
        Sql::format("WITH {} {}", [self.0, body])
    }
}

/// Rows of `returns` with their institutions, as the predicates read them: `r` (every column
/// of `returns`) and `i` (the institution's `id` and `steward_network_id`). The statement
/// puts [`ReturnRows::from`] in its `FROM` clause and may read `r` and `i` itself.
pub struct ReturnRows(Sql);

impl ReturnRows {
    /// Every return: `returns r JOIN institutions i`.
    pub fn all() -> Self {
        Self(Sql::raw(
            "returns r JOIN institutions i ON i.id = r.institution_id",
        ))
    }

    /// The returns of the institutions in `institutions`, a relation the statement defines
    /// with the columns `id` and `steward_network_id`.
    pub fn of_institutions(institutions: &'static str) -> Self {
        Self(Sql::format(
            "{} i JOIN returns r ON r.institution_id = i.id",
            [Sql::raw(institutions)],
        ))
    }

    pub fn from(&self) -> Sql {
        self.0.clone()
    }
}

/// Versions already chosen by [`visible_returns`], in a relation the statement defines with
/// the columns `institution_id`, `period` and `period_end` (`r`), and their institutions (`i`,
/// as in [`ReturnRows::of_institutions`]): what [`value_level`] reads.
pub struct ChosenReturns(Sql);

impl ChosenReturns {
    pub fn new(returns: &'static str, institutions: &'static str) -> Self {
        Self(Sql::format(
            "{} r JOIN {} i ON i.id = r.institution_id",
            [Sql::raw(returns), Sql::raw(institutions)],
        ))
    }

    pub fn from(&self) -> Sql {
        self.0.clone()
    }
}

/// Institutions alone, as [`has_access`] reads them: `i`, from a relation the statement
/// defines with the columns `id` and `steward_network_id`.
pub struct InstitutionRows(Sql);

impl InstitutionRows {
    pub fn of(institutions: &'static str) -> Self {
        Self(Sql::format("{} i", [Sql::raw(institutions)]))
    }

    pub fn from(&self) -> Sql {
        self.0.clone()
    }
}

/// What [`value_level`] can read a value's return from.
pub trait ReturnPeriods {}
impl ReturnPeriods for ReturnRows {}
impl ReturnPeriods for ChosenReturns {}

pub fn reach(caller: &Caller) -> Reach {
    Reach(Sql::format(
        "reach AS MATERIALIZED (SELECT g.id AS id, g.network_id AS network_id, g.level AS level, \
           gm.metric_group AS metric_group, g.from_year AS from_year, g.to_year AS to_year \
         FROM grants g JOIN grant_metric_groups gm ON gm.grant_id = g.id \
         WHERE g.revoked_at IS NULL AND g.expires_at > {} AND ({}))",
        [Sql::value(Utc::now()), grantee_match(caller)],
    ))
}

/// The institutions any rule could give the caller something of, as a common table
/// expression named `cand` with the columns `id` and `steward_network_id`: those of networks
/// with a grant reaching the caller (in `reach`), and for readers in a network its stewarded
/// institutions and, for its admins, its members. A superset of what the caller may see: the
/// predicates still decide every row. Statements start from it ([`ReturnRows::of_institutions`])
/// so they look only at these institutions' returns, by index, not at every return of a period.
pub fn candidates(caller: &Caller, _reach: &Reach) -> Sql {
    let mut parts = vec![Sql::raw(
        "SELECT i.id, i.steward_network_id FROM institutions i \
         WHERE i.steward_network_id IN (SELECT g.network_id FROM reach g)",
    )];
    let principal = caller.principal();
    if let Some(network) = principal.and_then(reading_network) {
        parts.push(Sql::format(
            "SELECT i.id, i.steward_network_id FROM institutions i WHERE i.steward_network_id = {}",
            [Sql::value(network)],
        ));
        if principal.is_some_and(|p| p.role == Role::NetworkAdmin) {
            parts.push(Sql::format(
                "SELECT i.id, i.steward_network_id FROM institutions i \
                 JOIN memberships m ON m.institution_id = i.id WHERE m.network_id = {}",
                [Sql::value(network)],
            ));
        }
    }
    Sql::format(
        "cand (id, steward_network_id) AS MATERIALIZED ({})",
        [Sql::join(parts, " UNION ")],
    )
}

/// A grant reaching the caller (in `reach`) from `i`'s steward network that covers the period
/// `period` (an expression) and the groups asked for, at one of `levels`.
fn granted(_reach: &Reach, period: Sql, groups: Groups<'_>, levels: &[AccessLevel]) -> Sql {
    let groups = match groups {
        Groups::Any => Sql::raw("1 = 1"),
        Groups::OneOf(set) if set.is_empty() => Sql::nothing(),
        Groups::OneOf(set) => Sql::format(
            "g.metric_group IN ({})",
            [Sql::list(set.iter().map(|g| g.as_str()))],
        ),
        Groups::Of(expr) => Sql::format("g.metric_group = {}", [expr]),
    };
    Sql::format(
        "EXISTS (SELECT 1 FROM reach g WHERE g.network_id = i.steward_network_id \
           AND g.from_year <= {} AND g.to_year >= {} AND ({}) AND g.level IN ({}))",
        [
            period.clone(),
            period,
            groups,
            Sql::list(levels.iter().map(|l| l.as_str())),
        ],
    )
}

/// Whether any rule gives the caller anything of institution `i`'s data for the period
/// `period`, ending on `period_end` (expressions): the steward rule, the fellow-member rule
/// for admins, or a grant in force. Impact uses it to tell withheld institutions from those
/// that simply did not report.
pub fn has_access(
    caller: &Caller,
    reach: &Reach,
    _institutions: &InstitutionRows,
    period: Sql,
    period_end: Sql,
) -> Sql {
    let grant = granted(reach, period, Groups::Any, &AccessLevel::ALL);
    match network_rules(caller, period_end) {
        Some(own) => own.or(grant),
        None => grant,
    }
}

/// Whether the caller may see institution `i`'s data for the period only in aggregate: no
/// steward or fellow-member rule gives it, and a grant at AGGREGATE covers some group. Then
/// whether the institution reported at all is protected like its values.
pub fn seen_only_in_aggregate(
    caller: &Caller,
    reach: &Reach,
    _institutions: &InstitutionRows,
    period: Sql,
    period_end: Sql,
) -> Sql {
    let aggregate = granted(reach, period, Groups::Any, &[AccessLevel::Aggregate]);
    match network_rules(caller, period_end) {
        Some(own) => Sql::format("NOT ({}) AND {}", [own, aggregate]),
        None => aggregate,
    }
}

/// Rules 1 and 2 for institution `i` as a condition: its steward network's readers, and for
/// admins the networks it belonged to on `period_end`; `None` for callers outside networks.
fn network_rules(caller: &Caller, period_end: Sql) -> Option<Sql> {
    let network = caller.principal().and_then(reading_network)?;
    let steward = Sql::format("i.steward_network_id = {}", [Sql::value(network)]);
    Some(
        if caller
            .principal()
            .is_some_and(|p| p.role == Role::NetworkAdmin)
        {
            steward.or(member_on(network, period_end))
        } else {
            steward
        },
    )
}

/// The token's year and network scopes, as a condition on `r` and `i`.
fn scope_narrowing(p: &Principal) -> Option<Sql> {
    let mut parts: Vec<Sql> = vec![];
    if let Some(ranges) = &p.scopes.years {
        let periods = ranges.iter().flat_map(|r| {
            (r.from.start_year()..=r.to.start_year())
                .filter_map(|y| FinancialYear::new(y).ok())
                .map(|fy| fy.to_string())
        });
        parts.push(Sql::format("r.period IN ({})", [Sql::list(periods)]));
    }
    if let Some(keys) = &p.scopes.networks {
        parts.push(Sql::format(
            "EXISTS (SELECT 1 FROM memberships ms JOIN networks ns ON ns.id = ms.network_id \
               WHERE ms.institution_id = i.id AND ns.key IN ({}) AND ms.status = 'ACTIVE' \
                 AND ms.from_date <= r.period_end AND (ms.to_date IS NULL OR ms.to_date >= r.period_end))",
            [Sql::list(keys.iter().map(|k| k.as_str().to_owned()))],
        ));
    }
    parts.into_iter().reduce(Sql::and)
}

/// The condition under which the caller sees a row of `returns` at DETAIL, as of `at`.
/// Anyone else sees nothing (deny by default); a token whose verbs leave out `read:returns`
/// is refused.
pub fn returns_visible(
    caller: &Caller,
    reach: &Reach,
    rows: &ReturnRows,
    at: AsOf,
) -> Result<Sql, ApiError> {
    visible_returns(caller, reach, rows, at, Verb::ReadReturns)
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
    reach: &Reach,
    _rows: &ReturnRows,
    at: AsOf,
    verb: Verb,
) -> Result<Sql, ApiError> {
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
    let mut outsiders = granted(reach, Sql::raw("r.period"), groups, levels);
    if let Some(network) = network
        && principal.is_some_and(|p| p.role == Role::NetworkAdmin)
    {
        outsiders = member_on(network, Sql::raw("r.period_end")).or(outsiders);
    }
    let mut outsiders = outsiders.and(current_for_outsiders(at));
    if let Some(network) = network {
        outsiders = Sql::format("i.steward_network_id <> {}", [Sql::value(network)]).and(outsiders);
    }
    let visible = match network {
        Some(network) => Sql::format("i.steward_network_id = {}", [Sql::value(network)])
            .and(current_for_steward(at))
            .or(outsiders),
        None => outsiders,
    };
    Ok(match principal.and_then(scope_narrowing) {
        Some(n) => visible.and(n),
        None => visible,
    })
}

/// The level at which the caller sees one value of a return that [`visible_returns`] let
/// through, as an expression over `r`, `i` and `group` (the value's metric group): 2 for
/// DETAIL, 1 for AGGREGATE, 0 for nothing. The token's metric scopes narrow it; the steward
/// and fellow-member rules give every group at DETAIL; grants give the groups they name at
/// their level.
pub fn value_level(caller: &Caller, reach: &Reach, _rows: &impl ReturnPeriods, group: Sql) -> Sql {
    let principal = caller.principal();
    let mut cases: Vec<Sql> = vec![];
    if let Some(set) = principal.and_then(|p| p.scopes.metrics.as_ref()) {
        cases.push(Sql::format(
            "WHEN {} NOT IN ({}) THEN 0",
            [
                group.clone(),
                // An empty scope set allows no group: `NOT IN ('')` holds for every group.
                if set.is_empty() {
                    Sql::value("")
                } else {
                    Sql::list(set.iter().map(|g| g.as_str()))
                },
            ],
        ));
    }
    if let Some(network) = principal.and_then(reading_network) {
        cases.push(Sql::format(
            "WHEN i.steward_network_id = {} THEN 2",
            [Sql::value(network)],
        ));
        if principal.is_some_and(|p| p.role == Role::NetworkAdmin) {
            cases.push(Sql::format(
                "WHEN {} THEN 2",
                [member_on(network, Sql::raw("r.period_end"))],
            ));
        }
    }
    for (level, then) in [
        (AccessLevel::Detail, "WHEN {} THEN 2"),
        (AccessLevel::Aggregate, "WHEN {} THEN 1"),
    ] {
        let g = granted(
            reach,
            Sql::raw("r.period"),
            Groups::Of(group.clone()),
            &[level],
        );
        cases.push(Sql::format(then, [g]));
    }
    Sql::format("CASE {} ELSE 0 END", [Sql::join(cases, " ")])
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

/// Sending a file of returns at all, decided from the token alone before a byte of the
/// upload is read: the admins and submitters of a network, with `write:returns`, within their
/// network scope. Which network the file is for is weighed again, by [`may_submit_returns`],
/// before the file is parsed.
pub fn may_upload_returns(caller: &Caller) -> Result<&Principal, ApiError> {
    let p = super::authenticated(caller)?;
    match &p.network {
        Some(n) => may_submit_returns(caller, n.id),
        None => Err(forbid(p, "upload returns: the token names no network")),
    }
}

/// An upload whose `importReturns` names `named` (a network's key or id), weighed before the
/// file is read: only the caller's own network, which they may submit for.
pub fn may_upload_returns_to<'a>(
    caller: &'a Caller,
    named: &str,
) -> Result<&'a Principal, ApiError> {
    let p = may_upload_returns(caller)?;
    match &p.network {
        Some(n) if n.key == named || n.id.to_string() == named => Ok(p),
        _ => Err(forbid(p, &format!("upload returns for network `{named}`"))),
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

/// Approving, rejecting, and reading the chase list for `period`: the steward network's
/// admins, within their token's scopes like every read: a `network:` scope must name the
/// network and a `years:` scope the period, and a token that lists verbs cannot administer.
pub fn may_administer_returns(
    caller: &Caller,
    network_id: i64,
    period: FinancialYear,
) -> Result<&Principal, ApiError> {
    let p = super::authenticated(caller)?;
    let refuse = |why: &str| {
        forbid(
            p,
            &format!("administer returns of network {network_id}: {why}"),
        )
    };
    let Some(n) = p.network.as_ref().filter(|n| n.id == network_id) else {
        return Err(refuse("not its network"));
    };
    if p.role != Role::NetworkAdmin {
        return Err(refuse("not an admin"));
    }
    if p.scopes.verbs.is_some() {
        return Err(refuse("token scopes list verbs only"));
    }
    if !p.scopes.allows_network(&n.key) {
        return Err(refuse("token scopes leave out the network"));
    }
    if !p.scopes.allows_year(period) {
        return Err(refuse(&format!("{period} is outside the token's years")));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::tests::principal as caller;

    // What the predicates let through (deny by default, the steward and fellow rules, scopes
    // narrowing) is tested by behaviour, on both databases, against a simple model of the
    // rules: tests/api/sharing_model.rs. Here: the decisions taken without SQL.

    #[test]
    fn a_token_without_the_verb_is_refused() {
        let c = caller(Role::NetworkAdmin, Some(1), "read:impact");
        assert!(returns_visible(&c, &reach(&c), &ReturnRows::all(), AsOf::Now).is_err());
        let c = caller(Role::Researcher, None, "read:returns");
        assert!(
            visible_returns(
                &c,
                &reach(&c),
                &ReturnRows::all(),
                AsOf::Now,
                Verb::ReadImpact
            )
            .is_err()
        );
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
        // Uploading at all, before the body is read.
        assert!(may_upload_returns(&caller(Role::NetworkSubmitter, Some(1), "")).is_ok());
        assert!(may_upload_returns(&caller(Role::NetworkAdmin, Some(1), "write:returns")).is_ok());
        assert!(matches!(
            may_upload_returns(&Caller::Anonymous),
            Err(ApiError::Unauthenticated(_))
        ));
        let sub = caller(Role::NetworkSubmitter, Some(1), "");
        assert!(may_upload_returns_to(&sub, "n1").is_ok());
        assert!(may_upload_returns_to(&sub, "1").is_ok());
        assert!(may_upload_returns_to(&sub, "n2").is_err());
        assert!(may_upload_returns_to(&sub, "2").is_err());
        assert!(may_upload_returns_to(&Caller::Anonymous, "n1").is_err());
        for c in [
            caller(Role::NetworkAdmin, Some(1), "read:returns"),
            caller(Role::NetworkAdmin, Some(1), "network:n2"),
            caller(Role::Operator, None, ""),
            caller(Role::RegionAnalyst, None, ""),
            caller(Role::Researcher, None, ""),
        ] {
            assert!(matches!(
                may_upload_returns(&c),
                Err(ApiError::Forbidden { .. })
            ));
        }
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
        let fy = |s: &str| s.parse::<FinancialYear>().unwrap();
        let y = fy("2022/23");
        let admin = |scopes| caller(Role::NetworkAdmin, Some(1), scopes);
        assert!(may_administer_returns(&admin(""), 1, y).is_ok());
        assert!(may_administer_returns(&admin(""), 2, y).is_err());
        assert!(
            may_administer_returns(&caller(Role::NetworkSubmitter, Some(1), ""), 1, y).is_err()
        );
        assert!(may_administer_returns(&caller(Role::Operator, None, ""), 1, y).is_err());
        assert!(may_administer_returns(&Caller::Anonymous, 1, y).is_err());
        // Scopes narrow administration like every read.
        assert!(may_administer_returns(&admin("network:n1"), 1, y).is_ok());
        assert!(may_administer_returns(&admin("network:n2"), 1, y).is_err());
        assert!(may_administer_returns(&admin("years:2022/23"), 1, y).is_ok());
        assert!(may_administer_returns(&admin("years:2021/22-2023/24"), 1, y).is_ok());
        assert!(may_administer_returns(&admin("years:2022/23"), 1, fy("2020/21")).is_err());
        assert!(may_administer_returns(&admin("read:returns"), 1, y).is_err());
    }
}
