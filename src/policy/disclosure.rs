//! Disclosure control (DESIGN.md "Aggregates"), for every cell with a contributor the reader
//! sees only at AGGREGATE. The SQL brings each cell's aggregate-only contributors, their sum
//! and their two largest values, the strictest thresholds among their stewards, and the sum
//! of all contributors' secret record keys; this decides, in plain arithmetic.
//!
//! - At least `min_contributors` (3) aggregate-only contributors, whatever the class: a reader
//!   who knows the other contributors' values must not be able to difference one out, and
//!   no grouping or filter may come down to one institution.
//! - `MAGNITUDE`: the dominance rule on the aggregate-only part: its total less its two largest
//!   values is at least `dominance_percent` (10%) of the largest.
//! - `PEOPLE_COUNT`: under `people_count_min` (10) suppressed, the rest rounded to
//!   `people_count_round` (5).
//! - Every cell shown under these rules carries a cell-key perturbation: the cell key (the sum
//!   of its contributors' record keys, mod 256) picks a small adjustment, so the same
//!   contributors always get the same one and differencing overlapping cells yields noise.

/// A steward's thresholds; stewards can raise the defaults, never lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub min_contributors: i64,
    pub dominance_percent: i64,
    pub people_count_min: i64,
    pub people_count_round: i64,
}

pub const DEFAULT: Thresholds = Thresholds {
    min_contributors: 3,
    dominance_percent: 10,
    people_count_min: 10,
    people_count_round: 5,
};

impl Thresholds {
    /// Each threshold at least the default: stored values can only make rules stricter.
    pub fn at_least_default(self) -> Self {
        Self {
            min_contributors: self.min_contributors.max(DEFAULT.min_contributors),
            dominance_percent: self.dominance_percent.max(DEFAULT.dominance_percent),
            people_count_min: self.people_count_min.max(DEFAULT.people_count_min),
            people_count_round: self.people_count_round.max(DEFAULT.people_count_round),
        }
    }
}

/// What a cell shows of one side (a sum, or a ratio's numerator or denominator) through
/// its aggregate-only contributors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    pub sum: i64,
    pub largest: i64,
    pub second: i64,
}

/// Whether the dominance rule holds: the sum less the two largest is at least
/// `percent`% of the largest.
pub fn passes_dominance(s: Side, percent: i64) -> bool {
    let rest = i128::from(s.sum) - i128::from(s.largest) - i128::from(s.second);
    rest * 100 >= i128::from(s.largest) * i128::from(percent)
}

/// The cell key: the sum of the contributors' record keys, mod 256.
pub fn cell_key(record_key_sum: i64) -> i64 {
    record_key_sum.rem_euclid(256)
}

/// A magnitude moved by at most ±0.5%, by the cell key (0 moves it down most, 255 up most).
pub fn perturb_magnitude(value: i64, key: i64) -> i64 {
    let shift = i128::from(value) * i128::from(key - 128) / 25_600;
    i64::try_from(i128::from(value) + shift).unwrap_or(value)
}

/// A count moved by -2 to +2, by the cell key; never below zero.
pub fn perturb_count(value: i64, key: i64) -> i64 {
    const TABLE: [i64; 8] = [0, 1, -1, 2, -2, 0, 1, -1];
    (value + TABLE[usize::try_from(key.rem_euclid(8)).unwrap_or(0)]).max(0)
}

/// Rounded to the nearest multiple of `step` (halves up).
pub fn round_to(value: i64, step: i64) -> i64 {
    if step <= 1 {
        return value;
    }
    (value + step / 2).div_euclid(step) * step
}

/// The outcome of disclosure control on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing aggregate-only: shown as computed.
    Exact,
    /// Shown with this value (perturbed, and rounded for counts).
    Adjusted(i64),
    /// Withheld, and why.
    Suppressed(String),
}

/// Exact with no aggregate-only contributor; suppressed with too few of them; else `None`
/// (the class's own rules decide).
fn contributor_gate(aggregate_only: i64, t: Thresholds) -> Option<Outcome> {
    if aggregate_only == 0 {
        return Some(Outcome::Exact);
    }
    (aggregate_only < t.min_contributors).then(|| {
        Outcome::Suppressed(format!(
            "fewer than {} contributors seen only in aggregate ({aggregate_only})",
            t.min_contributors
        ))
    })
}

/// A sum cell of class `class` (`MAGNITUDE` or `PEOPLE_COUNT`).
pub fn sum_cell(
    class: &str,
    total: i64,
    aggregate_only: i64,
    side: Side,
    t: Thresholds,
    key: i64,
) -> Outcome {
    if let Some(o) = contributor_gate(aggregate_only, t) {
        return o;
    }
    if class == "PEOPLE_COUNT" {
        if total < t.people_count_min {
            return Outcome::Suppressed(format!("a count of people under {}", t.people_count_min));
        }
        return Outcome::Adjusted(round_to(perturb_count(total, key), t.people_count_round));
    }
    if !passes_dominance(side, t.dominance_percent) {
        return Outcome::Suppressed(format!(
            "dominated: the two largest contributors make up more than the rule allows \
             (the rest under {}% of the largest)",
            t.dominance_percent
        ));
    }
    Outcome::Adjusted(perturb_magnitude(total, key))
}

/// A ratio cell: suppressed when either side would be; its numerator perturbed otherwise.
pub fn ratio_cell(
    num: i64,
    aggregate_only: i64,
    num_side: Side,
    den_side: Side,
    t: Thresholds,
    key: i64,
) -> Outcome {
    if let Some(o) = contributor_gate(aggregate_only, t) {
        return o;
    }
    if !passes_dominance(num_side, t.dominance_percent)
        || !passes_dominance(den_side, t.dominance_percent)
    {
        return Outcome::Suppressed(format!(
            "dominated: a side's two largest contributors leave the rest under {}% of the largest",
            t.dominance_percent
        ));
    }
    Outcome::Adjusted(perturb_magnitude(num, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_rules_on_examples() {
        let side = |sum, largest, second| Side {
            sum,
            largest,
            second,
        };
        // Two aggregate-only contributors: suppressed whatever their values.
        assert!(matches!(
            sum_cell("MAGNITUDE", 300, 2, side(300, 150, 150), DEFAULT, 0),
            Outcome::Suppressed(_)
        ));
        // Three even contributors pass; one dominant one does not.
        assert!(matches!(
            sum_cell("MAGNITUDE", 300, 3, side(300, 100, 100), DEFAULT, 128),
            Outcome::Adjusted(300)
        ));
        assert!(matches!(
            sum_cell("MAGNITUDE", 1000, 3, side(1000, 950, 45), DEFAULT, 128),
            Outcome::Suppressed(_)
        ));
        // Counts: under 10 suppressed, the rest rounded to 5.
        assert!(matches!(
            sum_cell("PEOPLE_COUNT", 9, 3, side(9, 3, 3), DEFAULT, 0),
            Outcome::Suppressed(_)
        ));
        assert_eq!(
            sum_cell("PEOPLE_COUNT", 1234, 3, side(1234, 500, 400), DEFAULT, 0),
            Outcome::Adjusted(1235)
        );
        // Nothing aggregate-only: exact.
        assert_eq!(
            sum_cell("MAGNITUDE", 7, 0, Side::default(), DEFAULT, 0),
            Outcome::Exact
        );
        // A steward's stricter thresholds apply.
        let strict = Thresholds {
            min_contributors: 5,
            ..DEFAULT
        };
        assert!(matches!(
            sum_cell("MAGNITUDE", 400, 4, side(400, 100, 100), strict, 0),
            Outcome::Suppressed(_)
        ));
        // Lowered thresholds are raised back to the defaults.
        let lax = Thresholds {
            min_contributors: 1,
            dominance_percent: 0,
            people_count_min: 0,
            people_count_round: 1,
        };
        assert_eq!(lax.at_least_default(), DEFAULT);
    }

    proptest! {
        #[test]
        fn perturbation_is_small_and_deterministic(v in 0i64..1_000_000_000_000, key in 0i64..256) {
            let p = perturb_magnitude(v, key);
            prop_assert_eq!(p, perturb_magnitude(v, key));
            prop_assert!((p - v).abs() <= v / 200 + 1);
            let c = perturb_count(v % 100_000, key);
            prop_assert!((c - v % 100_000).abs() <= 2);
            prop_assert_eq!(round_to(c, 5) % 5, 0);
        }

        #[test]
        fn dominance_matches_its_definition(a in 0i64..1000, b in 0i64..1000, rest in 0i64..1000) {
            let (largest, second) = (a.max(b), a.min(b));
            let s = Side { sum: largest + second + rest, largest, second };
            prop_assert_eq!(passes_dominance(s, 10), rest * 10 >= largest);
        }
    }
}
