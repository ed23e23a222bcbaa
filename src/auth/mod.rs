//! Authentication: a bearer token becomes a `Principal` once per request, or the request is
//! refused with 401. What a principal may do is the policy module's business, not this one's.

mod keys;
mod tokens;

pub use keys::Keys;
pub use tokens::{
    AuthError, IssueRequest, Issued, Resolved, authenticate, issue, parse_ttl, revoke,
};

use chrono::{DateTime, Utc};

use crate::domain::{GssCode, Role, Scopes};

/// A network a principal is anchored to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRef {
    pub id: i64,
    pub key: String,
}

/// An organisation a researcher belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRef {
    pub id: i64,
    pub key: String,
}

/// Who is calling, as their token says.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub network: Option<NetworkRef>,
    pub region: Option<GssCode>,
    pub organisation: Option<OrganisationRef>,
    pub scopes: Scopes,
    /// The token's `jti`, for tokens this service issued.
    pub token_id: Option<String>,
    pub issuer: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Principal {
    // Nothing secret is in a principal, but keep log lines short and uniform.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Principal({} {} network={:?} region={:?} org={:?} scope=\"{}\" jti={:?})",
            self.subject,
            self.role,
            self.network.as_ref().map(|n| &n.key),
            self.region.as_ref().map(|r| r.as_str()),
            self.organisation.as_ref().map(|o| &o.key),
            self.scopes,
            self.token_id
        )
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Token(Box<Principal>),
}

impl Caller {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Anonymous => None,
            Caller::Token(p) => Some(p),
        }
    }
}
