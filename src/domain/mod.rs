//! Validated value types. Raw input becomes one of these at the edge (GraphQL inputs,
//! CSV rows, configuration); past the edge nothing re-checks them.

mod access;
mod financial_year;
mod gss;
mod identifier;
mod key;
pub mod quantity;
mod role;
mod scope;
mod sector;

pub use access::AccessLevel;
pub use financial_year::FinancialYear;
pub use gss::{GssCode, GssKind};
pub use identifier::{Identifier, IdentifierScheme};
pub use key::{IdOrKey, Key};
pub use role::Role;
pub use scope::{MetricGroup, Scopes, Verb, YearRange};
pub use sector::Sector;

/// `From` both ways between a domain vocabulary and its stored twin in `entity::vocab`,
/// variant for variant; the matches are exhaustive, so the two cannot drift apart.
macro_rules! stored_as {
    ($domain:ident, $stored:path { $($variant:ident),+ $(,)? }) => {
        impl From<$stored> for $domain {
            fn from(v: $stored) -> Self {
                use $stored as S;
                match v {
                    $(S::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$domain> for $stored {
            fn from(v: $domain) -> Self {
                use $stored as S;
                match v {
                    $($domain::$variant => S::$variant,)+
                }
            }
        }
    };
}

stored_as!(
    AccessLevel,
    entity::vocab::AccessLevel { Aggregate, Detail }
);
stored_as!(
    MetricGroup,
    entity::vocab::MetricGroup {
        Spend,
        Employment,
        LandAndAssets,
        Emissions
    }
);
stored_as!(
    Role,
    entity::vocab::Role {
        Operator,
        NetworkAdmin,
        NetworkSubmitter,
        RegionAnalyst,
        Researcher,
    }
);
stored_as!(
    Sector,
    entity::vocab::Sector {
        LocalAuthority,
        NhsTrust,
        IntegratedCareBoard,
        University,
        FeCollege,
        HousingAssociation,
        Police,
        FireAndRescue,
        CombinedAuthority,
        PrivateBusiness,
        Vcse,
        BusinessRepresentative,
        Other,
    }
);

/// Why a raw value was refused; the caller adds which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
