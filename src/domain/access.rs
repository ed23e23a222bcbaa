//! What a grant gives: aggregates only, or the values themselves.

use std::str::FromStr;

use super::{AccessLevel, Invalid};

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
