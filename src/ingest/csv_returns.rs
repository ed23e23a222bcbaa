//! Returns from a CSV file (API.md's layout): `institution,period,metric,value,breakdown,method`,
//! one value a row, an empty value meaning "not reported". Rows are grouped into returns by
//! institution and period, in the order they first appear; each group is a whole return.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::{Problem, ReturnItem, ValueItem};

pub const HEADER: [&str; 6] = [
    "institution",
    "period",
    "metric",
    "value",
    "breakdown",
    "method",
];

/// A problem in a file: its row (1 is the header) and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub row: u64,
    pub column: String,
    pub code: &'static str,
    pub reason: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}, column {}: {} ({})",
            self.row, self.column, self.reason, self.code
        )
    }
}

/// A file read into returns, with where each value came from.
pub struct ParsedFile {
    pub items: Vec<ReturnItem>,
    /// For each item, the row of each of its values.
    rows: Vec<Vec<u64>>,
    /// SHA-256 of the file's bytes: the default idempotency key.
    pub sha256: String,
}

impl ParsedFile {
    /// Where a batch problem points in the file.
    pub fn locate(&self, p: &Problem) -> FileProblem {
        let rows = self.rows.get(p.loc.item);
        let row = match (rows, p.loc.value) {
            (Some(r), Some(v)) => r.get(v).copied().unwrap_or(0),
            (Some(r), None) => r.first().copied().unwrap_or(0),
            (None, _) => 0,
        };
        let column = match p.loc.field {
            "institution" => "institution",
            "period" | "periodStart" | "periodEnd" => "period",
            "metric" => "metric",
            "value" | "notReported" => "value",
            "breakdown" => "breakdown",
            "method" => "method",
            _ => "-",
        };
        FileProblem {
            row,
            column: column.into(),
            code: p.code,
            reason: p.reason.clone(),
        }
    }
}

/// Hashes what passes through, so the file is read once.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The SHA-256 of every byte read, in hex.
    pub(crate) fn hex(self) -> String {
        format!("{:x}", self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a returns CSV. Problems of form (header, field count, encoding) are returned with
/// their row and column; nothing is partially accepted.
pub fn read<R: Read>(input: R) -> Result<ParsedFile, Vec<FileProblem>> {
    let hashing = Hashing::new(input);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(hashing);
    check_header(&mut reader).map_err(|p| vec![p])?;
    let mut problems = vec![];
    let mut grouped = Grouped::default();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => grouped.add(&record),
            Err(e) => {
                problems.push(record_problem(&e));
                if problems.len() >= 100 {
                    break;
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if grouped.items.is_empty() {
        return Err(vec![form_problem(
            2,
            "the file has no rows after the header",
        )]);
    }
    let sha256 = reader.into_inner().hex();
    Ok(ParsedFile {
        items: grouped.items,
        rows: grouped.rows,
        sha256,
    })
}

/// A problem with the file's form rather than with one of its values: it has no column.
fn form_problem(row: u64, reason: impl Into<String>) -> FileProblem {
    FileProblem {
        row,
        column: "-".into(),
        code: "BAD_USER_INPUT",
        reason: reason.into(),
    }
}

/// The header must be exactly `HEADER` (in any case, after a byte-order mark): columns are
/// read by position.
fn check_header<R: Read>(reader: &mut csv::Reader<R>) -> Result<(), FileProblem> {
    let got: Vec<String> = reader
        .headers()
        .map_err(|e| form_problem(1, format!("the header cannot be read: {e}")))?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').to_lowercase())
        .collect();
    if got != HEADER {
        return Err(form_problem(
            1,
            format!(
                "the header must be `{}`, found `{}`",
                HEADER.join(","),
                got.join(",")
            ),
        ));
    }
    Ok(())
}

/// A row the CSV reader could not read, in words for the person who wrote the file.
fn record_problem(e: &csv::Error) -> FileProblem {
    let row = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths { len, .. } => {
            format!("the row has {len} fields; every row has 6")
        }
        csv::ErrorKind::Utf8 { .. } => "the row is not UTF-8 text".into(),
        _ => e.to_string(),
    };
    form_problem(row, reason)
}

/// Rows grouped into returns by institution and period, in the order each first appears,
/// with the row each value came from.
#[derive(Default)]
struct Grouped {
    items: Vec<ReturnItem>,
    rows: Vec<Vec<u64>>,
    index: HashMap<(String, String), usize>,
}

impl Grouped {
    fn add(&mut self, record: &csv::StringRecord) {
        let row = record.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| record.get(i).unwrap_or("").to_owned();
        let (institution, period) = (field(0), field(1));
        let value = field(3);
        let item = *self
            .index
            .entry((institution.clone(), period.clone()))
            .or_insert_with(|| {
                self.items.push(ReturnItem {
                    institution,
                    period,
                    period_start: None,
                    period_end: None,
                    basis: None,
                    notes: None,
                    values: vec![],
                });
                self.rows.push(vec![]);
                self.items.len() - 1
            });
        self.items[item].values.push(ValueItem {
            metric: field(2),
            not_reported: value.is_empty(),
            value: (!value.is_empty()).then_some(value),
            breakdown: Some(field(4)).filter(|b| !b.is_empty()),
            method: Some(field(5)).filter(|m| !m.is_empty()),
        });
        self.rows[item].push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_into_returns() {
        let csv = "institution,period,metric,value,breakdown,method\n\
                   a,2022/23,headcount,10,,\n\
                   b,2022/23,headcount,,,\n\
                   a,2022/23,employees_by_residence,4,district:E08000025,\n";
        let f = read(csv.as_bytes()).unwrap();
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[0].values.len(), 2);
        assert!(f.items[1].values[0].not_reported && f.items[1].values[0].value.is_none());
        assert_eq!(f.rows, vec![vec![2, 4], vec![3]]);
        assert_eq!(f.sha256.len(), 64);
    }

    #[test]
    fn refuses_bad_form_with_rows() {
        assert_eq!(read("a,b\n1,2\n".as_bytes()).err().unwrap()[0].row, 1);
        let bad = "institution,period,metric,value,breakdown,method\na,2022/23,headcount,10,,\nb,2022/23\n";
        let e = read(bad.as_bytes()).err().unwrap();
        assert_eq!(e[0].row, 3);
        assert!(read("institution,period,metric,value,breakdown,method\n".as_bytes()).is_err());
    }
}
