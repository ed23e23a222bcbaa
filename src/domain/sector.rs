use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// The sector of an anchor institution (DESIGN.md's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sector {
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

impl Sector {
    pub const ALL: [Sector; 13] = [
        Sector::LocalAuthority,
        Sector::NhsTrust,
        Sector::IntegratedCareBoard,
        Sector::University,
        Sector::FeCollege,
        Sector::HousingAssociation,
        Sector::Police,
        Sector::FireAndRescue,
        Sector::CombinedAuthority,
        Sector::PrivateBusiness,
        Sector::Vcse,
        Sector::BusinessRepresentative,
        Sector::Other,
    ];

    /// The stored and wire name, such as `NHS_TRUST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::LocalAuthority => "LOCAL_AUTHORITY",
            Sector::NhsTrust => "NHS_TRUST",
            Sector::IntegratedCareBoard => "INTEGRATED_CARE_BOARD",
            Sector::University => "UNIVERSITY",
            Sector::FeCollege => "FE_COLLEGE",
            Sector::HousingAssociation => "HOUSING_ASSOCIATION",
            Sector::Police => "POLICE",
            Sector::FireAndRescue => "FIRE_AND_RESCUE",
            Sector::CombinedAuthority => "COMBINED_AUTHORITY",
            Sector::PrivateBusiness => "PRIVATE_BUSINESS",
            Sector::Vcse => "VCSE",
            Sector::BusinessRepresentative => "BUSINESS_REPRESENTATIVE",
            Sector::Other => "OTHER",
        }
    }

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

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
