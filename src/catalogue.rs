//! The metric catalogue: what each metric measures, its unit and scale, its group, how it
//! aggregates and how disclosure control protects it. Ingestion checks values against it,
//! `impact` aggregates by it, and the API serves it.
//!
//! Each stored row becomes a [`Metric`] once, here, with typed fields; a stored value that
//! does not make sense is an internal error naming the metric and the column, never a
//! silent default.

use std::collections::BTreeMap;

use entity::metrics;
use entity::vocab::DisclosureClass;
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::domain::MetricGroup;
use crate::error::{ApiError, ApiResult};

/// How a metric aggregates across institutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    /// The sum of `numerator` over the sum of `denominator`, over the same contributors.
    Ratio {
        numerator: String,
        denominator: String,
    },
    /// It does not aggregate.
    None,
}

/// A kind of breakdown a metric's values carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakdownKind {
    /// By home district: `district:E08000025`.
    District,
    /// By IMD decile of the home LSOA: `imd_decile:1`.
    ImdDecile,
}

impl BreakdownKind {
    pub const ALL: [BreakdownKind; 2] = [BreakdownKind::District, BreakdownKind::ImdDecile];

    /// The stored name and the prefix of a breakdown key, such as `imd_decile`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakdownKind::District => "district",
            BreakdownKind::ImdDecile => "imd_decile",
        }
    }
}

/// A catalogue entry, checked once when it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub code: String,
    pub name: String,
    pub unit: String,
    /// Decimal places stored: values are integers in units of 10^-scale.
    pub scale: u32,
    pub group: MetricGroup,
    pub definition: String,
    pub source: String,
    pub aggregation: Aggregation,
    pub disclosure: DisclosureClass,
    /// A metric this one is part of, and so at most.
    pub part_of: Option<String>,
    /// The breakdown kinds its values carry; empty for a single value.
    pub breakdowns: Vec<BreakdownKind>,
    pub position: i32,
    stored: metrics::Model,
}

impl Metric {
    /// The stored row, for the SQL layers that take it as it is.
    pub fn stored(&self) -> &metrics::Model {
        &self.stored
    }

    /// The breakdown kinds as stored, `district,imd_decile`; `None` for a single value.
    pub fn breakdown_list(&self) -> Option<String> {
        (!self.breakdowns.is_empty()).then(|| {
            self.breakdowns
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

impl TryFrom<metrics::Model> for Metric {
    type Error = ApiError;

    fn try_from(m: metrics::Model) -> ApiResult<Self> {
        let bad = |column: &str, reason: String| {
            ApiError::Internal(anyhow::anyhow!(
                "metrics row {}, column {column}: {reason}",
                m.code
            ))
        };
        let scale = u32::try_from(m.scale)
            .ok()
            .filter(|s| *s <= 18)
            .ok_or_else(|| {
                bad(
                    "scale",
                    format!("{} is not 0 to 18 decimal places", m.scale),
                )
            })?;
        let aggregation = match (m.aggregation, &m.numerator, &m.denominator) {
            (entity::vocab::Aggregation::Sum, None, None) => Aggregation::Sum,
            (entity::vocab::Aggregation::None, None, None) => Aggregation::None,
            (entity::vocab::Aggregation::Ratio, Some(n), Some(d)) => Aggregation::Ratio {
                numerator: n.clone(),
                denominator: d.clone(),
            },
            (entity::vocab::Aggregation::Ratio, _, _) => {
                return Err(bad(
                    "numerator, denominator",
                    "a RATIO needs both".to_owned(),
                ));
            }
            (a, _, _) => {
                return Err(bad(
                    "numerator, denominator",
                    format!("only a RATIO has them, and this is {}", a.as_str()),
                ));
            }
        };
        let breakdowns = match &m.breakdown {
            None => vec![],
            Some(list) => list
                .split(',')
                .map(|k| {
                    BreakdownKind::ALL
                        .into_iter()
                        .find(|x| x.as_str() == k)
                        .ok_or_else(|| bad("breakdown", format!("`{k}` is not a breakdown kind")))
                })
                .collect::<ApiResult<Vec<_>>>()?,
        };
        Ok(Metric {
            code: m.code.clone(),
            name: m.name.clone(),
            unit: m.unit.clone(),
            scale,
            group: m.metric_group.into(),
            definition: m.definition.clone(),
            source: m.source.clone(),
            aggregation,
            disclosure: m.disclosure,
            part_of: m.part_of.clone(),
            breakdowns,
            position: m.position,
            stored: m,
        })
    }
}

/// The metric catalogue, by code, each entry checked.
pub async fn metrics<C: ConnectionTrait>(db: &C) -> ApiResult<BTreeMap<String, Metric>> {
    load(db)
        .await?
        .into_values()
        .map(|m| Ok((m.code.clone(), Metric::try_from(m)?)))
        .collect()
}

/// The stored rows, by code, for the SQL layer that takes them as they are
/// (`analytics::impact::Spec`).
pub async fn load<C: ConnectionTrait>(db: &C) -> ApiResult<BTreeMap<String, metrics::Model>> {
    Ok(metrics::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> metrics::Model {
        metrics::Model {
            code: "local_spend_share".into(),
            name: "Local spend share".into(),
            unit: "ratio".into(),
            scale: 4,
            metric_group: entity::vocab::MetricGroup::Spend,
            definition: "d".into(),
            source: "s".into(),
            aggregation: entity::vocab::Aggregation::Ratio,
            numerator: Some("procurement_spend_local".into()),
            denominator: Some("procurement_spend_total".into()),
            disclosure: DisclosureClass::Magnitude,
            part_of: None,
            breakdown: Some("district,imd_decile".into()),
            position: 1,
        }
    }

    fn message(r: ApiResult<Metric>) -> String {
        match r {
            Err(ApiError::Internal(e)) => format!("{e:#}"),
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn builds_typed_fields() {
        let m = Metric::try_from(row()).unwrap();
        assert_eq!(m.scale, 4);
        assert_eq!(m.group, MetricGroup::Spend);
        assert_eq!(
            m.aggregation,
            Aggregation::Ratio {
                numerator: "procurement_spend_local".into(),
                denominator: "procurement_spend_total".into()
            }
        );
        assert_eq!(
            m.breakdowns,
            vec![BreakdownKind::District, BreakdownKind::ImdDecile]
        );
        assert_eq!(m.breakdown_list().as_deref(), Some("district,imd_decile"));
    }

    #[test]
    fn refuses_stored_nonsense_naming_the_row_and_column() {
        let mut r = row();
        r.scale = -1;
        let e = message(Metric::try_from(r));
        assert!(
            e.contains("local_spend_share") && e.contains("scale"),
            "{e}"
        );

        let mut r = row();
        r.denominator = None;
        let e = message(Metric::try_from(r));
        assert!(
            e.contains("local_spend_share") && e.contains("denominator"),
            "{e}"
        );

        let mut r = row();
        r.breakdown = Some("ward".into());
        let e = message(Metric::try_from(r));
        assert!(
            e.contains("local_spend_share") && e.contains("breakdown"),
            "{e}"
        );
    }
}
