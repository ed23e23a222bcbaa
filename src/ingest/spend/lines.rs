//! Reading a spend-lines CSV (API.md's layout), one record at a time: every line is checked
//! as it passes and handed on in small batches, so a file of any size is never held whole.
//! The `csv` crate reads it: it streams records from any `Read` with a reused buffer, follows
//! RFC 4180 (quoted commas, quotes and line breaks in supplier names), and tells the line each
//! record starts on, which every problem names.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{GssCode, Postcode, quantity};
use crate::ingest::csv_returns::Hashing;
use crate::ingest::jobs::{LineProblem, MAX_PROBLEMS};

pub const HEADER: [&str; 10] = [
    "supplier",
    "supplier_id",
    "postcode",
    "district",
    "amount",
    "category",
    "sme",
    "vcse",
    "sole_trader",
    "anchor",
];

/// Lines handed on at a time.
pub const BATCH: usize = 1000;

const MAX_SUPPLIER: usize = 300;
const MAX_SUPPLIER_ID: usize = 100;
const MAX_CATEGORY: usize = 200;

/// A line that passed its checks, as it is staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedLine {
    pub line: i32,
    pub supplier: String,
    pub supplier_id: String,
    pub postcode: Option<String>,
    /// A district given (used only when no postcode is).
    pub district: Option<String>,
    /// Pence.
    pub amount: i64,
    pub category: Option<String>,
    pub sme: bool,
    pub vcse: bool,
    pub sole_trader: bool,
    pub anchor: bool,
}

/// A whole file read.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Lines after the header.
    pub rows_read: u64,
    /// Lines with at least one problem.
    pub rows_rejected: u64,
    /// The first problems, in file order.
    pub problems: Vec<LineProblem>,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// The sum of the amounts of the good lines, in pence.
    pub total: i64,
}

impl Summary {
    pub fn accepted(&self) -> bool {
        self.problems.is_empty() && self.rows_rejected == 0
    }
}

/// The most distinct categories one file may name: the analysis groups by category, and each
/// one is a cell of every answer grouped so (a red team's file of a million categories made
/// each such question run until its timeout).
pub const MAX_CATEGORIES: usize = 1000;

/// The distinct categories seen so far, up to [`MAX_CATEGORIES`].
#[derive(Default)]
struct Categories(std::collections::HashSet<String>);

impl Categories {
    /// Whether a line with `category` keeps the file within the limit (a category already
    /// seen, or none, always does).
    fn admit(&mut self, category: Option<&str>) -> bool {
        let Some(c) = category else { return true };
        if self.0.contains(c) {
            return true;
        }
        if self.0.len() >= MAX_CATEGORIES {
            return false;
        }
        self.0.insert(c.to_owned());
        true
    }
}

/// How reading ended.
#[derive(Debug)]
pub enum Ended {
    /// The file was read to its end.
    Whole(Summary),
    /// The bytes stopped coming before the end (an upload cut short, a read error); what was
    /// read is no file.
    Broken(String),
    /// The receiver of the lines went away: whoever reads them stopped (and says why).
    Abandoned,
}

/// Reads `input` to its end, checking every line. While no problem has been found, good lines
/// go to `emit` in batches of [`BATCH`]; after the first problem nothing more is emitted (the
/// file will be refused), but reading goes on so that every problem is counted. `read`
/// counts the lines as they pass, for progress reports.
// Long because it is one pass over the file: each record checked, counted against the file's
// limits (exact total, categories) and batched, in the order a line meets them.
pub fn read<R: Read>(
    input: R,
    read: &Arc<AtomicU64>,
    mut emit: impl FnMut(Vec<StagedLine>) -> bool,
) -> Ended {
    // Fields are trimmed where they are read (`check`): the reader's own trimming rebuilt
    // every record, a quarter of the time reading took.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(Hashing::new(input));
    let mut summary = Summary::default();
    match check_header(&mut reader) {
        Ok(()) => {}
        Err(Fault::Line(p)) => {
            summary.rows_rejected = 1;
            summary.problems.push(p);
            return finish(reader, summary);
        }
        Err(Fault::Broken(e)) => return Ended::Broken(e),
    }
    let mut record = csv::StringRecord::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut total: i128 = 0;
    let mut categories = Categories::default();
    loop {
        let line = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                check(&record, line).and_then(|l| {
                    total += i128::from(l.amount);
                    if total > i128::from(i64::MAX) {
                        Err(vec![LineProblem::bad(
                            line,
                            Some("amount"),
                            "the amounts up to this line add up to more than can be kept exactly",
                        )])
                    } else if !categories.admit(l.category.as_deref()) {
                        Err(vec![LineProblem::bad(
                            line,
                            Some("category"),
                            format!(
                                "a file may name at most {MAX_CATEGORIES} categories and this \
                                 line's is one more: categories group spend (a procurement \
                                 classification such as ProClass), so map yours to fewer"
                            ),
                        )])
                    } else {
                        Ok(l)
                    }
                })
            }
            Err(e) => match record_fault(&e) {
                Fault::Line(p) => Err(vec![p]),
                Fault::Broken(e) => return Ended::Broken(e),
            },
        };
        summary.rows_read += 1;
        read.fetch_add(1, Ordering::Relaxed);
        match line {
            Ok(l) if summary.problems.is_empty() => {
                batch.push(l);
                if batch.len() == BATCH && !emit(std::mem::take(&mut batch)) {
                    return Ended::Abandoned;
                }
            }
            Ok(_) => {}
            Err(found) => {
                summary.rows_rejected += 1;
                let room = MAX_PROBLEMS.saturating_sub(summary.problems.len());
                summary.problems.extend(found.into_iter().take(room));
                batch.clear();
            }
        }
    }
    if summary.rows_read == 0 {
        summary.rows_rejected = 0;
        summary.problems.push(LineProblem::bad(
            2,
            None,
            "the file has no lines after the header",
        ));
    }
    if summary.problems.is_empty() && !batch.is_empty() && !emit(batch) {
        return Ended::Abandoned;
    }
    summary.total = i64::try_from(total).unwrap_or(i64::MAX);
    finish(reader, summary)
}

/// Reads what is left (so the hash covers the whole file) and ends.
fn finish<R: Read>(reader: csv::Reader<Hashing<R>>, mut summary: Summary) -> Ended {
    let mut rest = reader.into_inner();
    if let Err(e) = std::io::copy(&mut rest, &mut std::io::sink()) {
        return Ended::Broken(e.to_string());
    }
    summary.sha256 = rest.hex();
    Ended::Whole(summary)
}

enum Fault {
    /// A problem with one line.
    Line(LineProblem),
    /// The input itself failed.
    Broken(String),
}

/// The header must be API.md's, in that order (any case, after a byte-order mark): columns
/// are read by position.
fn check_header<R: Read>(reader: &mut csv::Reader<R>) -> Result<(), Fault> {
    let got: Vec<String> = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').trim().to_lowercase())
            .collect(),
        Err(e) => {
            return Err(match record_fault(&e) {
                Fault::Line(mut p) => {
                    p.line = 1;
                    p.reason = format!("the header cannot be read: {}", p.reason);
                    Fault::Line(p)
                }
                broken => broken,
            });
        }
    };
    if got != HEADER {
        return Err(Fault::Line(LineProblem::bad(
            1,
            None,
            format!(
                "the header must be `{}`, found `{}`",
                HEADER.join(","),
                got.join(",")
            ),
        )));
    }
    Ok(())
}

/// A record the CSV reader could not read, in words for the person who wrote the file; or
/// the input failing under it.
fn record_fault(e: &csv::Error) -> Fault {
    let line = e.position().map_or(0, csv::Position::line);
    match e.kind() {
        csv::ErrorKind::Io(io) => Fault::Broken(io.to_string()),
        csv::ErrorKind::UnequalLengths { len, .. } => Fault::Line(LineProblem::bad(
            line,
            None,
            format!("the line has {len} fields; every line has {}", HEADER.len()),
        )),
        csv::ErrorKind::Utf8 { .. } => {
            Fault::Line(LineProblem::bad(line, None, "the line is not UTF-8 text"))
        }
        _ => Fault::Line(LineProblem::bad(line, None, e.to_string())),
    }
}

/// Checks one line: every problem with it, or the line as it will be staged.
// Long because it is one check per column of the published layout, in the layout's order, each
// adding its own problem so a line reports all of them at once.
fn check(record: &csv::StringRecord, line: u64) -> Result<StagedLine, Vec<LineProblem>> {
    let mut problems = vec![];
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let mut bad = |column: &str, reason: String| {
        problems.push(LineProblem::bad(line, Some(column), reason));
    };
    for (i, name) in HEADER.iter().enumerate() {
        if field(i).contains('\0') {
            bad(name, "contains a NUL character".into());
        }
    }
    let supplier = text(field(0), MAX_SUPPLIER, true).unwrap_or_else(|e| {
        bad("supplier", e);
        None
    });
    let supplier_id = text(field(1), MAX_SUPPLIER_ID, true).unwrap_or_else(|e| {
        bad("supplier_id", e);
        None
    });
    let postcode = match field(2) {
        "" => None,
        raw => Postcode::parse(raw).map_or_else(
            |e| {
                bad("postcode", e.0);
                None
            },
            |p| Some(p.to_string()),
        ),
    };
    let district = match field(3) {
        "" => None,
        raw => match GssCode::parse(raw) {
            Ok(code) if code.is_district() => Some(code.to_string()),
            Ok(code) => {
                bad(
                    "district",
                    format!(
                        "{code} is not a local authority district (E06, E07, E08, E09, W06, S12 or N09)"
                    ),
                );
                None
            }
            Err(e) => {
                bad("district", e.0);
                None
            }
        },
    };
    let amount = match (field(4), quantity::to_minor_units(field(4), 2)) {
        ("", _) => {
            bad(
                "amount",
                "is empty; every line has an amount in pounds, such as 1234.56".into(),
            );
            None
        }
        (raw, Ok(a)) if a < 0 => {
            bad(
                "amount",
                format!("`{raw}` is negative: a line is what was spent with a supplier"),
            );
            None
        }
        (_, Ok(a)) => Some(a),
        (raw, Err(e)) if e.0.contains("decimal places") => {
            bad(
                "amount",
                format!(
                    "`{raw}` has more than two decimal places: amounts are pounds and pence, never rounded"
                ),
            );
            None
        }
        (_, Err(e)) => {
            bad("amount", e.0);
            None
        }
    };
    let category = text(field(5), MAX_CATEGORY, false).unwrap_or_else(|e| {
        bad("category", e);
        None
    });
    let mut flags = [false; 4];
    for (n, flag) in flags.iter_mut().enumerate() {
        let column = HEADER[6 + n];
        match yes_no(field(6 + n)) {
            Ok(v) => *flag = v,
            Err(e) => bad(column, e),
        }
    }
    let line_no = i32::try_from(line).map_err(|_| {
        vec![LineProblem::bad(
            line,
            None,
            "the file has more lines than one import takes; split it",
        )]
    })?;
    match (supplier, supplier_id, amount) {
        (Some(supplier), Some(supplier_id), Some(amount)) if problems.is_empty() => {
            Ok(StagedLine {
                line: line_no,
                supplier,
                supplier_id,
                postcode,
                district,
                amount,
                category,
                sme: flags[0],
                vcse: flags[1],
                sole_trader: flags[2],
                anchor: flags[3],
            })
        }
        _ => Err(problems),
    }
}

/// A text field within `max` characters; empty is `None`, or a problem when `required`.
fn text(raw: &str, max: usize, required: bool) -> Result<Option<String>, String> {
    if raw.is_empty() {
        return if required {
            Err("is empty; every line names its supplier and the supplier's id".into())
        } else {
            Ok(None)
        };
    }
    // Bytes first: no longer than `max` bytes is no longer than `max` characters.
    if raw.len() > max && raw.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    Ok(Some(raw.to_owned()))
}

/// A flag: yes or no in the usual spellings; empty is no.
fn yes_no(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "n" | "0" | "f" => Ok(false),
        "true" | "yes" | "y" | "1" | "t" => Ok(true),
        _ => Err(format!(
            "`{raw}` is not yes or no: write true or false (yes/no, y/n, 1/0; empty is no)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "supplier,supplier_id,postcode,district,amount,category,sme,vcse,sole_trader,anchor\n";

    fn read_all(csv: &str) -> (Ended, Vec<StagedLine>) {
        let mut lines = vec![];
        let n = Arc::new(AtomicU64::new(0));
        let end = read(csv.as_bytes(), &n, |b| {
            lines.extend(b);
            true
        });
        (end, lines)
    }

    fn problems(csv: &str) -> Vec<LineProblem> {
        match read_all(csv).0 {
            Ended::Whole(s) => s.problems,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_names_at_most_so_many_categories() {
        let mut csv = String::from(HEAD);
        for i in 0..=MAX_CATEGORIES {
            // Each category twice, and lines with none: only new names count.
            csv.push_str(&format!("S{i},ID{i},,,1.00,Category {i},,,,\n"));
            csv.push_str(&format!("S{i},ID{i},,,1.00,Category {i},,,,\n"));
            csv.push_str(&format!("S{i},ID{i},,,1.00,,,,,\n"));
        }
        let p = problems(&csv);
        // The header is line 1; category number MAX_CATEGORIES + 1 first appears on the
        // line after 3 * MAX_CATEGORIES others, and again on the next; the line without one
        // is fine.
        let first = 3 * MAX_CATEGORIES as u64 + 2;
        let lines: Vec<u64> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [first, first + 1], "{p:?}");
        assert!(p.iter().all(|p| p.column.as_deref() == Some("category")));
        let within: Vec<&str> = csv.lines().take(3 * MAX_CATEGORIES + 1).collect();
        assert!(problems(&format!("{}\n", within.join("\n"))).is_empty());
    }

    #[test]
    fn good_lines_are_staged_exactly() {
        let csv = format!(
            "{HEAD}Fictional Tipton Tools Ltd,09099002,b69 4he,,1234.5,Works,yes,,,\n\
             \"Smith, J (sole trader)\",OWN-17,,E08000028,20,Cleaning,y,n,true,0\n\
             Nowhere Ltd,OWN-18,,,0.01,,,,,\n"
        );
        let (end, lines) = read_all(&csv);
        let Ended::Whole(s) = end else { panic!() };
        assert!(s.accepted(), "{:?}", s.problems);
        assert_eq!((s.rows_read, s.total), (3, 123_450 + 2_000 + 1));
        assert_eq!(s.sha256.len(), 64);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].postcode.as_deref(), Some("B69 4HE"));
        assert_eq!(lines[0].amount, 123_450);
        assert!(lines[0].sme && !lines[0].vcse);
        assert_eq!(lines[1].supplier, "Smith, J (sole trader)");
        assert_eq!(lines[1].district.as_deref(), Some("E08000028"));
        assert!(lines[1].sole_trader && !lines[1].anchor);
        assert_eq!((lines[2].line, lines[2].postcode.clone()), (4, None));
    }

    #[test]
    fn every_kind_of_bad_line_is_named_with_its_line() {
        let csv = format!(
            "{HEAD}A,1,,,10,,,,,\n\
             ,2,,,10,,,,,\n\
             C,,,,10,,,,,\n\
             D,4,NOT A CODE,,10,,,,,\n\
             E,5,,E47000007,10,,,,,\n\
             F,6,,,ten,,,,,\n\
             G,7,,,1.234,,,,,\n\
             H,8,,,-5,,,,,\n\
             I,9,,,10,,maybe,,,\n\
             J,10,,,10\n\
             K,11,,,,,,,,\n"
        );
        let found = problems(&csv);
        let at: Vec<(u64, Option<&str>)> = found
            .iter()
            .map(|p| (p.line, p.column.as_deref()))
            .collect();
        assert_eq!(
            at,
            [
                (3, Some("supplier")),
                (4, Some("supplier_id")),
                (5, Some("postcode")),
                (6, Some("district")),
                (7, Some("amount")),
                (8, Some("amount")),
                (9, Some("amount")),
                (10, Some("sme")),
                (11, None),
                (12, Some("amount")),
            ],
            "{found:#?}"
        );
        assert!(
            found[5].reason.contains("decimal places"),
            "{}",
            found[5].reason
        );
    }

    #[test]
    fn nothing_is_emitted_once_a_line_is_bad() {
        let mut csv = HEAD.to_owned();
        for i in 0..(BATCH * 2) {
            csv.push_str(&format!("S{i},{i},,,1,,,,,\n"));
        }
        csv.push_str("bad,x,,,nope,,,,,\n");
        let (end, lines) = read_all(&csv);
        let Ended::Whole(s) = end else { panic!() };
        assert_eq!((s.rows_read, s.rows_rejected), (BATCH as u64 * 2 + 1, 1));
        // Two full batches went before the bad line was met; the file is refused whole.
        assert_eq!(lines.len(), BATCH * 2);
        assert!(!s.accepted());
    }

    #[test]
    fn header_and_empty_files() {
        assert_eq!(problems("supplier,amount\nA,1\n")[0].line, 1);
        let p = problems(HEAD);
        assert_eq!((p[0].line, p.len()), (2, 1));
        // A byte-order mark and upper case are fine.
        let csv = format!("\u{feff}{}A,1,,,1,,,,,\n", HEAD.to_uppercase());
        assert!(problems(&csv).is_empty());
    }

    #[test]
    fn a_broken_input_is_not_a_file() {
        struct Cut(bool);
        impl Read for Cut {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(std::io::Error::other("the upload was cut short"));
                }
                let b = HEAD.as_bytes();
                buf[..b.len()].copy_from_slice(b);
                Ok(b.len())
            }
        }
        let n = Arc::new(AtomicU64::new(0));
        assert!(matches!(read(Cut(false), &n, |_| true), Ended::Broken(_)));
    }
}
