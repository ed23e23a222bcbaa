//! Disclosure control (DESIGN.md "Aggregates", docs/access.md "Disclosure control") for every
//! cell with a contributor the reader sees only at AGGREGATE. The SQL brings each cell's
//! total, its aggregate-only contributors (how many, their sum, their two largest values, and
//! each one with its steward network and value), and the strictest thresholds among their
//! stewards; this decides, in plain arithmetic, what the cell shows.
//!
//! - **Thresholds.** At least `min_contributors` (3) aggregate-only contributors; `MAGNITUDE`
//!   cells pass the dominance rule on them (their total less the two largest is at least
//!   `dominance_percent`, 10%, of the largest); `PEOPLE_COUNT` cells under `people_count_min`
//!   (10) are withheld and the rest rounded to `people_count_round` (5).
//! - **Each steward's view** ([`holds_against_each_steward`]): what one steward network does
//!   not know of a cell is nothing, or enough to pass the thresholds.
//! - **Noise** ([`noise`]): additive, on the aggregate-only part only, sized to its largest
//!   value (ABS TableBuilder's magnitude method) and capped for large cells; drawn with
//!   HMAC-SHA256 of a server secret over the cell's [`Place`] and the scale's power of two, so
//!   the same cell always gets the same noise (ONS cell-key consistency) and nothing a
//!   contributor does within a power of two redraws it.
//! - **Ratios** are ratios of the two protected sums ([`ratio_cell`]).
//! - **Counts** are rounded ([`round_count`]); **the differencing guard** ([`too_close`])
//!   withholds a cell too close to one already released (the release module keeps them).

use hmac::{Hmac, Mac};

use crate::auth::Caller;
use crate::domain::Role;
use sha2::Sha256;

/// Who a release is remembered for: readers who can combine what they were shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Audience {
    /// Anonymous readers, and operators (who read what the public reads).
    Public,
    Region(String),
    Organisation(i64),
    Network(i64),
}

impl Audience {
    pub fn of(caller: &Caller) -> Audience {
        let Some(p) = caller.principal() else {
            return Audience::Public;
        };
        match p.role {
            Role::RegionAnalyst => p
                .region
                .as_ref()
                .map_or(Audience::Public, |r| Audience::Region(r.to_string())),
            Role::Researcher => p
                .organisation
                .as_ref()
                .map_or(Audience::Public, |o| Audience::Organisation(o.id)),
            Role::NetworkAdmin | Role::NetworkSubmitter => p
                .network
                .as_ref()
                .map_or(Audience::Public, |n| Audience::Network(n.id)),
            Role::Operator => Audience::Public,
        }
    }

    /// As stored in `released_cells.audience`.
    pub fn stored(&self) -> String {
        match self {
            Audience::Public => "public".to_owned(),
            Audience::Region(code) => format!("region:{code}"),
            Audience::Organisation(id) => format!("organisation:{id}"),
            Audience::Network(id) => format!("network:{id}"),
        }
    }
}

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
/// `percent`% of the largest, and the largest is more than nothing. A cell whose
/// contributions are all zero would be shown exactly (the noise is sized to the largest) and
/// tell each contributor's value: a red team read "every one of these spent nothing with
/// VCSEs" off such cells.
pub fn passes_dominance(s: Side, percent: i64) -> bool {
    let rest = i128::from(s.sum) - i128::from(s.largest) - i128::from(s.second);
    s.largest > 0 && rest * 100 >= i128::from(s.largest) * i128::from(percent)
}

/// The server secret noise is drawn with. Its `Debug` does not show it.
#[derive(Clone)]
pub struct NoiseKey(Vec<u8>);

impl std::fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseKey(..)")
    }
}

/// One aggregate-only contribution: the institution, the networks whose admins see it in
/// detail (its steward and the networks it belonged to), and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Contribution {
    pub institution: i64,
    pub known_by: Vec<i64>,
    pub value: i64,
}

/// What the noise key sees of a cell: its metric, breakdown and period and who contributes in
/// aggregate, never with which values or versions, so resubmitting or restating a return does
/// not redraw it, while two cells of different contributors (`panel`, a late reporter) do not
/// share their noise. Where the cell sits is for the kept decisions, not the noise.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub metric: &'a str,
    pub breakdown: &'a str,
    pub period: &'a str,
    /// The networks the cell covers (one, or a region's), its sector and district.
    pub coordinates: &'a str,
    /// The aggregate-only contributors' institution ids, ascending.
    pub members: &'a [i64],
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

    /// The draw for a cell at `place` whose noise has this `scale` bucket.
    fn draw(&self, place: Place<'_>, scale: u32, capped: bool) -> Draw {
        // new_from_slice takes a key of any length; HMAC hashes long ones down.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return Draw {
                negative: false,
                size: 1 << 52,
            };
        };
        // Not where the cell is: the same contributors give the same noise at every place
        // they are shown (a region's sector, a network's), so showing them at several places
        // gives nothing to average.
        for part in [
            b"anchorfed noise v3".as_slice(),
            place.metric.as_bytes(),
            place.breakdown.as_bytes(),
            place.period.as_bytes(),
            &scale.to_be_bytes(),
            &[u8::from(capped)],
        ] {
            mac.update(part);
            mac.update(&[0]);
        }
        for m in place.members {
            mac.update(&m.to_be_bytes());
        }
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        let bits = u64::from_be_bytes(first);
        Draw {
            negative: bits & 1 == 1,
            size: (1 << 52) | (bits >> 12),
        }
    }
}

impl NoiseKey {
    /// A contribution as the sensitivity rules see it: moved by between 10% and 20% of itself,
    /// up or down, by a keyed draw of its institution, metric, breakdown and period (the same
    /// wherever it is counted). The rules decide whether a cell is shown; on exact values a
    /// network that varies its own values could search for the point where a decision
    /// flips and read the others off it exactly. On these it reads each other value only
    /// within its own 10–20%.
    pub fn perturbed(&self, place: Place<'_>, institution: i64, value: i64) -> i64 {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return value;
        };
        for part in [
            b"anchorfed sensitivity v1".as_slice(),
            place.metric.as_bytes(),
            place.breakdown.as_bytes(),
            place.period.as_bytes(),
            &institution.to_be_bytes(),
        ] {
            mac.update(part);
            mac.update(&[0]);
        }
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        let bits = u64::from_be_bytes(first);
        // 10% plus up to another 10%, in units of 2^-53.
        let share = (1i128 << 52) / 5 + i128::from(bits >> 11) / 10;
        let shift = i128::from(value) * share / ONE;
        let shift = i64::try_from(shift).unwrap_or(0);
        if bits & 1 == 1 {
            value.saturating_sub(shift)
        } else {
            value.saturating_add(shift)
        }
    }
}

/// What the sensitivity rules look at for one side of a cell: the total with the
/// aggregate-only part made of perturbed contributions ([`NoiseKey::perturbed`]), and that
/// part's sum and two largest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleView {
    pub total: i64,
    pub side: Side,
    /// The fewest aggregate-only contributors that any one network does not see
    /// ([`fewest_unknown`]): the utility cap on the noise counts these, not every contributor,
    /// so a network cannot switch the cap on by planting institutions of its own.
    pub independent: i64,
}

/// The power of two at or above `v` (its exponent), for the protection scale.
fn bucket_up(v: i128) -> u32 {
    if v <= 1 {
        return 0;
    }
    128 - (v - 1).leading_zeros()
}

/// The power of two at or below `v` (its exponent), for the utility cap.
fn bucket_down(v: i128) -> u32 {
    if v <= 1 {
        return 0;
    }
    127 - v.leading_zeros()
}

/// The noise added to the aggregate-only part of the cell at `place`. Its scale is
/// [`PROTECTION_PERCENT`] of the largest aggregate-only value rounded up to a power of two,
/// and for cells of [`UTILITY_MIN_CONTRIBUTORS`] or more at most [`UTILITY_PERCENT`] of their
/// total rounded down to one; the noise is between half of and all of the scale, up or down.
/// The draw is keyed by the place and the scale's power of two only: values that move within
/// a power of two move the cell by exactly as much and teach nothing about the noise, and a
/// change of power of two draws afresh at a scale twice as far from the last.
pub fn noise(key: &NoiseKey, place: Place<'_>, side: Side, independent: i64) -> i64 {
    let largest = i128::from(side.largest).abs();
    let total = i128::from(side.sum).abs();
    let protection = bucket_up(largest);
    let mut scale = (1i128 << protection) * i128::from(PROTECTION_PERCENT);
    let mut bucket = protection;
    let mut capped = false;
    if independent >= UTILITY_MIN_CONTRIBUTORS {
        let utility = bucket_down(total);
        let cap = (1i128 << utility) * i128::from(UTILITY_PERCENT);
        if cap < scale {
            (scale, bucket, capped) = (cap, utility, true);
        }
    }
    let draw = key.draw(place, bucket, capped);
    // scale is in hundredths; size in 2^-53: round to the nearest unit.
    let denominator = 100 * ONE;
    let n = (scale * i128::from(draw.size) + denominator / 2) / denominator;
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    if draw.negative { -n } else { n }
}

/// Whether a cell's aggregate-only contributors stay protected from each network that sees
/// some of them in detail (its admins see the institutions it stewards and its members, and a
/// network can create institutions and submit values for them): what the network does not
/// see must be nothing, or at least `min_contributors` institutions passing the dominance rule
/// (for magnitudes). Otherwise one network, knowing all but one or two values (its own, or
/// institutions it created for the purpose), would read the rest off the total.
pub fn holds_against_each_steward(
    contributions: &[Contribution],
    class: Class,
    t: Thresholds,
) -> bool {
    each_steward_faces_enough(contributions, t) && each_steward_faces_even(contributions, class, t)
}

/// The part of [`holds_against_each_steward`] that looks only at who contributes: what each
/// network does not see is nothing or at least `min_contributors` institutions.
pub fn each_steward_faces_enough(contributions: &[Contribution], t: Thresholds) -> bool {
    unknown_to_each_network(contributions).all(|unknown| {
        unknown.is_empty() || i64::try_from(unknown.len()).unwrap_or(i64::MAX) >= t.min_contributors
    })
}

/// The part of [`holds_against_each_steward`] that looks at values: what each network does
/// not see passes the dominance rule (for magnitudes).
pub fn each_steward_faces_even(
    contributions: &[Contribution],
    class: Class,
    t: Thresholds,
) -> bool {
    class == Class::PeopleCount
        || unknown_to_each_network(contributions).all(|mut unknown| {
            if unknown.len() < 2 {
                return true;
            }
            unknown.sort_unstable_by(|a, b| b.cmp(a));
            passes_dominance(
                Side {
                    sum: unknown.iter().fold(0i64, |a, v| a.saturating_add(*v)),
                    largest: unknown[0],
                    second: unknown[1],
                },
                t.dominance_percent,
            )
        })
}

/// The fewest of `contributions` that any one network does not see in detail, among networks
/// that do not see them all (all of them when no network sees any): how many contributors the
/// noise stands for against the network that knows the most of them. A network that sees
/// every value learns nothing from the cell.
pub fn fewest_unknown(contributions: &[Contribution]) -> i64 {
    unknown_to_each_network(contributions)
        .map(|unknown| unknown.len())
        .filter(|&n| n > 0)
        .min()
        .map_or(contributions.len(), |n| n)
        .try_into()
        .unwrap_or(i64::MAX)
}

/// For each network that sees some of `contributions` in detail, the values of those it does
/// not see.
fn unknown_to_each_network(contributions: &[Contribution]) -> impl Iterator<Item = Vec<i64>> + '_ {
    let networks: std::collections::BTreeSet<i64> = contributions
        .iter()
        .flat_map(|c| c.known_by.iter().copied())
        .collect();
    networks.into_iter().map(move |x| {
        contributions
            .iter()
            .filter(|c| !c.known_by.contains(&x))
            .map(|c| c.value)
            .collect()
    })
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
    /// Aggregate-only spend in a geography is published for a region, a network's area or
    /// one district.
    Geography,
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
            Reason::Geography => {
                "spend with contributors seen only in aggregate is published for a region, one \
                 network's area or one district, not a chosen set of districts"
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
    /// Enough contributors, but the rules that look at their values withhold it; this is
    /// what it would show. Whether it is shown is decided once per contributor set and kept
    /// ([`crate::analytics::release`]), so values moved later do not flip the decision.
    Uneven(i64),
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

/// A sum cell at `place`: `total` over every contributor, `side` over the aggregate-only ones.
/// `rule` is what the sensitivity rules look at ([`RuleView`]).
#[allow(clippy::too_many_arguments)]
pub fn sum_cell(
    key: &NoiseKey,
    place: Place<'_>,
    class: Class,
    total: i64,
    aggregate_only: i64,
    side: Side,
    rule: RuleView,
    t: Thresholds,
) -> Outcome {
    if let Some(o) = contributor_gate(aggregate_only, t) {
        return o;
    }
    let noised = total.saturating_add(noise(key, place, side, rule.independent));
    match class {
        Class::PeopleCount => {
            let shown = round_to(noised.max(0), t.people_count_round);
            if rule.total < t.people_count_min {
                Outcome::Uneven(shown)
            } else {
                Outcome::Adjusted(shown)
            }
        }
        Class::Magnitude if !passes_dominance(rule.side, t.dominance_percent) => {
            Outcome::Uneven(noised)
        }
        Class::Magnitude => Outcome::Adjusted(noised),
    }
}

/// One side of a ratio cell: its metric, its total over every contributor, and its
/// aggregate-only part.
#[derive(Debug, Clone, Copy)]
pub struct RatioSide<'a> {
    pub metric: &'a str,
    pub total: i64,
    pub side: Side,
    /// What the dominance rule looks at ([`RuleView`]).
    pub rule: Side,
}

/// A ratio cell's protected parts, and whether the rules that look at values pass them
/// (as [`Outcome::Uneven`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatioParts {
    pub numerator: i64,
    pub denominator: i64,
    pub even: bool,
}

/// A ratio cell at `place` (whose metric is the ratio's): withheld with too few contributors;
/// otherwise the two protected sums, each noised as its own metric's sum cell at the same
/// place would be, uneven when either side fails the dominance rule.
pub fn ratio_cell(
    key: &NoiseKey,
    place: Place<'_>,
    aggregate_only: i64,
    independent: i64,
    numerator: RatioSide<'_>,
    denominator: RatioSide<'_>,
    t: Thresholds,
) -> Result<RatioParts, Reason> {
    match contributor_gate(aggregate_only, t) {
        Some(Outcome::Exact) => {
            return Ok(RatioParts {
                numerator: numerator.total,
                denominator: denominator.total,
                even: true,
            });
        }
        Some(_) => return Err(Reason::Protected),
        None => {}
    }
    let even = passes_dominance(numerator.rule, t.dominance_percent)
        && passes_dominance(denominator.rule, t.dominance_percent);
    let protect = |s: RatioSide<'_>| {
        let at = Place {
            metric: s.metric,
            ..place
        };
        s.total.saturating_add(noise(key, at, s.side, independent))
    };
    Ok(RatioParts {
        numerator: protect(numerator),
        denominator: protect(denominator),
        even,
    })
}

/// Whether a cell released beside another would single someone out, as each network sees it: `a` and `b` (ascending ids) differ by institutions
/// of which some network that knows some of them (`knows`: institution to the networks that
/// see it in detail) does not know at least one and fewer than `threshold`, or, for the public,
/// by at least one and fewer than `threshold`. A network that planted two of three new
/// contributors would otherwise learn the third from the two cells, or whether it reported.
/// Institutions missing from `knows` count as unknown to every network.
pub fn too_close_for_any_view(
    a: &[i64],
    b: &[i64],
    knows: &std::collections::BTreeMap<i64, Vec<i64>>,
    threshold: i64,
) -> bool {
    let limit = usize::try_from(threshold).unwrap_or(usize::MAX);
    let mut differ: Vec<i64> = vec![];
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                differ.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                differ.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                differ.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    if differ.is_empty() {
        return false;
    }
    let close = |unknown: usize| unknown > 0 && unknown < limit;
    if close(differ.len()) {
        return true;
    }
    let networks: std::collections::BTreeSet<i64> = differ
        .iter()
        .filter_map(|d| knows.get(d))
        .flatten()
        .copied()
        .collect();
    networks.into_iter().any(|x| {
        close(
            differ
                .iter()
                .filter(|d| !knows.get(d).is_some_and(|k| k.contains(&x)))
                .count(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> NoiseKey {
        NoiseKey::new(vec![7; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn place(metric: &str) -> Place<'_> {
        Place {
            metric,
            breakdown: "",
            period: "2022/23",
            coordinates: "networks:1,2",
            members: &[4, 5, 6],
        }
    }

    /// The rules looking at the values as they are (the perturbation is tested on its own).
    fn rv(total: i64, side: Side) -> RuleView {
        RuleView {
            total,
            side,
            independent: 0,
        }
    }

    fn side(sum: i64, largest: i64, second: i64) -> Side {
        Side {
            sum,
            largest,
            second,
        }
    }

    fn from(steward: i64, value: i64) -> Contribution {
        Contribution {
            institution: value,
            known_by: vec![steward],
            value,
        }
    }

    #[test]
    fn the_thresholds_on_examples() {
        let (k, at) = (key(), place("m"));
        let cell =
            |class, total, n, side, t| sum_cell(&k, at, class, total, n, side, rv(total, side), t);
        let m = Class::Magnitude;
        let suppressed = Outcome::Suppressed(Reason::Protected);
        // Two aggregate-only contributors: withheld whatever their values.
        assert_eq!(cell(m, 300, 2, side(300, 150, 150), DEFAULT), suppressed);
        // Three even contributors pass; one dominant one does not.
        assert!(matches!(
            cell(m, 300, 3, side(300, 100, 100), DEFAULT),
            Outcome::Adjusted(_)
        ));
        assert!(matches!(
            cell(m, 1000, 3, side(1000, 950, 45), DEFAULT),
            Outcome::Uneven(_)
        ));
        // Counts of people: under 10 withheld, the rest rounded to 5.
        let p = Class::PeopleCount;
        assert!(matches!(
            cell(p, 9, 3, side(9, 3, 3), DEFAULT),
            Outcome::Uneven(_)
        ));
        let Outcome::Adjusted(v) = cell(p, 1234, 3, side(1234, 500, 400), DEFAULT) else {
            panic!("a count of 1234 is shown");
        };
        assert_eq!(v % 5, 0);
        assert!((v - 1234).abs() <= 2 * 512 * 20 / 100 + 3);
        // Nothing aggregate-only: exact.
        assert_eq!(cell(m, 7, 0, Side::default(), DEFAULT), Outcome::Exact);
        // A steward's stricter thresholds apply, to the guard too.
        let strict = Thresholds {
            min_contributors: 5,
            ..DEFAULT
        };
        assert_eq!(cell(m, 400, 4, side(400, 100, 100), strict), suppressed);
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
    fn closeness_is_judged_as_each_network_sees_it() {
        let knows: std::collections::BTreeMap<i64, Vec<i64>> = [
            (10, vec![1]),
            (11, vec![1]),
            (12, vec![2]),
            (13, vec![3]),
            (14, vec![4]),
        ]
        .into_iter()
        .collect();
        let released = [1, 2, 3];
        // Two planted by network 1 and one of network 2's: three apart for the public, one
        // for network 1.
        assert!(too_close_for_any_view(
            &released,
            &[1, 2, 3, 10, 11, 12],
            &knows,
            3
        ));
        assert!(!too_close_for_any_view(
            &released,
            &[1, 2, 3, 10, 11, 12],
            &Default::default(),
            3
        ));
        // Three new of three networks: network 2 faces two it does not know.
        assert!(too_close_for_any_view(
            &released,
            &[1, 2, 3, 12, 13, 14],
            &knows,
            3
        ));
        // Four new of four networks: every network faces three or more.
        let four: std::collections::BTreeMap<i64, Vec<i64>> =
            [(11, vec![1]), (12, vec![2]), (13, vec![3]), (14, vec![4])]
                .into_iter()
                .collect();
        assert!(!too_close_for_any_view(
            &released,
            &[1, 2, 3, 11, 12, 13, 14],
            &four,
            3
        ));
        // Three new of one network: it knows them all; everyone else faces three.
        let one: std::collections::BTreeMap<i64, Vec<i64>> =
            [(11, vec![5]), (12, vec![5]), (13, vec![5])]
                .into_iter()
                .collect();
        assert!(!too_close_for_any_view(
            &released,
            &[1, 2, 3, 11, 12, 13],
            &one,
            3
        ));
        // The same set: not close.
        assert!(!too_close_for_any_view(&released, &released, &knows, 3));
    }

    #[test]
    fn the_cap_counts_what_the_best_informed_network_does_not_see() {
        // Nine planted by network 1 beside four of networks 2 and 3: network 1 faces four.
        let padded: Vec<_> = (1..=9)
            .map(|v| from(1, v))
            .chain([from(2, 500), from(2, 400), from(3, 300), from(3, 200)])
            .collect();
        assert_eq!(fewest_unknown(&padded), 4);
        // Twelve of twelve networks: each faces eleven.
        let spread: Vec<_> = (1..=12).map(|n| from(n, n * 100)).collect();
        assert_eq!(fewest_unknown(&spread), 11);
        // A network that sees them all learns nothing: the others count.
        let total: Vec<_> = (1..=12)
            .map(|n| {
                let mut c = from(n, n * 100);
                c.known_by.push(99);
                c
            })
            .collect();
        assert_eq!(fewest_unknown(&total), 11);
        // The cap applies from ten such contributors, whatever the count of all of them.
        let s = side(13_000, 1000, 1000);
        let (k, at) = (key(), place("m"));
        let capped = noise(&k, at, s, 11).abs();
        let uncapped = noise(&k, at, s, 4).abs();
        assert!(capped <= 13_000 * UTILITY_PERCENT / 100, "{capped}");
        assert!(uncapped * 10 >= 1000, "{uncapped}");
    }

    #[test]
    fn each_steward_faces_nothing_or_enough() {
        let m = Class::Magnitude;
        // All from one network: that network knows them all, anyone else sees five.
        let one: Vec<_> = (1..=5).map(|v| from(1, v * 100)).collect();
        assert!(holds_against_each_steward(&one, m, DEFAULT));
        // Network 1 planted four of its own next to one of network 2's: 1 knows all but one.
        let planted = [
            from(1, 10),
            from(1, 11),
            from(1, 12),
            from(1, 13),
            from(2, 500),
        ];
        assert!(!holds_against_each_steward(&planted, m, DEFAULT));
        // Three of network 2's, even: network 1 faces three, network 2 faces four.
        let mixed = [from(1, 10), from(1, 11), from(1, 12), from(1, 13)]
            .into_iter()
            .chain([from(2, 300), from(2, 310), from(2, 320)])
            .collect::<Vec<_>>();
        assert!(holds_against_each_steward(&mixed, m, DEFAULT));
        // ... but not when one of the three dominates what network 1 does not see.
        let dominated = [from(1, 10), from(1, 11), from(1, 12)]
            .into_iter()
            .chain([from(2, 9000), from(2, 300), from(2, 310)])
            .collect::<Vec<_>>();
        assert!(!holds_against_each_steward(&dominated, m, DEFAULT));
        assert!(holds_against_each_steward(
            &dominated,
            Class::PeopleCount,
            DEFAULT
        )); // Network 1's members stewarded elsewhere are known to it too.
        let fellow: Vec<_> = [from(1, 10), from(1, 11), from(2, 300), from(3, 310)]
            .into_iter()
            .map(|mut c| {
                if c.value == 300 {
                    c.known_by.push(1);
                }
                c
            })
            .collect();
        assert!(
            !holds_against_each_steward(&fellow, m, DEFAULT),
            "1 knows all but one"
        );
        // A network total: every member known to the network, whoever stewards it; but each
        // steward faces the two others.
        let total: Vec<_> = [from(1, 10), from(2, 11), from(3, 12)]
            .into_iter()
            .map(|mut c| {
                c.known_by.push(9);
                c
            })
            .collect();
        assert!(
            !holds_against_each_steward(&total, m, DEFAULT),
            "2 faces two"
        );
        let all_known: Vec<_> = (1..=4).map(|v| from(9, v * 10)).collect();
        assert!(holds_against_each_steward(&all_known, m, DEFAULT));
    }

    #[test]
    fn the_rules_see_each_value_moved_by_a_tenth_to_a_fifth() {
        let k = key();
        for (id, v) in [(1, 1_000_000i64), (2, 7), (3, 123_456_789), (4, 0)] {
            let p = k.perturbed(place("m"), id, v);
            assert_eq!(p, k.perturbed(place("m"), id, v), "the same every time");
            let moved = (p - v).abs();
            assert!(moved * 10 >= v - 10 && moved * 5 <= v, "{v} -> {p}");
        }
        // Keyed by the institution, metric and period, not by where it is counted.
        let elsewhere = Place {
            coordinates: "network:3",
            members: &[1],
            ..place("m")
        };
        assert_eq!(
            k.perturbed(elsewhere, 1, 500),
            k.perturbed(place("m"), 1, 500)
        );
        assert_ne!(
            k.perturbed(place("n"), 1, 1_000_000),
            k.perturbed(place("m"), 1, 1_000_000)
        );
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
        let too_close =
            |a: &[i64], b: &[i64], t| too_close_for_any_view(a, b, &Default::default(), t);
        assert!(!too_close(&[1, 2, 3], &[1, 2, 3], 3), "the same set again");
        assert!(too_close(&[1, 2, 3], &[1, 2, 3, 4], 3));
        assert!(too_close(&[1, 2, 3], &[1, 2, 4], 3), "one out, one in");
        assert!(!too_close(&[1, 2, 3], &[1, 4, 5], 3));
        assert!(!too_close(&[1, 2, 3], &[1, 2, 3, 4, 5, 6], 3));
        assert!(too_close(&[], &[9], 3));
        assert!(too_close(&[1, 2, 3], &[1, 2, 3, 4, 5, 6], 4));
    }

    #[test]
    fn the_noise_is_keyed_by_contributors_and_scale_only() {
        let k = key();
        let s = side(5000, 1000, 900);
        let n = noise(&k, place("m"), s, 6);
        assert_eq!(
            n,
            noise(&k, place("m"), s, 6),
            "the same place, the same noise"
        );
        // Values within the same power of two: the same noise, so a change teaches nothing.
        assert_eq!(n, noise(&k, place("m"), side(5100, 1020, 900), 7));
        // The same contributors elsewhere: the same noise, nothing to average.
        let elsewhere = Place {
            coordinates: "network:3",
            ..place("m")
        };
        assert_eq!(n, noise(&k, elsewhere, s, 6));
        // Other contributors, metric, secret or power of two: drawn afresh.
        let others_at_once = Place {
            members: &[4, 5, 7],
            ..place("m")
        };
        let others = [
            noise(&k, others_at_once, s, 6),
            noise(&k, place("n"), s, 6),
            noise(&NoiseKey::new(vec![8; 32]).unwrap(), place("m"), s, 6),
            noise(&k, place("m"), side(9000, 3000, 900), 6),
        ];
        assert!(others.iter().all(|o| *o != n), "{n} {others:?}");
        assert!(NoiseKey::new(vec![1; 31]).is_err());
        assert_eq!(format!("{k:?}"), "NoiseKey(..)");
    }

    #[test]
    fn ratios_are_ratios_of_protected_sums() {
        let (k, at) = (key(), place("share"));
        let num = RatioSide {
            metric: "num",
            total: 500,
            side: side(400, 150, 100),
            rule: side(400, 150, 100),
        };
        let den = RatioSide {
            metric: "den",
            total: 1500,
            side: side(1200, 400, 300),
            rule: side(1200, 400, 300),
        };
        let RatioParts {
            numerator: n,
            denominator: d,
            even: true,
        } = ratio_cell(&k, at, 4, 0, num, den, DEFAULT).unwrap()
        else {
            panic!("even parts");
        };
        assert_eq!(
            Outcome::Adjusted(n),
            sum_cell(
                &k,
                place("num"),
                Class::Magnitude,
                500,
                4,
                num.side,
                rv(500, num.side),
                DEFAULT
            )
        );
        assert_eq!(
            Outcome::Adjusted(d),
            sum_cell(
                &k,
                place("den"),
                Class::Magnitude,
                1500,
                4,
                den.side,
                rv(1500, den.side),
                DEFAULT
            )
        );
        let dominated = RatioSide {
            rule: side(1200, 1100, 50),
            ..den
        };
        assert!(
            !ratio_cell(&k, at, 4, 0, num, dominated, DEFAULT)
                .unwrap()
                .even
        );
        assert_eq!(
            ratio_cell(&k, at, 2, 0, num, den, DEFAULT),
            Err(Reason::Protected)
        );
        assert_eq!(
            ratio_cell(&k, at, 0, 0, num, den, DEFAULT),
            Ok(RatioParts {
                numerator: 500,
                denominator: 1500,
                even: true
            })
        );
    }

    proptest! {
        #[test]
        fn noise_is_sized_to_the_largest_and_capped(
            values in proptest::collection::vec(0i64..1_000_000_000_000, 3..40),
            detail in 0i64..1_000_000_000,
            metric in "[a-z]{1,8}",
        ) {
            let mut sorted = values.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let s = side(values.iter().sum(), sorted[0], sorted[1]);
            let n = i64::try_from(values.len()).unwrap();
            let k = key();
            let at = place(&metric);
            let noise = i128::from(noise(&k, at, s, n)).abs();
            // Between a tenth and four tenths of the largest; from 10 contributors, at most
            // 2% of their total.
            let largest = i128::from(s.largest);
            if n >= UTILITY_MIN_CONTRIBUTORS {
                prop_assert!(noise <= i128::from(s.sum) * i128::from(UTILITY_PERCENT) / 100 + 1);
                prop_assert!(noise <= largest * 2 * i128::from(PROTECTION_PERCENT) / 100 + 1);
            } else {
                prop_assert!(noise * 10 + 10 >= largest, "{} for {}", noise, largest);
                prop_assert!(noise <= largest * 2 * i128::from(PROTECTION_PERCENT) / 100 + 1);
            }
            // Whatever the values seen in detail: the same noise.
            let with_detail = sum_cell(&k, at, Class::Magnitude, s.sum + detail, n, s, rv(s.sum + detail, s), DEFAULT);
            let without = sum_cell(&k, at, Class::Magnitude, s.sum, n, s, rv(s.sum, s), DEFAULT);
            if let (Outcome::Adjusted(a), Outcome::Adjusted(b)) = (with_detail, without) {
                prop_assert_eq!(a - b, detail);
            }
        }

        #[test]
        fn dominance_matches_its_definition(a in 0i64..1000, b in 0i64..1000, rest in 0i64..1000) {
            let (largest, second) = (a.max(b), a.min(b));
            let s = Side { sum: largest + second + rest, largest, second };
            prop_assert_eq!(passes_dominance(s, 10), largest > 0 && rest * 10 >= largest);
        }

        #[test]
        fn the_guard_agrees_with_set_arithmetic(
            a in proptest::collection::btree_set(0i64..30, 0..12),
            b in proptest::collection::btree_set(0i64..30, 0..12),
            t in 3i64..6,
        ) {
            let differ = a.symmetric_difference(&b).count() as i64;
            let (a, b): (Vec<i64>, Vec<i64>) = (a.into_iter().collect(), b.into_iter().collect());
            prop_assert_eq!(
                too_close_for_any_view(&a, &b, &Default::default(), t),
                differ > 0 && differ < t
            );
        }

        #[test]
        fn planting_never_leaves_one_or_two_unknown(
            own in proptest::collection::vec(1i64..1_000_000, 1..12),
            theirs in proptest::collection::vec(1i64..1_000_000, 1..3),
        ) {
            let cell: Vec<Contribution> = own.iter().map(|v| from(1, *v))
                .chain(theirs.iter().map(|v| from(2, *v)))
                .collect();
            prop_assert!(!holds_against_each_steward(&cell, Class::Magnitude, DEFAULT));
            prop_assert!(!holds_against_each_steward(&cell, Class::PeopleCount, DEFAULT));
        }
    }
}
