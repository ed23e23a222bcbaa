//! Hand-written SQL for the statements sea-query does not express well (window functions).
//! Statements are written once with `?` placeholders and numbered for PostgreSQL here.

use sea_orm::{DatabaseBackend, Statement, Value};

/// Builds a statement for `backend` from SQL written with `?` placeholders.
/// The SQL must not contain a literal `?` (keep literals in bound values).
pub fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Postgres => {
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
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `?, ?, ?` for `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_for_postgres() {
        let s = stmt(DatabaseBackend::Postgres, "a = ? AND b IN (?, ?)", vec![]);
        assert_eq!(s.sql, "a = $1 AND b IN ($2, $3)");
        let s = stmt(DatabaseBackend::Sqlite, "a = ?", vec![]);
        assert_eq!(s.sql, "a = ?");
        assert_eq!(placeholders(3), "?, ?, ?");
    }
}
