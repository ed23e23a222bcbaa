//! What a grant gives: aggregates only, or the values themselves.

use std::str::FromStr;

use super::Invalid;

/// The level of a grant (DESIGN.md's visibility, less `NONE`, which no grant gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessLevel {
    /// The value may count towards totals the reader sees, under disclosure control.
    Aggregate,
    /// The reader sees the value itself.
    Detail,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 2] = [AccessLevel::Aggregate, AccessLevel::Detail];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Aggregate => "AGGREGATE",
            AccessLevel::Detail => "DETAIL",
        }
    }
}

impl FromStr for AccessLevel {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        AccessLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{s}` is not an access level (AGGREGATE or DETAIL)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for l in AccessLevel::ALL {
            assert_eq!(l.as_str().parse::<AccessLevel>().unwrap(), l);
        }
        assert!("NONE".parse::<AccessLevel>().is_err());
        assert!(AccessLevel::Aggregate < AccessLevel::Detail);
    }
}
