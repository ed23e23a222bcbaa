//! The spend analysis: the guide's local-spend figures computed from spend lines, as cells of
//! the impact statement ([`super::impact`]) so that they pass through the same policy, the same
//! disclosure control and the same release rules as every other aggregate.
//!
//! An institution's contribution to a cell is a sum over its lines for the period (the lines
//! behind the version of its return the reader sees: the latest file switched in by the time
//! that version was submitted), at the level at which the reader sees that return's `SPEND`
//! values. Each measure is a metric of its own to the disclosure machinery, named here: the
//! spend in a geography carries the geography in its name, so the same contributors in two
//! geographies get independent noise and a difference of the two answers is no sharper than
//! either.

use std::collections::BTreeMap;

use entity::metrics;
use entity::vocab::{Aggregation, DisclosureClass, MetricGroup};
use sha2::{Digest, Sha256};

/// A figure of the analysis: what each means is the API's `SpendMeasure`
/// ([`crate::graphql::spend::SpendMeasure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    Total,
    InGeography,
    ShareInGeography,
    Sme,
    Vcse,
    Anchor,
    Suppliers,
    PlaceUnknown,
}

impl Measure {
    pub const ALL: [Measure; 8] = [
        Measure::Total,
        Measure::InGeography,
        Measure::ShareInGeography,
        Measure::Sme,
        Measure::Vcse,
        Measure::Anchor,
        Measure::Suppliers,
        Measure::PlaceUnknown,
    ];

    /// The metric code the disclosure machinery knows this measure by in `lines`' geography.
    pub fn code(self, lines: &Lines) -> String {
        match self {
            Measure::Total => "spend_lines.total".to_owned(),
            Measure::InGeography => format!("spend_lines.in:{}", lines.geography_key),
            Measure::ShareInGeography => format!("spend_lines.share:{}", lines.geography_key),
            Measure::Sme => "spend_lines.sme".to_owned(),
            Measure::Vcse => "spend_lines.vcse".to_owned(),
            Measure::Anchor => "spend_lines.anchor".to_owned(),
            Measure::Suppliers => "spend_lines.suppliers".to_owned(),
            Measure::PlaceUnknown => "spend_lines.place_unknown".to_owned(),
        }
    }

    /// The sum over an institution's lines that this measure adds up (`None` for the share,
    /// a ratio of two of them).
    pub fn line_sum(self) -> Option<LineSum> {
        Some(match self {
            Measure::Total => LineSum::Total,
            Measure::InGeography => LineSum::InGeography,
            Measure::ShareInGeography => return None,
            Measure::Sme => LineSum::Sme,
            Measure::Vcse => LineSum::Vcse,
            Measure::Anchor => LineSum::Anchor,
            Measure::Suppliers => LineSum::Suppliers,
            Measure::PlaceUnknown => LineSum::PlaceUnknown,
        })
    }

    /// Decimal places of its values: pence, whole suppliers, a share to four places.
    pub fn scale(self) -> u32 {
        match self {
            Measure::Suppliers => 0,
            Measure::ShareInGeography => 4,
            _ => 2,
        }
    }

    /// Whether the measure depends on the chosen geography.
    pub fn geographic(self) -> bool {
        matches!(self, Measure::InGeography | Measure::ShareInGeography)
    }
}

/// The return metric that holds the same figure as the analysis's `code`, if any: the
/// differencing guard treats the two as one.
pub fn restated_metric(code: &str) -> Option<&'static str> {
    match code {
        "spend_lines.total" => Some("procurement_spend_total"),
        "spend_lines.sme" => Some("spend_sme"),
        "spend_lines.vcse" => Some("spend_vcse"),
        _ => None,
    }
}

/// What the statement sums over one institution's lines in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LineSum {
    Total,
    InGeography,
    Sme,
    Vcse,
    Anchor,
    Suppliers,
    PlaceUnknown,
}

/// The line-level part of a spend analysis: the geography, how lines are bucketed, and the
/// sums each institution contributes, by metric code.
#[derive(Debug, Clone)]
pub struct Lines {
    /// District codes, ascending.
    pub geography: Vec<String>,
    /// A short stable name of the geography: the first 16 hex digits of the SHA-256 of its
    /// codes.
    pub geography_key: String,
    pub by_supplier_district: bool,
    pub by_size: bool,
    pub by_category: bool,
    /// Whether the geography is one that aggregate-only figures are published for: the
    /// region, one network's area or one district (not a chosen set of districts).
    pub published_geography: bool,
    /// Metric code to the sum over lines it is.
    pub sums: BTreeMap<String, LineSum>,
    /// When split below institutions, the most cell places (period, network, sector, bucket)
    /// an answer may have: more is refused before the cells are worked out.
    pub max_places: Option<usize>,
}

impl Lines {
    pub fn new(
        mut geography: Vec<String>,
        published_geography: bool,
        dims: [bool; 3],
        measures: &[Measure],
    ) -> Self {
        geography.sort();
        geography.dedup();
        let digest = Sha256::digest(geography.join(",").as_bytes());
        let geography_key = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let [by_supplier_district, by_size, by_category] = dims;
        let mut lines = Lines {
            geography,
            geography_key,
            by_supplier_district,
            by_size,
            by_category,
            published_geography,
            sums: BTreeMap::new(),
            max_places: None,
        };
        let mut sums = BTreeMap::new();
        for m in measures {
            match m.line_sum() {
                Some(sum) => {
                    sums.insert(m.code(&lines), sum);
                }
                None => {
                    for part in [Measure::InGeography, Measure::Total] {
                        sums.insert(part.code(&lines), part.line_sum().unwrap_or(LineSum::Total));
                    }
                }
            }
        }
        lines.sums = sums;
        lines
    }

    /// Whether `code` is a measure of this geography (in it, or its share).
    pub fn geographic(&self, code: &str) -> bool {
        [Measure::InGeography, Measure::ShareInGeography]
            .iter()
            .any(|m| m.code(self) == code)
    }

    /// Whether cells are split below the institution level.
    pub fn bucketed(&self) -> bool {
        self.by_supplier_district || self.by_size || self.by_category
    }
}

/// The metric models the impact machinery reads for `measures`, and each ratio's parts.
pub fn metrics(
    lines: &Lines,
    measures: &[Measure],
) -> (Vec<metrics::Model>, BTreeMap<String, (String, String)>) {
    let mut out = vec![];
    let mut ratios = BTreeMap::new();
    for (position, m) in measures.iter().enumerate() {
        let ratio = *m == Measure::ShareInGeography;
        let (num, den) = (Measure::InGeography.code(lines), Measure::Total.code(lines));
        if ratio {
            ratios.insert(m.code(lines), (num.clone(), den.clone()));
        }
        out.push(metrics::Model {
            code: m.code(lines),
            name: format!("{m:?}"),
            unit: if *m == Measure::Suppliers {
                "suppliers".to_owned()
            } else if ratio {
                "share".to_owned()
            } else {
                "GBP".to_owned()
            },
            scale: i16::try_from(m.scale()).unwrap_or(2),
            metric_group: MetricGroup::Spend,
            definition: String::new(),
            source: "spend lines".to_owned(),
            aggregation: if ratio {
                Aggregation::Ratio
            } else {
                Aggregation::Sum
            },
            numerator: ratio.then_some(num),
            denominator: ratio.then_some(den),
            disclosure: DisclosureClass::Magnitude,
            part_of: None,
            breakdown: None,
            position: i32::try_from(position).unwrap_or(0),
        });
    }
    (out, ratios)
}

/// A cell's line-level bucket, as the statement writes it in `breakdown`: the parts grouped
/// by, in this order, `|`-separated; the category last, as it may hold any character.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// `Some(None)`: grouped by supplier district, the place unknown.
    pub supplier_district: Option<Option<String>>,
    pub size: Option<Size>,
    /// `Some("")`: grouped by category, none given.
    pub category: Option<String>,
}

/// A supplier's size, from the line's flags: sole trader, else SME, else large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    SoleTrader,
    Sme,
    Large,
}

impl Size {
    fn parse(s: &str) -> Option<Size> {
        match s {
            "sole_trader" => Some(Size::SoleTrader),
            "sme" => Some(Size::Sme),
            "large" => Some(Size::Large),
            _ => None,
        }
    }
}

impl Bucket {
    /// The bucket of a cell's `breakdown`; `None` for text the statement does not write.
    pub fn parse(breakdown: &str) -> Option<Bucket> {
        let mut b = Bucket::default();
        let mut rest = breakdown;
        while !rest.is_empty() {
            if let Some(category) = rest.strip_prefix("category:") {
                b.category = Some(category.to_owned());
                break;
            }
            let (part, after) = rest.split_once('|').unwrap_or((rest, ""));
            rest = after;
            if let Some(d) = part.strip_prefix("supplier_district:") {
                b.supplier_district = Some((d != "unknown").then(|| d.to_owned()));
            } else if let Some(s) = part.strip_prefix("size:") {
                b.size = Some(Size::parse(s)?);
            } else {
                return None;
            }
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_read_back_what_the_statement_writes() {
        assert_eq!(Bucket::parse(""), Some(Bucket::default()));
        let b = Bucket::parse("supplier_district:E08000028|size:sme|category:Estates|Works: a:b")
            .expect("parses");
        assert_eq!(b.supplier_district, Some(Some("E08000028".to_owned())));
        assert_eq!(b.size, Some(Size::Sme));
        assert_eq!(b.category.as_deref(), Some("Estates|Works: a:b"));
        let b = Bucket::parse("supplier_district:unknown").expect("parses");
        assert_eq!(b.supplier_district, Some(None));
        assert_eq!(
            Bucket::parse("category:").map(|b| b.category),
            Some(Some(String::new()))
        );
        assert_eq!(Bucket::parse("size:huge"), None);
        assert_eq!(Bucket::parse("district:E08000028"), None);
    }

    #[test]
    fn geographies_name_their_measures_and_the_share_brings_its_parts() {
        let a = Lines::new(
            vec!["E08000029".into(), "E08000028".into()],
            true,
            [false; 3],
            &[Measure::ShareInGeography],
        );
        let b = Lines::new(
            vec!["E08000028".into(), "E08000029".into(), "E08000028".into()],
            true,
            [false; 3],
            &[Measure::InGeography],
        );
        let c = Lines::new(
            vec!["E08000028".into()],
            true,
            [false; 3],
            &[Measure::InGeography],
        );
        assert_eq!(
            a.geography_key, b.geography_key,
            "order and repeats do not matter"
        );
        assert_ne!(
            Measure::InGeography.code(&a),
            Measure::InGeography.code(&c),
            "another geography is another metric"
        );
        assert_eq!(a.sums.len(), 2);
        assert_eq!(a.sums.get("spend_lines.total"), Some(&LineSum::Total));
        let (models, ratios) = metrics(&a, &[Measure::ShareInGeography]);
        assert_eq!(models.len(), 1);
        assert_eq!(
            ratios.get(&Measure::ShareInGeography.code(&a)),
            Some(&(
                Measure::InGeography.code(&a),
                "spend_lines.total".to_owned()
            ))
        );
    }
}
