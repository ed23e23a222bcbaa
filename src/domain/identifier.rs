use std::fmt;
use std::str::FromStr;

use super::{GssCode, Invalid};

/// The scheme an official identifier belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierScheme {
    /// ONS GSS code (councils, combined authorities).
    Gss,
    /// NHS Organisation Data Service code.
    Ods,
    /// UK Register of Learning Providers number.
    Ukprn,
    /// Companies House company number.
    CompaniesHouse,
    /// Charity Commission registered charity number.
    Charity,
}

impl IdentifierScheme {
    pub const ALL: [IdentifierScheme; 5] = [
        IdentifierScheme::Gss,
        IdentifierScheme::Ods,
        IdentifierScheme::Ukprn,
        IdentifierScheme::CompaniesHouse,
        IdentifierScheme::Charity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierScheme::Gss => "GSS",
            IdentifierScheme::Ods => "ODS",
            IdentifierScheme::Ukprn => "UKPRN",
            IdentifierScheme::CompaniesHouse => "COMPANIES_HOUSE",
            IdentifierScheme::Charity => "CHARITY",
        }
    }
}

impl FromStr for IdentifierScheme {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let up = s.trim().to_ascii_uppercase();
        IdentifierScheme::ALL
            .into_iter()
            .find(|x| x.as_str() == up)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{s}` is not an identifier scheme: use one of {}",
                    IdentifierScheme::ALL
                        .map(IdentifierScheme::as_str)
                        .join(", ")
                ))
            })
    }
}

impl fmt::Display for IdentifierScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An identifier whose value has the form its scheme requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    scheme: IdentifierScheme,
    value: String,
}

impl Identifier {
    pub fn parse(scheme: IdentifierScheme, raw: &str) -> Result<Self, Invalid> {
        let v = raw.trim().to_ascii_uppercase();
        let ok = match scheme {
            IdentifierScheme::Gss => GssCode::parse(&v).is_ok(),
            IdentifierScheme::Ods => {
                (3..=6).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric())
            }
            IdentifierScheme::Ukprn => {
                v.len() == 8 && v.starts_with('1') && v.chars().all(|c| c.is_ascii_digit())
            }
            IdentifierScheme::CompaniesHouse => {
                v.len() == 8
                    && v.chars().all(|c| c.is_ascii_alphanumeric())
                    && v[2..].chars().all(|c| c.is_ascii_digit())
            }
            IdentifierScheme::Charity => {
                (6..=8).contains(&v.len()) && v.chars().all(|c| c.is_ascii_digit())
            }
        };
        if !ok {
            let form = match scheme {
                IdentifierScheme::Gss => "nine characters such as E08000025",
                IdentifierScheme::Ods => "3 to 6 letters or digits such as RRK",
                IdentifierScheme::Ukprn => "8 digits starting with 1",
                IdentifierScheme::CompaniesHouse => "8 characters such as 01234567 or SC123456",
                IdentifierScheme::Charity => "6 to 8 digits",
            };
            return Err(Invalid::new(format!(
                "`{}` is not a valid {} identifier: expected {form}",
                raw.trim(),
                scheme
            )));
        }
        Ok(Self { scheme, value: v })
    }

    pub fn scheme(&self) -> IdentifierScheme {
        self.scheme
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_by_scheme() {
        use IdentifierScheme::*;
        assert!(Identifier::parse(Ods, "rrk").is_ok_and(|i| i.value() == "RRK"));
        assert!(Identifier::parse(Ukprn, "10007163").is_ok());
        assert!(Identifier::parse(Ukprn, "20007163").is_err());
        assert!(Identifier::parse(CompaniesHouse, "SC123456").is_ok());
        assert!(Identifier::parse(CompaniesHouse, "SC12345X").is_err());
        assert!(Identifier::parse(Charity, "1089503").is_ok());
        assert!(Identifier::parse(Gss, "E08000025").is_ok());
        assert!(Identifier::parse(Gss, "E0800002").is_err());
        assert!("ods".parse::<IdentifierScheme>() == Ok(Ods));
        assert!("DUNS".parse::<IdentifierScheme>().is_err());
    }
}
