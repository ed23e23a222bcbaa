use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use super::Invalid;

/// A reporting year written `2023/24`: the year it starts in, and the next year's last two
/// digits. Which months it covers depends on the institution's year-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FinancialYear(u16);

impl FinancialYear {
    pub fn new(start_year: u16) -> Result<Self, Invalid> {
        if !(1990..=2100).contains(&start_year) {
            return Err(Invalid::new(format!(
                "{start_year} is outside the supported years 1990 to 2100"
            )));
        }
        Ok(Self(start_year))
    }

    pub fn start_year(self) -> u16 {
        self.0
    }

    /// The last day of the period for an institution whose year ends in `year_end_month`.
    pub fn end_date(self, year_end_month: u8) -> Option<NaiveDate> {
        let m = u32::from(year_end_month.clamp(1, 12));
        // The period ends in the second named year: 2023/24 ends 31 March 2024 for a March
        // year-end and 31 July 2024 for a university's July year-end.
        let year = i32::from(self.0) + 1;
        let first_of_next = if m == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, m + 1, 1)
        }?;
        first_of_next.pred_opt()
    }

    /// The first day of the period for an institution whose year ends in `year_end_month`.
    pub fn start_date(self, year_end_month: u8) -> Option<NaiveDate> {
        let previous = FinancialYear(self.0.checked_sub(1)?);
        previous.end_date(year_end_month)?.succ_opt()
    }
}

impl FromStr for FinancialYear {
    type Err = Invalid;
    fn from_str(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let bad = || {
            Invalid::new(format!(
                "`{s}` is not a financial year: write it as 2023/24"
            ))
        };
        let (a, b) = s.split_once('/').ok_or_else(bad)?;
        if a.len() != 4 || b.len() != 2 {
            return Err(bad());
        }
        let start: u16 = a.parse().map_err(|_| bad())?;
        let next: u16 = b.parse().map_err(|_| bad())?;
        if (start + 1) % 100 != next {
            return Err(Invalid::new(format!(
                "`{s}` is not a financial year: the second part must be the year after {start}"
            )));
        }
        FinancialYear::new(start)
    }
}

impl fmt::Display for FinancialYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:02}", self.0, (self.0 + 1) % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_dates() {
        let fy: FinancialYear = "2023/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fy.to_string(), "2023/24");
        assert_eq!(fy.end_date(3), NaiveDate::from_ymd_opt(2024, 3, 31));
        assert_eq!(fy.start_date(3), NaiveDate::from_ymd_opt(2023, 4, 1));
        assert_eq!(fy.end_date(7), NaiveDate::from_ymd_opt(2024, 7, 31));
        assert_eq!(fy.start_date(7), NaiveDate::from_ymd_opt(2023, 8, 1));
        assert_eq!(
            "1999/00".parse::<FinancialYear>().map(|f| f.start_year()),
            Ok(1999)
        );
        for bad in ["2023/25", "2023-24", "23/24", "2023/2024", ""] {
            assert!(bad.parse::<FinancialYear>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(y in 1990u16..=2100) {
            let fy = FinancialYear::new(y).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(fy.to_string().parse::<FinancialYear>(), Ok(fy));
        }

        #[test]
        fn a_period_is_a_year_long(y in 1991u16..=2100, m in 1u8..=12) {
            let fy = FinancialYear::new(y).unwrap_or_else(|e| panic!("{e}"));
            let (s, e) = (fy.start_date(m), fy.end_date(m));
            prop_assert!(s.is_some() && e.is_some());
            if let (Some(s), Some(e)) = (s, e) {
                let days = (e - s).num_days() + 1;
                prop_assert!(days == 365 || days == 366);
            }
        }
    }
}
