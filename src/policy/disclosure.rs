//! Disclosure control (DESIGN.md "Aggregates", docs/access.md "Disclosure control") for every
//! cell with a contributor the reader sees only at AGGREGATE. The SQL brings each cell's
//! total, its aggregate-only contributors (how many, their sum, their two largest values, and
//! who they are with the version of their return), and the strictest thresholds among their
//! stewards; this decides, in plain arithmetic, what the cell shows.
//!
//! - **Thresholds.** At least `min_contributors` (3) aggregate-only contributors; `MAGNITUDE`
//!   cells pass the dominance rule on them (their total less the two largest is at least
//!   `dominance_percent`, 10%, of the largest); `PEOPLE_COUNT` cells under `people_count_min`
//!   (10) are withheld and the rest rounded to `people_count_round` (5).
//! - **Noise** ([`noise`]). The aggregate-only part of a shown cell gets additive noise sized
//!   to its largest aggregate-only contribution (ABS TableBuilder's magnitude method): between
//!   half of and all of [`PROTECTION_PERCENT`] of it, capped for cells of
//!   [`UTILITY_MIN_CONTRIBUTORS`] or more at [`UTILITY_PERCENT`] of their aggregate-only total.
//!   The size comes from HMAC-SHA256 of a server secret over the metric, the breakdown, the
//!   period and the aggregate-only contributors with their return versions
//!   ([`NoiseKey::draw`]): the same contributions always get the same noise (ONS cell-key
//!   consistency, so repeating a query teaches nothing), different ones an independent size.
//!   The direction is a secret bit of the metric, breakdown and period, flipped by the parity
//!   of the number of contributors: two cells one contributor apart move opposite ways, so
//!   their difference misses that contributor by at least a tenth of its value.
//!   Values the reader sees at DETAIL enter exactly and are not in the key, so varying or
//!   knowing them teaches nothing about the noise.
//! - **Ratios** are ratios of the two protected sums ([`ratio_cell`]), each part noised as the
//!   sum cell of its own metric over the same contributors would be.
//! - **Counts** of a cell with aggregate-only contributors are rounded ([`round_count`]).
//! - **The differencing guard** ([`too_close`]): a cell whose aggregate-only contributors
//!   differ from an already released cell's by fewer than the threshold is withheld; the
//!   release module keeps what was released, per audience.

use hmac::{Hmac, Mac};
use sha2::Sha256;

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

    /// How many aggregate-only contributors two released cells must differ by at least:
    /// the stewards' minimum number of contributors, so raising one raises the other.
    pub fn differencing(self) -> i64 {
        self.min_contributors.max(DEFAULT.min_contributors)
    }
}

/// The noise's size, in percent of the largest aggregate-only contribution: each draw moves
/// the aggregate-only part by between half of this and all of it.
pub const PROTECTION_PERCENT: i64 = 20;
/// For cells with this many aggregate-only contributors or more, the noise is also at most
/// [`UTILITY_PERCENT`] of their total, so large totals stay useful.
pub const UTILITY_MIN_CONTRIBUTORS: i64 = 10;
pub const UTILITY_PERCENT: i64 = 2;
/// Counts of institutions in a cell with aggregate-only contributors are rounded to this.
pub const COUNT_ROUNDING: i64 = 5;

/// How a metric's cells are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An organisation's amount: spend, headcount, land, emissions.
    Magnitude,
    /// A count of people in a small group: withheld when small, rounded otherwise.
    PeopleCount,
}

/// What a cell has of one side (a sum, or a ratio's numerator or denominator) through its
/// aggregate-only contributors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// The server secret noise is drawn with. Its `Debug` does not show it.
#[derive(Clone)]
pub struct NoiseKey(Vec<u8>);

impl std::fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseKey(..)")
    }
}

/// One aggregate-only contribution, as the noise key sees it: the institution and the
/// version (return id) of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Contribution {
    pub institution: i64,
    pub version: i64,
}

/// A draw from the keyed hash: a direction and a size between one half and one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    negative: bool,
    /// The size in units of 2^-53: from 2^52 (one half) to 2^53 - 1.
    size: u64,
}

const ONE: i128 = 1 << 53;

impl NoiseKey {
    /// At least 32 bytes: the noise is only as unpredictable as its key.
    pub fn new(secret: Vec<u8>) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!(
                "the disclosure secret has {} bytes; it needs 32",
                secret.len()
            ));
        }
        Ok(Self(secret))
    }

    /// The draw for these contributions to `metric` (and `breakdown`) in `period`; the order
    /// of `contributions` does not matter.
    pub fn draw(
        &self,
        metric: &str,
        breakdown: &str,
        period: &str,
        contributions: &[Contribution],
    ) -> Draw {
        let mut sorted = contributions.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let bits = |with_contributions: bool| -> u64 {
            // new_from_slice takes a key of any length; HMAC hashes long ones down.
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
                return 0;
            };
            for part in [
                b"anchorfed noise v1".as_slice(),
                metric.as_bytes(),
                breakdown.as_bytes(),
                period.as_bytes(),
            ] {
                mac.update(part);
                mac.update(&[0]);
            }
            if with_contributions {
                for c in &sorted {
                    mac.update(&c.institution.to_be_bytes());
                    mac.update(&c.version.to_be_bytes());
                }
            }
            let tag = mac.finalize().into_bytes();
            let mut first = [0u8; 8];
            first.copy_from_slice(&tag[..8]);
            u64::from_be_bytes(first)
        };
        // The direction: a secret bit of the metric, breakdown and period, flipped with the
        // parity of the contributors. Two cells one contributor apart so always move opposite
        // ways, and their difference misses that contributor by at least half the protection
        // level of the larger cell's largest value, however the sizes were drawn.
        let odd = sorted.len() % 2 == 1;
        Draw {
            negative: (bits(false) & 1 == 1) != odd,
            size: (1 << 52) | (bits(true) >> 12),
        }
    }
}

/// The noise added to a cell's aggregate-only part: `draw` of its scale, the scale being
/// [`PROTECTION_PERCENT`] of the largest aggregate-only contribution, capped at
/// [`UTILITY_PERCENT`] of their total for cells of [`UTILITY_MIN_CONTRIBUTORS`] or more.
pub fn noise(side: Side, aggregate_only: i64, draw: Draw) -> i64 {
    let largest = i128::from(side.largest).abs();
    let mut scale = largest * i128::from(PROTECTION_PERCENT);
    if aggregate_only >= UTILITY_MIN_CONTRIBUTORS {
        scale = scale.min(i128::from(side.sum).abs() * i128::from(UTILITY_PERCENT));
    }
    // scale is in hundredths; size in 2^-53: round to the nearest unit.
    let denominator = 100 * ONE;
    let n = (scale * i128::from(draw.size) + denominator / 2) / denominator;
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    if draw.negative { -n } else { n }
}

/// A count of institutions shown for a cell with aggregate-only contributors: nothing stays
/// nothing, anything else goes to the nearest multiple of [`COUNT_ROUNDING`], at least one.
pub fn round_count(n: i64) -> i64 {
    if n <= 0 {
        return 0;
    }
    round_to(n, COUNT_ROUNDING).max(COUNT_ROUNDING)
}

/// Rounded to the nearest multiple of `step` (halves up).
pub fn round_to(value: i64, step: i64) -> i64 {
    if step <= 1 {
        return value;
    }
    (value + step / 2).div_euclid(step) * step
}

/// Why a cell shows no value. The words say which protection applied, never by how much the
/// value missed a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Too few aggregate-only contributors, one or two too large, or a count of people too
    /// small: deliberately one reason, so the reason does not narrow the value.
    Protected,
    /// Aggregate-only figures are published for one network or a whole region.
    Scope,
    /// Aggregate-only figures are published as they stand now.
    AsOf,
    /// It would single out contributors when set against a cell already released.
    Differencing,
}

impl Reason {
    pub fn message(self) -> &'static str {
        match self {
            Reason::Protected => {
                "withheld by disclosure control: its contributors seen only in aggregate are \
                 too few or too uneven to publish"
            }
            Reason::Scope => {
                "figures with contributors seen only in aggregate are published for one network \
                 or a whole region, not for a chosen set of networks"
            }
            Reason::AsOf => {
                "figures with contributors seen only in aggregate are published as they stand \
                 now; asOf applies to values you see in detail"
            }
            Reason::Differencing => {
                "withheld by disclosure control: set against a figure already released, it \
                 would single out contributors seen only in aggregate"
            }
        }
    }
}

/// The outcome of disclosure control on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing aggregate-only: shown as computed.
    Exact,
    /// Shown with this value (noised, and rounded for counts of people).
    Adjusted(i64),
    /// Withheld, and why.
    Suppressed(Reason),
}

/// Exact with no aggregate-only contributor; withheld with too few of them; else `None`
/// (the class's own rules decide).
fn contributor_gate(aggregate_only: i64, t: Thresholds) -> Option<Outcome> {
    if aggregate_only == 0 {
        return Some(Outcome::Exact);
    }
    (aggregate_only < t.min_contributors).then_some(Outcome::Suppressed(Reason::Protected))
}

/// A sum cell: `total` over every contributor, `side` over the aggregate-only ones.
pub fn sum_cell(
    class: Class,
    total: i64,
    aggregate_only: i64,
    side: Side,
    t: Thresholds,
    draw: Draw,
) -> Outcome {
    if let Some(o) = contributor_gate(aggregate_only, t) {
        return o;
    }
    let noised = total.saturating_add(noise(side, aggregate_only, draw));
    match class {
        Class::PeopleCount if total < t.people_count_min => Outcome::Suppressed(Reason::Protected),
        Class::PeopleCount => Outcome::Adjusted(round_to(noised.max(0), t.people_count_round)),
        Class::Magnitude if !passes_dominance(side, t.dominance_percent) => {
            Outcome::Suppressed(Reason::Protected)
        }
        Class::Magnitude => Outcome::Adjusted(noised),
    }
}

/// One side of a ratio cell: its total over every contributor, and its aggregate-only part
/// with the draw its own metric's sum cell over the same contributors would get.
#[derive(Debug, Clone, Copy)]
pub struct RatioSide {
    pub total: i64,
    pub side: Side,
    pub draw: Draw,
}

/// A ratio cell: withheld when either side would be; otherwise the two protected sums.
pub fn ratio_cell(
    aggregate_only: i64,
    numerator: RatioSide,
    denominator: RatioSide,
    t: Thresholds,
) -> Result<(i64, i64), Reason> {
    match contributor_gate(aggregate_only, t) {
        Some(Outcome::Exact) => return Ok((numerator.total, denominator.total)),
        Some(_) => return Err(Reason::Protected),
        None => {}
    }
    if !passes_dominance(numerator.side, t.dominance_percent)
        || !passes_dominance(denominator.side, t.dominance_percent)
    {
        return Err(Reason::Protected);
    }
    let protect = |s: RatioSide| {
        s.total
            .saturating_add(noise(s.side, aggregate_only, s.draw))
    };
    Ok((protect(numerator), protect(denominator)))
}

/// Whether two released cells' aggregate-only contributors (ascending ids) differ by at
/// least one and fewer than `threshold`: then the second would single someone out.
pub fn too_close(a: &[i64], b: &[i64], threshold: i64) -> bool {
    let limit = usize::try_from(threshold).unwrap_or(usize::MAX);
    if a.len().abs_diff(b.len()) >= limit {
        return false;
    }
    let (mut i, mut j, mut differ) = (0, 0, 0usize);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(x), Some(y)) if x < y => i += 1,
            (Some(_), None) => i += 1,
            _ => j += 1,
        }
        differ += 1;
        if differ >= limit {
            return false;
        }
    }
    differ > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> NoiseKey {
        NoiseKey::new(vec![7; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn contributions(ids: &[i64]) -> Vec<Contribution> {
        ids.iter()
            .map(|&i| Contribution {
                institution: i,
                version: 100 + i,
            })
            .collect()
    }

    fn side(sum: i64, largest: i64, second: i64) -> Side {
        Side {
            sum,
            largest,
            second,
        }
    }

    #[test]
    fn the_thresholds_on_examples() {
        let d = key().draw("m", "", "2022/23", &contributions(&[1, 2, 3]));
        let m = Class::Magnitude;
        let suppressed = Outcome::Suppressed(Reason::Protected);
        // Two aggregate-only contributors: withheld whatever their values.
        assert_eq!(
            sum_cell(m, 300, 2, side(300, 150, 150), DEFAULT, d),
            suppressed
        );
        // Three even contributors pass; one dominant one does not.
        assert!(matches!(
            sum_cell(m, 300, 3, side(300, 100, 100), DEFAULT, d),
            Outcome::Adjusted(_)
        ));
        assert_eq!(
            sum_cell(m, 1000, 3, side(1000, 950, 45), DEFAULT, d),
            suppressed
        );
        // Counts of people: under 10 withheld, the rest rounded to 5.
        let p = Class::PeopleCount;
        assert_eq!(sum_cell(p, 9, 3, side(9, 3, 3), DEFAULT, d), suppressed);
        let Outcome::Adjusted(v) = sum_cell(p, 1234, 3, side(1234, 500, 400), DEFAULT, d) else {
            panic!("a count of 1234 is shown");
        };
        assert_eq!(v % 5, 0);
        assert!((v - 1234).abs() <= 100 + 3);
        // Nothing aggregate-only: exact.
        assert_eq!(
            sum_cell(m, 7, 0, Side::default(), DEFAULT, d),
            Outcome::Exact
        );
        // A steward's stricter thresholds apply, to the guard too.
        let strict = Thresholds {
            min_contributors: 5,
            ..DEFAULT
        };
        assert_eq!(
            sum_cell(m, 400, 4, side(400, 100, 100), strict, d),
            suppressed
        );
        assert_eq!(strict.differencing(), 5);
        // Lowered thresholds are raised back to the defaults.
        let lax = Thresholds {
            min_contributors: 1,
            dominance_percent: 0,
            people_count_min: 0,
            people_count_round: 1,
        };
        assert_eq!(lax.at_least_default(), DEFAULT);
        assert_eq!(lax.differencing(), 3);
    }

    #[test]
    fn counts_are_rounded_and_never_show_one() {
        assert_eq!(
            [0, 1, 2, 3, 7, 8, 12, 13, 47].map(round_count),
            [0, 5, 5, 5, 5, 10, 10, 15, 45]
        );
    }

    #[test]
    fn the_guard_counts_the_symmetric_difference() {
        assert!(!too_close(&[1, 2, 3], &[1, 2, 3], 3), "the same set again");
        assert!(too_close(&[1, 2, 3], &[1, 2, 3, 4], 3));
        assert!(too_close(&[1, 2, 3], &[1, 2, 4], 3), "one out, one in");
        assert!(!too_close(&[1, 2, 3], &[1, 4, 5], 3));
        assert!(!too_close(&[1, 2, 3], &[1, 2, 3, 4, 5, 6], 3));
        assert!(too_close(&[], &[9], 3));
        assert!(too_close(&[1, 2, 3], &[1, 2, 3, 4, 5, 6], 4));
    }

    #[test]
    fn draws_are_consistent_and_keyed() {
        let k = key();
        let a = contributions(&[1, 2, 3, 4]);
        let mut shuffled = a.clone();
        shuffled.reverse();
        assert_eq!(
            k.draw("m", "", "2022/23", &a),
            k.draw("m", "", "2022/23", &shuffled)
        );
        let others = [
            k.draw("n", "", "2022/23", &a),
            k.draw("m", "district:E1", "2022/23", &a),
            k.draw("m", "", "2021/22", &a),
            k.draw("m", "", "2022/23", &contributions(&[1, 2, 3])),
            NoiseKey::new(vec![8; 32])
                .unwrap()
                .draw("m", "", "2022/23", &a),
        ];
        for o in others {
            assert_ne!(o, k.draw("m", "", "2022/23", &a));
        }
        // A restated value (a new version) draws again.
        let mut restated = a.clone();
        restated[0].version += 1;
        assert_ne!(
            k.draw("m", "", "2022/23", &restated),
            k.draw("m", "", "2022/23", &a)
        );
        assert!(NoiseKey::new(vec![1; 31]).is_err());
        assert_eq!(format!("{k:?}"), "NoiseKey(..)");
    }

    #[test]
    fn ratios_are_ratios_of_protected_sums() {
        let k = key();
        let who = contributions(&[1, 2, 3, 4]);
        let num = RatioSide {
            total: 500,
            side: side(400, 150, 100),
            draw: k.draw("num", "", "p", &who),
        };
        let den = RatioSide {
            total: 1500,
            side: side(1200, 400, 300),
            draw: k.draw("den", "", "p", &who),
        };
        let (n, d) = ratio_cell(4, num, den, DEFAULT).unwrap();
        assert_eq!(
            Outcome::Adjusted(n),
            sum_cell(Class::Magnitude, 500, 4, num.side, DEFAULT, num.draw)
        );
        assert_eq!(
            Outcome::Adjusted(d),
            sum_cell(Class::Magnitude, 1500, 4, den.side, DEFAULT, den.draw)
        );
        let dominated = RatioSide {
            side: side(1200, 1100, 50),
            ..den
        };
        assert_eq!(
            ratio_cell(4, num, dominated, DEFAULT),
            Err(Reason::Protected)
        );
        assert_eq!(ratio_cell(0, num, den, DEFAULT), Ok((500, 1500)));
    }

    proptest! {
        #[test]
        fn noise_is_sized_to_the_largest_and_capped(
            values in proptest::collection::vec(0i64..1_000_000_000_000, 3..40),
            detail in 0i64..1_000_000_000,
            seed in 0i64..1000,
        ) {
            let mut sorted = values.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let s = side(values.iter().sum(), sorted[0], sorted[1]);
            let n = i64::try_from(values.len()).unwrap();
            let d = key().draw("m", "", "p", &contributions(&[seed]));
            let noise = noise(s, n, d);
            // Between half and all of the protection level, give or take rounding.
            let top = i128::from(s.largest) * i128::from(PROTECTION_PERCENT) / 100 + 1;
            let mut bound = top;
            if n >= UTILITY_MIN_CONTRIBUTORS {
                bound = bound.min(i128::from(s.sum) * i128::from(UTILITY_PERCENT) / 100 + 1);
            }
            prop_assert!(i128::from(noise).abs() <= bound);
            prop_assert!(i128::from(noise).abs() * 2 + 2 >= bound - 1);
            // The same contributions, whatever the values seen in detail: the same noise.
            let with_detail = sum_cell(Class::Magnitude, s.sum + detail, n, s, DEFAULT, d);
            let without = sum_cell(Class::Magnitude, s.sum, n, s, DEFAULT, d);
            if let (Outcome::Adjusted(a), Outcome::Adjusted(b)) = (with_detail, without) {
                prop_assert_eq!(a - b, detail);
            }
        }

        #[test]
        fn one_contributor_apart_misses_them_by_a_tenth(
            values in proptest::collection::vec(1i64..1_000_000_000_000, 3..9),
            extra in 1i64..1_000_000_000_000,
            detail in 0i64..1_000_000_000,
            metric in "[a-z]{1,8}",
        ) {
            // Cells under the utility cap: the noise alone defeats two-cell differencing.
            let k = key();
            let cell = |vals: &[i64]| {
                let mut sorted = vals.to_vec();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let ids: Vec<i64> = (0..i64::try_from(vals.len()).unwrap()).collect();
                let s = side(vals.iter().sum(), sorted[0], sorted[1]);
                let n = i64::try_from(vals.len()).unwrap();
                (s, k.draw(&metric, "", "p", &contributions(&ids)), n)
            };
            let (sa, da, na) = cell(&values);
            let mut with = values.clone();
            with.push(extra);
            let (sb, db, nb) = cell(&with);
            prop_assert!(da.negative != db.negative, "one apart, opposite ways");
            let a = sa.sum + detail + noise(sa, na, da);
            let b = sb.sum + detail + noise(sb, nb, db);
            let miss = (b - a - extra).abs();
            prop_assert!(miss * 10 + 10 >= extra, "{} off {}", miss, extra);
        }

        #[test]
        fn dominance_matches_its_definition(a in 0i64..1000, b in 0i64..1000, rest in 0i64..1000) {
            let (largest, second) = (a.max(b), a.min(b));
            let s = Side { sum: largest + second + rest, largest, second };
            prop_assert_eq!(passes_dominance(s, 10), rest * 10 >= largest);
        }

        #[test]
        fn the_guard_agrees_with_set_arithmetic(
            a in proptest::collection::btree_set(0i64..30, 0..12),
            b in proptest::collection::btree_set(0i64..30, 0..12),
            t in 3i64..6,
        ) {
            let differ = a.symmetric_difference(&b).count() as i64;
            let (a, b): (Vec<i64>, Vec<i64>) = (a.into_iter().collect(), b.into_iter().collect());
            prop_assert_eq!(too_close(&a, &b, t), differ > 0 && differ < t);
        }
    }
}
