//! Exact quantities: a decimal string on the wire, a 64-bit integer of the metric's minor
//! units (10^-scale) in the database. Nothing here rounds: a value with more (non-zero)
//! decimal places than the scale is refused, and anything past 64 bits is an error.

use rust_decimal::Decimal;

use super::Invalid;

/// The largest scale any metric uses; 10^18 still fits in an i64.
pub const MAX_SCALE: u32 = 18;

/// Parses `raw` into minor units of `scale` decimal places.
pub fn to_minor_units(raw: &str, scale: u32) -> Result<i64, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::new(
            "the value is empty: leave it out, or mark it not reported",
        ));
    }
    // Plain decimal notation only: no exponents, no thousands separators, no signs but `-`.
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err(Invalid::new(format!(
            "`{s}` is not a decimal number such as 1234.56"
        )));
    }
    let d = Decimal::from_str_exact(s).map_err(|_| {
        Invalid::new(format!(
            "`{s}` is not a decimal number such as 1234.56, or is too large"
        ))
    })?;
    let normal = d.normalize();
    if normal.scale() > scale {
        return Err(Invalid::new(format!(
            "`{s}` has more decimal places than the {scale} this metric keeps; values are not rounded"
        )));
    }
    let factor = Decimal::from_i128_with_scale(10i128.pow(scale.min(MAX_SCALE)), 0);
    let minor = normal
        .checked_mul(factor)
        .ok_or_else(|| Invalid::new(format!("`{s}` is too large")))?;
    i64::try_from(minor).map_err(|_| Invalid::new(format!("`{s}` is too large to store exactly")))
}

/// Formats minor units as a decimal string with exactly `scale` places (`1020000000000`
/// at scale 2 is `10200000000.00`).
pub fn from_minor_units(v: i64, scale: u32) -> String {
    let d = Decimal::from_i128_with_scale(i128::from(v), scale.min(MAX_SCALE));
    let mut s = d.to_string();
    if scale > 0 && !s.contains('.') {
        s.push('.');
        s.push_str(&"0".repeat(scale as usize));
    }
    s
}

/// A parsed decimal, for ratios computed from exact sums.
pub fn ratio(numerator: i128, denominator: i128, places: u32) -> Option<String> {
    if denominator == 0 {
        return None;
    }
    let n = Decimal::from_i128_with_scale(numerator, 0);
    let d = Decimal::from_i128_with_scale(denominator, 0);
    n.checked_div(d).map(|r| {
        r.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointNearestEven)
            .to_string()
    })
}

/// `minor` units of `scale` places divided by a decimal `factor`, to `places` places: for
/// equivalences (7,224 hectares / 0.714 = 10,117.6 football pitches).
pub fn divide(minor: i64, scale: u32, factor: &str, places: u32) -> Option<String> {
    let f = Decimal::from_str_exact(factor.trim()).ok()?;
    if f.is_zero() {
        return None;
    }
    let v = Decimal::from_i128_with_scale(i128::from(minor), scale.min(MAX_SCALE));
    v.checked_div(f).map(|r| {
        r.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointNearestEven)
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(to_minor_units("10200000000.00", 2), Ok(1_020_000_000_000));
        assert_eq!(to_minor_units("12.5", 2), Ok(1250));
        assert_eq!(to_minor_units("12.50", 2), Ok(1250));
        assert_eq!(
            to_minor_units("12.500", 2),
            Ok(1250),
            "trailing zeros lose nothing"
        );
        assert_eq!(to_minor_units("7", 0), Ok(7));
        assert_eq!(to_minor_units("0", 2), Ok(0));
        assert!(to_minor_units("12.345", 2).is_err(), "never rounded");
        assert!(to_minor_units("1.5", 0).is_err());
        assert!(to_minor_units("1e3", 0).is_err());
        assert!(to_minor_units("1,000", 0).is_err());
        assert!(to_minor_units("", 0).is_err());
        assert!(
            to_minor_units("92233720368547758.08", 2).is_err(),
            "past i64 is an error"
        );
        assert_eq!(to_minor_units("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(from_minor_units(1_020_000_000_000, 2), "10200000000.00");
        assert_eq!(from_minor_units(5, 2), "0.05");
        assert_eq!(from_minor_units(7, 0), "7");
        assert_eq!(from_minor_units(-5, 2), "-0.05");
        assert_eq!(ratio(1, 3, 4).as_deref(), Some("0.3333"));
        assert_eq!(ratio(1, 0, 4), None);
        assert_eq!(divide(722_400, 2, "0.714", 1).as_deref(), Some("10117.6"));
        assert_eq!(divide(1, 2, "0", 1), None);
    }

    proptest! {
        #[test]
        fn round_trips_exactly(v in 0i64..=i64::MAX, scale in 0u32..=6) {
            let s = from_minor_units(v, scale);
            prop_assert_eq!(to_minor_units(&s, scale), Ok(v));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}", scale in 0u32..=6) {
            let _ = to_minor_units(&s, scale);
        }
    }
}
