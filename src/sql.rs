//! Hand-written SQL, for the statements sea-query's builders do not express well: the
//! policy's predicates, common table expressions reused across a statement, window
//! functions, `UNION ALL` reports.
//!
//! [`Sql`] carries a statement's text and the values its placeholders take, together, so
//! they cannot get out of order: every way of adding text adds its values at the same
//! point. Text comes only from `&'static str` (code constants) or from other `Sql`, so
//! nothing a client sends is ever spliced into a statement; values are always bound.
//! Placeholders are written `?` and numbered for PostgreSQL when the statement is built.

use sea_orm::{DatabaseBackend, Statement, Value};

/// A piece of SQL with `?` placeholders and the values they take, in order.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// Fixed text. It must not contain `?` (values go through [`Sql::value`]).
    pub fn raw(text: &'static str) -> Self {
        debug_assert!(!text.contains('?'), "bind values instead: {text}");
        Self {
            text: text.to_owned(),
            values: vec![],
        }
    }

    /// One bound value.
    pub fn value(v: impl Into<Value>) -> Self {
        Self {
            text: "?".to_owned(),
            values: vec![v.into()],
        }
    }

    /// Bound values separated by commas, for `IN (…)`. An empty list is `NULL`, which
    /// `IN` matches with nothing.
    pub fn list<V: Into<Value>>(values: impl IntoIterator<Item = V>) -> Self {
        let values: Vec<Value> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            return Self::raw("NULL");
        }
        Self {
            text: vec!["?"; values.len()].join(", "),
            values,
        }
    }

    /// `template` with each `{}` replaced, in order, by one of `args` (text and values).
    /// A template whose `{}` count differs from the arguments' is a bug in the code, not in
    /// any input: it panics in tests and debug builds.
    pub fn format(template: &'static str, args: impl IntoIterator<Item = Sql>) -> Self {
        let mut args = args.into_iter();
        let mut out = Sql::default();
        let mut pieces = template.split("{}");
        if let Some(first) = pieces.next() {
            out.text.push_str(first);
        }
        for piece in pieces {
            let arg = args.next();
            debug_assert!(arg.is_some(), "too few arguments for: {template}");
            if let Some(arg) = arg {
                out.push(arg);
            }
            out.text.push_str(piece);
        }
        debug_assert!(args.next().is_none(), "too many arguments for: {template}");
        out
    }

    /// The parts joined by `sep`; an empty iterator gives empty text.
    pub fn join(parts: impl IntoIterator<Item = Sql>, sep: &'static str) -> Self {
        let mut out = Sql::default();
        for (n, part) in parts.into_iter().enumerate() {
            if n > 0 {
                out.text.push_str(sep);
            }
            out.push(part);
        }
        out
    }

    /// Appends another piece, text and values.
    pub fn push(&mut self, other: Sql) {
        self.text.push_str(&other.text);
        self.values.extend(other.values);
    }

    /// Appends fixed text.
    pub fn push_raw(&mut self, text: &'static str) {
        self.push(Sql::raw(text));
    }

    /// `(self) AND (other)`.
    pub fn and(self, other: Sql) -> Sql {
        Sql::format("({}) AND ({})", [self, other])
    }

    /// `(self) OR (other)`.
    pub fn or(self, other: Sql) -> Sql {
        Sql::format("({}) OR ({})", [self, other])
    }

    /// A condition that holds for no row.
    pub fn nothing() -> Sql {
        Sql::raw("1 = 0")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The statement for `backend`, with its placeholders numbered for PostgreSQL.
    pub fn statement(self, backend: DatabaseBackend) -> Statement {
        let text = match backend {
            DatabaseBackend::Postgres => number_placeholders(&self.text),
            _ => self.text,
        };
        Statement::from_sql_and_values(backend, text, self.values)
    }
}

/// `$1, $2, …` for each `?`, in order.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_placeholders_for_postgres() {
        let s = Sql::format("a = {} AND b IN ({})", [Sql::value(1), Sql::list([2, 3])]);
        let st = s.clone().statement(DatabaseBackend::Postgres);
        assert_eq!(st.sql, "a = $1 AND b IN ($2, $3)");
        assert_eq!(
            s.statement(DatabaseBackend::Sqlite).sql,
            "a = ? AND b IN (?, ?)"
        );
        assert_eq!(Sql::list(Vec::<i64>::new()).text(), "NULL");
    }

    #[test]
    #[should_panic(expected = "too few arguments")]
    fn a_template_needs_all_its_arguments() {
        let _ = Sql::format("a = {} AND b = {}", [Sql::value(1)]);
    }

    proptest! {
        /// However pieces are composed, the values stay in the order of their placeholders.
        #[test]
        fn values_follow_their_placeholders(groups in proptest::collection::vec(
            proptest::collection::vec(0i64..1000, 0..4), 0..6)) {
            let parts = groups.iter().map(|g| {
                Sql::format("x IN ({}) AND y = {}", [Sql::list(g.clone()), Sql::value(-1i64)])
            });
            let joined = Sql::join(parts, " OR ").and(Sql::value(7));
            prop_assert_eq!(joined.text().matches('?').count(), joined.values().len());
            let mut expected: Vec<Value> = vec![];
            for g in &groups {
                expected.extend(g.iter().map(|v| Value::from(*v)));
                expected.push(Value::from(-1i64));
            }
            expected.push(Value::from(7));
            prop_assert_eq!(joined.values(), expected.as_slice());
        }
    }
}
