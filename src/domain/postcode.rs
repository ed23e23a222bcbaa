use std::fmt;

use super::Invalid;

/// A UK unit postcode in its one spelling: upper case, one space before the three-character
/// inward code (`B69 4HE`), as the ONS lookup's `pcds` column writes it. Spaces and case in
/// the input do not matter (`b694he`, ` B69  4HE `); the shape does: an outward code of a
/// letter or two, a digit, and an optional digit or letter (`B1`, `B69`, `DY10`, `W1A`,
/// `EC1V`), then a digit and two letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode(String);

impl Postcode {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bad = || {
            Invalid::new(format!(
                "`{}` is not a UK postcode such as B69 4HE",
                raw.trim()
            ))
        };
        if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
            return Err(bad());
        }
        let (outward, inward) = compact.split_at(compact.len() - 3);
        if !(is_outward(outward) && is_inward(inward)) && compact != "GIR0AA" {
            return Err(bad());
        }
        Ok(Self(format!("{outward} {inward}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_outward(s: &str) -> bool {
    let b = s.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if !(1..=2).contains(&letters) {
        return false;
    }
    match &b[letters..] {
        [d] => d.is_ascii_digit(),
        [d, e] => d.is_ascii_digit() && (e.is_ascii_digit() || e.is_ascii_uppercase()),
        _ => false,
    }
}

fn is_inward(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 3 && b[0].is_ascii_digit() && b[1..].iter().all(u8::is_ascii_uppercase)
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spells_each_postcode_one_way() {
        for (raw, want) in [
            ("B69 4HE", "B69 4HE"),
            ("b694he", "B69 4HE"),
            ("  DY1  1HF ", "DY1 1HF"),
            ("B1 1AA", "B1 1AA"),
            ("WV10 6QP", "WV10 6QP"),
            ("EC1V 9HX", "EC1V 9HX"),
            ("W1A 0AX", "W1A 0AX"),
            ("GIR 0AA", "GIR 0AA"),
        ] {
            assert_eq!(Postcode::parse(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_postcode() {
        for raw in [
            "",
            "B69",
            "69 4HE",
            "B69 HE4",
            "BBB1 1AA",
            "B1234 1AA",
            "B69 4H",
            "B69-4HE",
            "B6é 4HE",
            "unknown",
        ] {
            assert!(Postcode::parse(raw).is_err(), "{raw}");
        }
    }

    proptest! {
        /// Case and spacing never change the spelling, and a spelling parses to itself.
        #[test]
        fn spelling_is_stable(
            area in "[A-Z]{1,2}", district in "[0-9][0-9A-Z]?", sector in "[0-9]", unit in "[A-Z]{2}",
            gap in " {0,3}", lower in any::<bool>(),
        ) {
            let raw = format!("{area}{district}{gap}{sector}{unit}");
            let raw = if lower { raw.to_lowercase() } else { raw };
            let p = Postcode::parse(&raw).unwrap();
            prop_assert_eq!(p.as_str(), format!("{area}{district} {sector}{unit}"));
            prop_assert_eq!(Postcode::parse(p.as_str()).unwrap(), p);
        }

        #[test]
        fn never_panics(raw in "\\PC{0,12}") {
            let _ = Postcode::parse(&raw);
        }
    }
}
