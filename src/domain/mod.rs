//! Validated value types. Raw input becomes one of these at the edge (GraphQL inputs,
//! CSV rows, configuration); past the edge nothing re-checks them.

/// A closed vocabulary from one list: the enum, `ALL`, each value's stored and wire name
/// (`as_str`), `Display`, and `From` both ways with its stored twin in `entity::vocab`
/// (exhaustive matches, so the two cannot drift apart).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident stored as $stored:path {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$stored> for $name {
            fn from(v: $stored) -> Self {
                use $stored as S;
                match v {
                    $(S::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$name> for $stored {
            fn from(v: $name) -> Self {
                use $stored as S;
                match v {
                    $($name::$variant => S::$variant,)+
                }
            }
        }
    };
}

mod access;
mod as_of;
mod financial_year;
mod gss;
mod identifier;
mod key;
mod postcode;
pub mod quantity;
mod role;
mod scope;
mod sector;
mod vocabularies;

pub use as_of::AsOf;
pub use financial_year::FinancialYear;
pub use gss::{GssCode, GssKind};
pub use identifier::{Identifier, IdentifierScheme};
pub use key::{IdOrKey, Key};
pub use postcode::Postcode;
pub use scope::{Scopes, Verb, YearRange};
pub use vocabularies::{AccessLevel, MetricGroup, Role, Sector};

/// Why a raw value was refused; the caller adds which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
