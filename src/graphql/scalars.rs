//! Custom scalars: validated at the edge, so a resolver only ever sees a well-formed value.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;

use crate::domain;

/// A nine-character ONS GSS code such as `E08000025`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssCode(pub domain::GssCode);

/// A nine-character ONS GSS code, such as `E08000025` (Birmingham) or `E47000007`
/// (West Midlands Combined Authority).
#[Scalar(name = "GssCode")]
impl ScalarType for GssCode {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => domain::GssCode::parse(s)
                .map(GssCode)
                .map_err(|e| InputValueError::custom(e.0)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// A reporting year such as `2023/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinancialYear(pub domain::FinancialYear);

/// A reporting year written `2023/24`: the first year, a slash, the next year's two digits.
#[Scalar(name = "FinancialYear")]
impl ScalarType for FinancialYear {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s
                .parse::<domain::FinancialYear>()
                .map(FinancialYear)
                .map_err(|e| InputValueError::custom(e.0)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar date in ISO 8601 form, `2024-03-31`.
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| {
                    InputValueError::custom(format!("`{s}` is not a date: write it as 2024-03-31"))
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// An exact decimal carried as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub String);

/// An exact decimal carried as a JSON string, such as `"10200000000.00"`: never a float.
/// Values have at most the metric's scale of decimal places.
#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => {
                let t = s.trim();
                let ok = !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
                    && t.matches('.').count() <= 1
                    && t.rfind('-').is_none_or(|i| i == 0)
                    && t.chars().any(|c| c.is_ascii_digit());
                if ok {
                    Ok(Decimal(t.to_owned()))
                } else {
                    Err(InputValueError::custom(format!(
                        "`{s}` is not a decimal such as \"1234.56\""
                    )))
                }
            }
            Value::Number(_) => Err(InputValueError::custom(
                "send decimals as strings (\"1234.56\"), so no precision is lost",
            )),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}
