use std::fmt;

use super::Invalid;

/// A nine-character ONS GSS code: a country letter (E, W, S, N), a two-digit entity
/// code and a six-digit instance number, such as `E08000025` (Birmingham).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GssCode(String);

/// What a GSS code names, by its entity code; the ones the directory uses by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GssKind {
    CombinedAuthority,
    County,
    NonMetropolitanDistrict,
    MetropolitanDistrict,
    UnitaryAuthority,
    LondonBorough,
    Ward,
    Lsoa,
    Other,
}

impl GssCode {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let b = s.as_bytes();
        if b.len() != 9 {
            return Err(Invalid::new(format!(
                "`{s}` is not a GSS code: it must be nine characters, such as E08000025"
            )));
        }
        if !matches!(b[0], b'E' | b'W' | b'S' | b'N' | b'K') {
            return Err(Invalid::new(format!(
                "`{s}` is not a GSS code: it must start with E, W, S, N or K"
            )));
        }
        if !b[1..].iter().all(u8::is_ascii_digit) {
            return Err(Invalid::new(format!(
                "`{s}` is not a GSS code: the eight characters after the letter must be digits"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The entity code, such as `E08`.
    pub fn entity(&self) -> &str {
        &self.0[..3]
    }

    pub fn kind(&self) -> GssKind {
        match self.entity() {
            "E47" => GssKind::CombinedAuthority,
            "E10" => GssKind::County,
            "E07" => GssKind::NonMetropolitanDistrict,
            "E08" => GssKind::MetropolitanDistrict,
            "E06" | "W06" | "S12" | "N09" => GssKind::UnitaryAuthority,
            "E09" => GssKind::LondonBorough,
            "E05" | "W05" | "S13" | "N08" => GssKind::Ward,
            "E01" | "W01" => GssKind::Lsoa,
            _ => GssKind::Other,
        }
    }

    /// Whether the code names a local authority district (the level institutions live at).
    pub fn is_district(&self) -> bool {
        matches!(
            self.kind(),
            GssKind::NonMetropolitanDistrict
                | GssKind::MetropolitanDistrict
                | GssKind::UnitaryAuthority
                | GssKind::LondonBorough
        )
    }
}

impl fmt::Display for GssCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for GssCode {
    type Error = Invalid;
    fn try_from(s: &str) -> Result<Self, Invalid> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_codes() {
        for c in [
            "E08000025",
            "E47000007",
            "E10000031",
            "E07000218",
            "E01000001",
        ] {
            assert_eq!(GssCode::parse(c).map(|g| g.to_string()), Ok(c.to_owned()));
        }
        assert!(GssCode::parse("E08000025").is_ok_and(|g| g.is_district()));
        assert!(GssCode::parse("E47000007").is_ok_and(|g| !g.is_district()));
    }

    #[test]
    fn refuses_malformed() {
        for c in [
            "",
            "E0800002",
            "E080000255",
            "X08000025",
            "e08000025",
            "E08O00025",
        ] {
            assert!(GssCode::parse(c).is_err(), "{c} should be refused");
        }
    }

    proptest! {
        #[test]
        fn any_well_formed_code_round_trips(l in "[EWSNK]", d in "[0-9]{8}") {
            let code = format!("{l}{d}");
            prop_assert_eq!(GssCode::parse(&code).map(|g| g.to_string()), Ok(code));
        }

        #[test]
        fn never_panics_and_only_accepts_nine(s in "\\PC{0,12}") {
            if let Ok(g) = GssCode::parse(&s) {
                prop_assert_eq!(g.as_str().len(), 9);
            }
        }
    }
}
