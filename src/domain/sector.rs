use std::str::FromStr;

use super::Invalid;

vocabulary! {
    /// The sector of an anchor institution (DESIGN.md's list).
    Sector stored as entity::vocab::Sector {
        LocalAuthority = "LOCAL_AUTHORITY",
        NhsTrust = "NHS_TRUST",
        IntegratedCareBoard = "INTEGRATED_CARE_BOARD",
        University = "UNIVERSITY",
        FeCollege = "FE_COLLEGE",
        HousingAssociation = "HOUSING_ASSOCIATION",
        Police = "POLICE",
        FireAndRescue = "FIRE_AND_RESCUE",
        CombinedAuthority = "COMBINED_AUTHORITY",
        PrivateBusiness = "PRIVATE_BUSINESS",
        Vcse = "VCSE",
        BusinessRepresentative = "BUSINESS_REPRESENTATIVE",
        Other = "OTHER",
    }
}

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
