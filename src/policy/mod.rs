//! Authorization, in one place. Every decision about what a caller may do is a function
//! here; resolvers call them and never decide by hand. Refusals carry a reason for the log;
//! the client is told only `FORBIDDEN` (or `UNAUTHENTICATED` when there is no token).
//!
//! Directory writes and token management are administrative actions: a token that lists
//! verbs in its scopes (`read:impact`, …) is narrowed to those verbs and may not take them.

pub mod returns;

use crate::auth::{Caller, Principal};
use crate::domain::{Role, Scopes};
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
}

/// Operators issue any token; a network admin issues submitter tokens for its own network,
/// never wider than its own token. (Researcher tokens follow the sharing rules, later.)
pub fn may_issue_token(caller: &Caller, ask: &TokenAsk<'_>) -> Result<(), ApiError> {
    let p = admin_capable(caller, "issueToken")?;
    if is_operator(p) {
        return Ok(());
    }
    match (p.role, ask.role, ask.network_id) {
        (Role::NetworkAdmin, Role::NetworkSubmitter, Some(n)) if is_admin_of(p, n) => {
            if ask.scopes.is_within(&p.scopes) {
                Ok(())
            } else {
                Err(forbid(p, "issueToken: scopes wider than the issuer's own"))
            }
        }
        _ => Err(forbid(p, format!("issueToken for {} tokens", ask.role))),
    }
}

/// Operators revoke any token; a network admin revokes its network's submitter tokens; anyone
/// may revoke the token they are using.
pub fn may_revoke_token(
    caller: &Caller,
    token_id: &str,
    token_role: &str,
    token_network: Option<i64>,
) -> Result<(), ApiError> {
    let p = authenticated(caller)?;
    if p.token_id.as_deref() == Some(token_id) || is_operator(p) {
        return Ok(());
    }
    match token_network {
        Some(n) if is_admin_of(p, n) && token_role == Role::NetworkSubmitter.as_str() => Ok(()),
        _ => Err(forbid(p, format!("revokeToken {token_id}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::NetworkRef;
    use chrono::Utc;

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
    fn token_revoking_rules() {
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        assert!(may_revoke_token(&admin, "x", "NETWORK_SUBMITTER", Some(1)).is_ok());
        assert!(may_revoke_token(&admin, "x", "NETWORK_SUBMITTER", Some(2)).is_err());
        assert!(may_revoke_token(&admin, "x", "NETWORK_ADMIN", Some(1)).is_err());
        assert!(may_revoke_token(&admin, "me", "NETWORK_ADMIN", Some(1)).is_ok());
        let sub = principal(Role::NetworkSubmitter, Some(1), "");
        assert!(may_revoke_token(&sub, "x", "NETWORK_SUBMITTER", Some(1)).is_err());
        assert!(
            may_revoke_token(
                &principal(Role::Operator, None, ""),
                "x",
                "NETWORK_ADMIN",
                Some(3)
            )
            .is_ok()
        );
    }
}
