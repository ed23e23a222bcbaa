//! Token scopes (API.md's grammar): space-separated entries that only ever narrow a role's
//! reach. Within a dimension the listed values are allowed and no others; a dimension not
//! mentioned is not narrowed; when any verb is listed, only the listed verbs are allowed.
//!
//! ```text
//! scope   = entry *(" " entry)
//! entry   = "metrics:" group | "years:" FY ["-" FY] | "network:" key | verb
//! group   = "spend" | "employment" | "land_and_assets" | "emissions"
//! verb    = "read:returns" | "read:impact" | "write:returns"
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::{FinancialYear, Invalid, Key, MetricGroup};

impl MetricGroup {
    /// The name in a scope, such as `land_and_assets`.
    pub fn scope_name(self) -> &'static str {
        match self {
            MetricGroup::Spend => "spend",
            MetricGroup::Employment => "employment",
            MetricGroup::LandAndAssets => "land_and_assets",
            MetricGroup::Emissions => "emissions",
        }
    }
}

impl FromStr for MetricGroup {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        MetricGroup::ALL
            .into_iter()
            .find(|g| g.as_str() == s || g.scope_name() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{s}` is not a metric group: use one of {}",
                    MetricGroup::ALL.map(MetricGroup::scope_name).join(", ")
                ))
            })
    }
}

/// What a token may do, when its scopes list verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    ReadReturns,
    ReadImpact,
    WriteReturns,
}

impl Verb {
    pub const ALL: [Verb; 3] = [Verb::ReadReturns, Verb::ReadImpact, Verb::WriteReturns];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::ReadReturns => "read:returns",
            Verb::ReadImpact => "read:impact",
            Verb::WriteReturns => "write:returns",
        }
    }
}

/// An inclusive range of financial years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YearRange {
    pub from: FinancialYear,
    pub to: FinancialYear,
}

impl YearRange {
    pub fn contains(&self, fy: FinancialYear) -> bool {
        self.from <= fy && fy <= self.to
    }
}

impl fmt::Display for YearRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// Parsed scopes. `None` in a dimension means "not mentioned, not narrowed".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    pub metrics: Option<BTreeSet<MetricGroup>>,
    pub years: Option<BTreeSet<YearRange>>,
    pub networks: Option<BTreeSet<Key>>,
    pub verbs: Option<BTreeSet<Verb>>,
}

impl Scopes {
    /// No narrowing at all: the role's full reach.
    pub fn full() -> Self {
        Self::default()
    }

    pub fn is_full(&self) -> bool {
        self == &Self::default()
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut s = Scopes::default();
        for entry in raw.split_whitespace() {
            if let Some(v) = Verb::ALL.into_iter().find(|v| v.as_str() == entry) {
                s.verbs.get_or_insert_with(BTreeSet::new).insert(v);
            } else if let Some(g) = entry.strip_prefix("metrics:") {
                let g = g
                    .parse::<MetricGroup>()
                    .map_err(|e| Invalid::new(format!("scope `{entry}`: {e}")))?;
                s.metrics.get_or_insert_with(BTreeSet::new).insert(g);
            } else if let Some(y) = entry.strip_prefix("years:") {
                let bad = |e: Invalid| Invalid::new(format!("scope `{entry}`: {e}"));
                let (from, to) = match y.split_once('-') {
                    Some((a, b)) => (a.parse().map_err(bad)?, b.parse().map_err(bad)?),
                    None => {
                        let fy: FinancialYear = y.parse().map_err(bad)?;
                        (fy, fy)
                    }
                };
                if from > to {
                    return Err(Invalid::new(format!(
                        "scope `{entry}`: the range runs backwards ({from} is after {to})"
                    )));
                }
                s.years
                    .get_or_insert_with(BTreeSet::new)
                    .insert(YearRange { from, to });
            } else if let Some(k) = entry.strip_prefix("network:") {
                let k = Key::parse(k).map_err(|e| Invalid::new(format!("scope `{entry}`: {e}")))?;
                s.networks.get_or_insert_with(BTreeSet::new).insert(k);
            } else {
                return Err(Invalid::new(format!(
                    "unknown scope `{entry}`: use metrics:GROUP, years:2021/22-2023/24, \
                     network:KEY, read:returns, read:impact or write:returns"
                )));
            }
        }
        Ok(s)
    }

    pub fn allows_metric_group(&self, g: MetricGroup) -> bool {
        self.metrics.as_ref().is_none_or(|m| m.contains(&g))
    }

    pub fn allows_year(&self, fy: FinancialYear) -> bool {
        self.years
            .as_ref()
            .is_none_or(|ys| ys.iter().any(|r| r.contains(fy)))
    }

    pub fn allows_network(&self, key: &str) -> bool {
        self.networks
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|k| k.as_str() == key))
    }

    pub fn allows_verb(&self, v: Verb) -> bool {
        self.verbs.as_ref().is_none_or(|vs| vs.contains(&v))
    }

    /// Whether everything `self` allows, `other` allows too: a token with `self` is no wider.
    pub fn is_within(&self, other: &Scopes) -> bool {
        fn set_within<T: Ord>(a: &Option<BTreeSet<T>>, b: &Option<BTreeSet<T>>) -> bool {
            match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a.is_subset(b),
            }
        }
        let years = match (&self.years, &other.years) {
            (_, None) => true,
            (None, Some(_)) => false,
            // Each of our ranges must lie inside the union of theirs, year by year.
            (Some(ours), Some(_)) => ours.iter().all(|r| {
                (r.from.start_year()..=r.to.start_year())
                    .all(|y| FinancialYear::new(y).is_ok_and(|fy| other.allows_year(fy)))
            }),
        };
        set_within(&self.metrics, &other.metrics)
            && years
            && set_within(&self.networks, &other.networks)
            && set_within(&self.verbs, &other.verbs)
    }
}

impl fmt::Display for Scopes {
    /// The canonical form: verbs, then metrics, years and networks, each sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = vec![];
        if let Some(v) = &self.verbs {
            parts.extend(v.iter().map(|v| v.as_str().to_owned()));
        }
        if let Some(m) = &self.metrics {
            parts.extend(m.iter().map(|g| format!("metrics:{}", g.scope_name())));
        }
        if let Some(y) = &self.years {
            parts.extend(y.iter().map(|r| format!("years:{r}")));
        }
        if let Some(n) = &self.networks {
            parts.extend(n.iter().map(|k| format!("network:{k}")));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fy(s: &str) -> FinancialYear {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_grammar() {
        let s =
            Scopes::parse("metrics:spend years:2021/22-2023/24 network:black-country read:impact")
                .unwrap();
        assert!(s.allows_metric_group(MetricGroup::Spend));
        assert!(!s.allows_metric_group(MetricGroup::Emissions));
        assert!(s.allows_year(fy("2022/23")));
        assert!(!s.allows_year(fy("2024/25")));
        assert!(s.allows_network("black-country"));
        assert!(!s.allows_network("sandwell"));
        assert!(s.allows_verb(Verb::ReadImpact));
        assert!(!s.allows_verb(Verb::ReadReturns));
        let full = Scopes::parse("").unwrap();
        assert!(full.is_full() && full.allows_verb(Verb::WriteReturns));
    }

    #[test]
    fn refuses_what_is_outside_the_grammar() {
        for bad in [
            "admin",
            "metrics:money",
            "years:2023",
            "years:2023/24-2021/22",
            "network:Black Country",
            "read:everything",
            "write:impact",
            "metrics:",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    fn arb_scopes() -> impl Strategy<Value = Scopes> {
        let groups = proptest::option::of(proptest::collection::btree_set(
            proptest::sample::select(MetricGroup::ALL.to_vec()),
            0..4,
        ));
        let years = proptest::option::of(proptest::collection::btree_set(
            (2015u16..2030, 0u16..4).prop_map(|(a, d)| YearRange {
                from: FinancialYear::new(a).unwrap(),
                to: FinancialYear::new(a + d).unwrap(),
            }),
            0..3,
        ));
        let nets = proptest::option::of(proptest::collection::btree_set(
            proptest::sample::select(vec!["a", "b", "black-country", "sandwell"])
                .prop_map(|k| Key::parse(k).unwrap()),
            0..3,
        ));
        let verbs = proptest::option::of(proptest::collection::btree_set(
            proptest::sample::select(Verb::ALL.to_vec()),
            0..3,
        ));
        (groups, years, nets, verbs).prop_map(|(metrics, years, networks, verbs)| Scopes {
            metrics: nonempty(metrics),
            years: nonempty(years),
            networks: nonempty(networks),
            verbs: nonempty(verbs),
        })
    }

    /// An empty mention cannot be written down: it reads back as "not mentioned".
    fn nonempty<T>(o: Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
        o.filter(|s| !s.is_empty())
    }

    proptest! {
        #[test]
        fn canonical_form_round_trips(s in arb_scopes()) {
            prop_assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn within_never_widens(a in arb_scopes(), b in arb_scopes(), y in 2014u16..2035,
                               g in proptest::sample::select(MetricGroup::ALL.to_vec()),
                               v in proptest::sample::select(Verb::ALL.to_vec()),
                               n in proptest::sample::select(vec!["a", "b", "c", "sandwell"])) {
            prop_assert!(a.is_within(&a));
            prop_assert!(a.is_within(&Scopes::full()));
            if a.is_within(&b) {
                let fy = FinancialYear::new(y).unwrap();
                prop_assert!(!a.allows_year(fy) || b.allows_year(fy));
                prop_assert!(!a.allows_metric_group(g) || b.allows_metric_group(g));
                prop_assert!(!a.allows_verb(v) || b.allows_verb(v));
                prop_assert!(!a.allows_network(n) || b.allows_network(n));
            }
        }

        #[test]
        fn never_panics_on_garbage(s in "\\PC{0,60}") {
            let _ = Scopes::parse(&s);
        }
    }
}
