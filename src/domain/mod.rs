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

/// Why a raw value was refused; the caller adds which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
