//! Authorization, in one place. Every decision about what a caller may do is a function
//! here; resolvers call them and never decide by hand. Refusals carry a reason for the log;
//! the client is told only `FORBIDDEN` (or `UNAUTHENTICATED` when there is no token).
//!
//! Directory writes and token management are administrative actions: a token that lists
//! verbs in its scopes (`read:impact`, …) is narrowed to those verbs and may not take them.

pub mod disclosure;
pub mod returns;
pub mod spend;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::auth::{Caller, Principal};
use crate::domain::{Key, MetricGroup, Role, Scopes, YearRange};
use crate::error::ApiError;

/// The principal behind a request that needs one.
pub fn authenticated(caller: &Caller) -> Result<&Principal, ApiError> {
    caller
        .principal()
        .ok_or_else(|| ApiError::Unauthenticated("this needs a bearer token".into()))
}

fn forbid(p: &Principal, what: impl Into<String>) -> ApiError {
    ApiError::Forbidden {
        reason: format!("{p:?}: {}", what.into()),
    }
}

/// Administrative actions need a token that is not narrowed to data verbs.
fn admin_capable<'a>(caller: &'a Caller, action: &str) -> Result<&'a Principal, ApiError> {
    let p = authenticated(caller)?;
    if p.scopes.verbs.is_some() {
        return Err(forbid(p, format!("{action}: token scopes list verbs only")));
    }
    Ok(p)
}

fn is_operator(p: &Principal) -> bool {
    p.role == Role::Operator
}

fn is_admin_of(p: &Principal, network_id: i64) -> bool {
    p.role == Role::NetworkAdmin
        && p.network.as_ref().is_some_and(|n| n.id == network_id)
        && p.network
            .as_ref()
            .is_some_and(|n| p.scopes.allows_network(&n.key))
}

/// Operators only: regions, networks, organisations, stewardship transfers.
pub fn operator_only(caller: &Caller, action: &str) -> Result<(), ApiError> {
    let p = admin_capable(caller, action)?;
    if is_operator(p) {
        Ok(())
    } else {
        Err(forbid(p, format!("{action} is for operators")))
    }
}

/// An operator, or an admin of this network: editing the network, inviting members.
pub fn operator_or_admin_of(
    caller: &Caller,
    network_id: i64,
    action: &str,
) -> Result<(), ApiError> {
    let p = admin_capable(caller, action)?;
    if is_operator(p) || is_admin_of(p, network_id) {
        Ok(())
    } else {
        Err(forbid(p, format!("{action} on network {network_id}")))
    }
}

/// Ending a membership: an operator, the membership's network's admin (removing a member),
/// or the steward's admin (the institution leaving).
pub fn may_end_membership(
    caller: &Caller,
    membership_network: i64,
    steward_network: i64,
) -> Result<(), ApiError> {
    let p = admin_capable(caller, "endMembership")?;
    if is_operator(p) || is_admin_of(p, membership_network) || is_admin_of(p, steward_network) {
        Ok(())
    } else {
        Err(forbid(
            p,
            format!("endMembership in network {membership_network}"),
        ))
    }
}

/// Whether an invitation counts at once: when the inviting network is the steward, or an
/// operator invites. Otherwise the steward's admin must accept it.
pub fn invitation_counts_at_once(
    caller: &Caller,
    inviting_network: i64,
    steward_network: i64,
) -> bool {
    caller
        .principal()
        .is_some_and(|p| is_operator(p) || inviting_network == steward_network)
}

/// What a token to be issued asks for, for the policy to weigh.
pub struct TokenAsk<'a> {
    pub role: Role,
    pub network_id: Option<i64>,
    pub scopes: &'a Scopes,
    pub expires_at: DateTime<Utc>,
    /// For researcher tokens asked by a network admin: the grants in force from the admin's
    /// network to the token's organisation.
    pub grants: &'a [GrantReach],
}

/// What one grant in force reaches, for weighing a researcher token against it.
#[derive(Debug, Clone)]
pub struct GrantReach {
    /// The granting (steward) network.
    pub network_id: i64,
    pub expires_at: DateTime<Utc>,
    /// Its groups, its years and its network, as scopes: a researcher token within these is
    /// no wider than the grant.
    pub scopes: Scopes,
}

impl GrantReach {
    pub fn new(
        network_id: i64,
        network_key: Key,
        groups: BTreeSet<MetricGroup>,
        years: YearRange,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            network_id,
            expires_at,
            scopes: Scopes {
                metrics: Some(groups),
                years: Some([years].into()),
                networks: Some([network_key].into()),
                // A researcher's role writes nothing, whatever its verbs say.
                verbs: None,
            },
        }
    }
}

/// Operators issue any token. A network admin issues submitter tokens for its own network,
/// and researcher tokens for an organisation its network has granted to, within one grant in
/// force: its groups, years and network named in the token's scopes, the read verbs only, and
/// expiring no later than the grant. Neither is ever wider than the admin's own token.
pub fn may_issue_token(caller: &Caller, ask: &TokenAsk<'_>) -> Result<(), ApiError> {
    let p = admin_capable(caller, "issueToken")?;
    if is_operator(p) {
        return Ok(());
    }
    if p.role == Role::NetworkAdmin && !ask.scopes.is_within(&p.scopes) {
        return Err(forbid(p, "issueToken: scopes wider than the issuer's own"));
    }
    match (p.role, ask.role, ask.network_id, &p.network) {
        (Role::NetworkAdmin, Role::NetworkSubmitter, Some(n), _) if is_admin_of(p, n) => Ok(()),
        (Role::NetworkAdmin, Role::Researcher, _, Some(own)) if is_admin_of(p, own.id) => {
            let within = ask.grants.iter().any(|g| {
                g.network_id == own.id
                    && ask.expires_at <= g.expires_at
                    && ask.scopes.is_within(&g.scopes)
            });
            if within {
                Ok(())
            } else if ask.grants.is_empty() {
                Err(forbid(
                    p,
                    "issueToken: the network has no grant in force to this organisation",
                ))
            } else {
                Err(forbid(
                    p,
                    "issueToken: a researcher token must name its metric groups, years and \
                     network within one grant, and expire no later than it",
                ))
            }
        }
        _ => Err(forbid(p, format!("issueToken for {} tokens", ask.role))),
    }
}

/// A network's grants and access log: its admins. Operators run the service but do not
/// decide who sees a network's data.
pub fn may_administer_sharing<'a>(
    caller: &'a Caller,
    network_id: i64,
    action: &str,
) -> Result<&'a Principal, ApiError> {
    let p = admin_capable(caller, action)?;
    if is_admin_of(p, network_id) {
        Ok(p)
    } else {
        Err(forbid(p, format!("{action} for network {network_id}")))
    }
}

/// Operators revoke any token; a network admin revokes its network's submitter tokens and
/// researcher tokens scoped to its network alone; anyone may revoke the token they are using.
pub fn may_revoke_token(
    caller: &Caller,
    token_id: &str,
    token_role: Role,
    token_network: Option<i64>,
    token_scopes: Option<&str>,
) -> Result<(), ApiError> {
    let p = authenticated(caller)?;
    if p.token_id.as_deref() == Some(token_id) || is_operator(p) {
        return Ok(());
    }
    // A researcher token narrowed to one network's data is that network's to withdraw.
    let researcher_of = |own: &crate::auth::NetworkRef| {
        token_role == Role::Researcher
            && token_scopes
                .and_then(|s| Scopes::parse(s).ok())
                .and_then(|s| s.networks)
                .is_some_and(|ns| ns.len() == 1 && ns.iter().all(|k| k.as_str() == own.key))
    };
    match (token_network, &p.network) {
        (Some(n), _) if is_admin_of(p, n) && token_role == Role::NetworkSubmitter => Ok(()),
        (None, Some(own)) if is_admin_of(p, own.id) && researcher_of(own) => Ok(()),
        _ => Err(forbid(p, format!("revokeToken {token_id}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::NetworkRef;

    /// A caller with a token of `role` for network `network` (key `n<id>`), for policy tests.
    pub(crate) fn principal(role: Role, network: Option<i64>, scopes: &str) -> Caller {
        Caller::Token(Box::new(Principal {
            subject: "t".into(),
            role,
            network: network.map(|id| NetworkRef {
                id,
                key: format!("n{id}"),
            }),
            region: None,
            organisation: None,
            scopes: Scopes::parse(scopes).unwrap(),
            token_id: Some("me".into()),
            issuer: "anchorfed".into(),
            expires_at: Utc::now(),
        }))
    }

    #[test]
    fn anonymous_is_unauthenticated_everywhere() {
        let a = Caller::Anonymous;
        assert!(matches!(
            operator_only(&a, "x"),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            operator_or_admin_of(&a, 1, "x"),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            may_end_membership(&a, 1, 1),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(!invitation_counts_at_once(&a, 1, 1));
    }

    #[test]
    fn every_role_against_every_directory_rule() {
        let own = 1;
        let other = 2;
        for role in Role::ALL {
            let c = principal(
                role,
                role.anchor().filter(|a| *a == "network").map(|_| own),
                "",
            );
            let op = role == Role::Operator;
            let admin = role == Role::NetworkAdmin;
            assert_eq!(operator_only(&c, "x").is_ok(), op, "{role}");
            assert_eq!(
                operator_or_admin_of(&c, own, "x").is_ok(),
                op || admin,
                "{role}"
            );
            assert_eq!(operator_or_admin_of(&c, other, "x").is_ok(), op, "{role}");
            // Leaving through the steward, or removing from one's own network.
            assert_eq!(
                may_end_membership(&c, other, own).is_ok(),
                op || admin,
                "{role}"
            );
            assert_eq!(
                may_end_membership(&c, own, other).is_ok(),
                op || admin,
                "{role}"
            );
            assert_eq!(may_end_membership(&c, other, other).is_ok(), op, "{role}");
            assert!(invitation_counts_at_once(&c, own, own), "{role}");
            assert_eq!(invitation_counts_at_once(&c, own, other), op, "{role}");
        }
    }

    #[test]
    fn scoped_tokens_cannot_administer() {
        let c = principal(Role::NetworkAdmin, Some(1), "read:impact");
        assert!(operator_or_admin_of(&c, 1, "x").is_err());
        let c = principal(Role::Operator, None, "read:returns");
        assert!(operator_only(&c, "x").is_err());
        // A network scope that leaves out its own network leaves it no admin reach there.
        let c = principal(Role::NetworkAdmin, Some(1), "network:n2");
        assert!(operator_or_admin_of(&c, 1, "x").is_err());
    }

    #[test]
    fn token_issuing_rules() {
        let full = Scopes::full();
        let spend = Scopes::parse("metrics:spend").unwrap();
        let ask = |role, network_id, scopes| TokenAsk {
            role,
            network_id,
            scopes,
            expires_at: Utc::now(),
            grants: &[],
        };
        let op = principal(Role::Operator, None, "");
        for role in Role::ALL {
            assert!(may_issue_token(&op, &ask(role, Some(1), &full)).is_ok());
        }
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        assert!(may_issue_token(&admin, &ask(Role::NetworkSubmitter, Some(1), &full)).is_ok());
        assert!(may_issue_token(&admin, &ask(Role::NetworkSubmitter, Some(2), &full)).is_err());
        for role in [
            Role::Operator,
            Role::NetworkAdmin,
            Role::RegionAnalyst,
            Role::Researcher,
        ] {
            assert!(
                may_issue_token(&admin, &ask(role, Some(1), &full)).is_err(),
                "{role}"
            );
        }
        let narrow_admin = principal(Role::NetworkAdmin, Some(1), "metrics:spend");
        assert!(
            may_issue_token(&narrow_admin, &ask(Role::NetworkSubmitter, Some(1), &spend)).is_ok()
        );
        assert!(
            may_issue_token(&narrow_admin, &ask(Role::NetworkSubmitter, Some(1), &full)).is_err()
        );
        for role in [
            Role::NetworkSubmitter,
            Role::RegionAnalyst,
            Role::Researcher,
        ] {
            let c = principal(role, Some(1), "");
            assert!(may_issue_token(&c, &ask(Role::NetworkSubmitter, Some(1), &full)).is_err());
        }
    }

    #[test]
    fn researcher_tokens_fit_one_grant() {
        let now = Utc::now();
        let grant = GrantReach::new(
            1,
            Key::parse("n1").unwrap(),
            [MetricGroup::Spend, MetricGroup::Emissions].into(),
            YearRange {
                from: "2021/22".parse().unwrap(),
                to: "2022/23".parse().unwrap(),
            },
            now + chrono::Duration::days(10),
        );
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        let check = |scopes: &str, days: i64, grants: &[GrantReach]| {
            let scopes = Scopes::parse(scopes).unwrap();
            may_issue_token(
                &admin,
                &TokenAsk {
                    role: Role::Researcher,
                    network_id: None,
                    scopes: &scopes,
                    expires_at: now + chrono::Duration::days(days),
                    grants,
                },
            )
            .is_ok()
        };
        let g = std::slice::from_ref(&grant);
        assert!(check(
            "metrics:spend years:2021/22-2022/23 network:n1",
            1,
            g
        ));
        assert!(check(
            "metrics:spend metrics:emissions years:2022/23 network:n1 read:impact",
            10,
            g
        ));
        assert!(
            !check("metrics:spend years:2021/22-2022/23 network:n1", 11, g),
            "outlives"
        );
        assert!(
            !check("metrics:employment years:2022/23 network:n1", 1, g),
            "group"
        );
        assert!(
            !check("metrics:spend years:2020/21-2022/23 network:n1", 1, g),
            "years"
        );
        assert!(
            !check("metrics:spend years:2022/23 network:n2", 1, g),
            "network"
        );
        assert!(!check("metrics:spend years:2022/23", 1, g), "no network");
        assert!(!check("", 1, g), "unscoped");
        assert!(
            !check("metrics:spend years:2022/23 network:n1", 1, &[]),
            "no grant"
        );
        let mut other = grant.clone();
        other.network_id = 2;
        assert!(
            !check("metrics:spend years:2022/23 network:n1", 1, &[other]),
            "another network's grant"
        );
        // Only admins of the granting network issue them.
        let sub = principal(Role::NetworkSubmitter, Some(1), "");
        let scopes = Scopes::parse("metrics:spend years:2022/23 network:n1").unwrap();
        let ask = TokenAsk {
            role: Role::Researcher,
            network_id: None,
            scopes: &scopes,
            expires_at: now,
            grants: g,
        };
        assert!(may_issue_token(&sub, &ask).is_err());
    }

    #[test]
    fn sharing_is_for_the_networks_admins() {
        assert!(
            may_administer_sharing(&principal(Role::NetworkAdmin, Some(1), ""), 1, "x").is_ok()
        );
        for c in [
            principal(Role::NetworkAdmin, Some(2), ""),
            principal(Role::NetworkAdmin, Some(1), "read:impact"),
            principal(Role::NetworkSubmitter, Some(1), ""),
            principal(Role::Operator, None, ""),
            principal(Role::RegionAnalyst, None, ""),
            principal(Role::Researcher, None, ""),
            Caller::Anonymous,
        ] {
            assert!(may_administer_sharing(&c, 1, "x").is_err());
        }
    }

    #[test]
    fn token_revoking_rules() {
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        assert!(may_revoke_token(&admin, "x", Role::NetworkSubmitter, Some(1), None).is_ok());
        assert!(may_revoke_token(&admin, "x", Role::NetworkSubmitter, Some(2), None).is_err());
        assert!(may_revoke_token(&admin, "x", Role::NetworkAdmin, Some(1), None).is_err());
        assert!(may_revoke_token(&admin, "me", Role::NetworkAdmin, Some(1), None).is_ok());
        let sub = principal(Role::NetworkSubmitter, Some(1), "");
        assert!(may_revoke_token(&sub, "x", Role::NetworkSubmitter, Some(1), None).is_err());
        assert!(
            may_revoke_token(
                &principal(Role::Operator, None, ""),
                "x",
                Role::NetworkAdmin,
                Some(3),
                None
            )
            .is_ok()
        );
        // Researcher tokens scoped to the admin's network alone, and no others.
        let r = Role::Researcher;
        assert!(may_revoke_token(&admin, "x", r, None, Some("network:n1 metrics:spend")).is_ok());
        assert!(may_revoke_token(&admin, "x", r, None, Some("network:n1 network:n2")).is_err());
        assert!(may_revoke_token(&admin, "x", r, None, Some("network:n2")).is_err());
        assert!(may_revoke_token(&admin, "x", r, None, Some("metrics:spend")).is_err());
        assert!(may_revoke_token(&admin, "x", r, None, None).is_err());
        assert!(may_revoke_token(&sub, "x", r, None, Some("network:n1")).is_err());
    }
}
