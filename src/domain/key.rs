use std::fmt;

use super::Invalid;

/// A stable slug naming a network, institution or organisation: lower-case ASCII letters,
/// digits and single hyphens, starting with a letter, at most 64 characters.
/// Starting with a letter keeps keys apart from numeric ids, so an argument can take either.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(Invalid::new(format!(
                "`{s}` is not a key: it must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Invalid::new(format!(
                "`{s}` is not a key: it must start with a lower-case letter"
            )));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || s.ends_with('-')
            || s.contains("--")
        {
            return Err(Invalid::new(format!(
                "`{s}` is not a key: use lower-case letters, digits and single hyphens, such as black-country"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(Key::parse("black-country").is_ok());
        assert!(Key::parse("nhs-trust-2").is_ok());
        for bad in [
            "",
            "Black",
            "1abc",
            "a--b",
            "a-",
            "a_b",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(Key::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn valid_keys_round_trip(s in "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,10}){0,3}") {
            prop_assert_eq!(Key::parse(&s).map(|k| k.to_string()), Ok(s));
        }

        #[test]
        fn a_key_is_never_a_number(s in "\\PC{0,20}") {
            if let Ok(k) = Key::parse(&s) {
                prop_assert!(k.as_str().parse::<i64>().is_err());
            }
        }
    }
}

/// How an argument named `id` (or ending in `Id`) refers to a network, institution or
/// organisation: by numeric id or by key. Keys start with a letter, so the two never clash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdOrKey {
    Id(i64),
    Key(Key),
}

impl IdOrKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if let Ok(id) = s.parse::<i64>()
            && id > 0
        {
            return Ok(IdOrKey::Id(id));
        }
        Key::parse(s).map(IdOrKey::Key).map_err(|_| {
            Invalid::new(format!(
                "`{s}` is neither an id (a positive number) nor a key (such as black-country)"
            ))
        })
    }
}

#[cfg(test)]
mod id_or_key_tests {
    use super::*;

    #[test]
    fn parses_both() {
        assert_eq!(IdOrKey::parse("42"), Ok(IdOrKey::Id(42)));
        assert!(matches!(
            IdOrKey::parse("black-country"),
            Ok(IdOrKey::Key(_))
        ));
        assert!(IdOrKey::parse("-3").is_err());
        assert!(IdOrKey::parse("Black Country").is_err());
    }
}
