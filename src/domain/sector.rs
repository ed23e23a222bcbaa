use std::str::FromStr;

use super::{Invalid, Sector};

impl Sector {
    /// The month a financial year ends in, unless the institution says otherwise:
    /// universities report to July, everyone else to March.
    pub fn default_year_end_month(self) -> u8 {
        match self {
            Sector::University => 7,
            _ => 3,
        }
    }
}

impl FromStr for Sector {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Sector::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{s}` is not a sector: use one of {}",
                    Sector::ALL.map(Sector::as_str).join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_sector() {
        for s in Sector::ALL {
            assert_eq!(s.as_str().parse::<Sector>(), Ok(s));
        }
        assert!("NHS".parse::<Sector>().is_err());
        assert_eq!(Sector::University.default_year_end_month(), 7);
        assert_eq!(Sector::NhsTrust.default_year_end_month(), 3);
    }
}
