//! The English Indices of Deprivation's LSOA file as MHCLG publishes it as CSV ("File 7: all
//! ranks, deciles and scores"), one row an LSOA. This reads, by their published names,
//!
//! - `LSOA code (2011)` (the 2019 edition) or `LSOA code (2021)` (the 2025 edition);
//! - `Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)`;
//! - `Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)`;
//!
//! and ignores the other columns (names, districts, the domains' scores, ranks and deciles,
//! the population denominators). The edition is given, or taken from the LSOA boundaries:
//! 2011 LSOAs are the 2019 edition's, 2021 LSOAs the 2025 edition's.

use std::io::Read;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::{Loaded, end, spawn_reader};
use crate::domain::{GssCode, GssKind};
use crate::error::ApiResult;
use crate::ingest::jobs::LineProblem;
use crate::sql::Sql;

pub const LSOA_PREFIX: &str = "LSOA code (";
pub const RANK_PREFIX: &str = "Index of Multiple Deprivation (IMD) Rank";
pub const DECILE_PREFIX: &str = "Index of Multiple Deprivation (IMD) Decile";

/// One LSOA's deprivation, as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub lsoa: String,
    /// The LSOA boundaries' year, from the header.
    pub vintage: i32,
    pub rank: i32,
    pub decile: i16,
}

struct Columns {
    lsoa: usize,
    vintage: i32,
    rank: usize,
    decile: usize,
}

fn starting(header: &[String], prefix: &str) -> Option<usize> {
    header.iter().position(|h| {
        h.trim()
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase())
    })
}

fn columns(header: &[String]) -> Result<Columns, String> {
    let missing = |what: &str| {
        format!("no `{what}…` column: is this the Indices of Deprivation's LSOA file (File 7)?")
    };
    let lsoa = starting(header, LSOA_PREFIX).ok_or_else(|| missing(LSOA_PREFIX))?;
    let vintage = header[lsoa]
        .trim()
        .get(LSOA_PREFIX.len()..LSOA_PREFIX.len() + 4)
        .and_then(|y| y.parse::<i32>().ok())
        .ok_or_else(|| format!("`{}` does not say the LSOAs' year", header[lsoa]))?;
    Ok(Columns {
        lsoa,
        vintage,
        rank: starting(header, RANK_PREFIX).ok_or_else(|| missing(RANK_PREFIX))?,
        decile: starting(header, DECILE_PREFIX).ok_or_else(|| missing(DECILE_PREFIX))?,
    })
}

fn row(c: &Columns, record: &csv::StringRecord, line: u64) -> Result<Option<Row>, LineProblem> {
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let lsoa = GssCode::parse(field(c.lsoa))
        .ok()
        .filter(|g| g.kind() == GssKind::Lsoa)
        .ok_or_else(|| {
            LineProblem::bad(
                line,
                Some("LSOA code"),
                format!("`{}` is not an LSOA code such as E01009999", field(c.lsoa)),
            )
        })?;
    let rank = field(c.rank)
        .parse::<i32>()
        .ok()
        .filter(|r| *r >= 1)
        .ok_or_else(|| {
            LineProblem::bad(
                line,
                Some("IMD rank"),
                format!("`{}` is not a rank (1 is most deprived)", field(c.rank)),
            )
        })?;
    let decile = field(c.decile)
        .parse::<i16>()
        .ok()
        .filter(|d| (1..=10).contains(d))
        .ok_or_else(|| {
            LineProblem::bad(
                line,
                Some("IMD decile"),
                format!("`{}` is not a decile from 1 to 10", field(c.decile)),
            )
        })?;
    Ok(Some(Row {
        lsoa: lsoa.to_string(),
        vintage: c.vintage,
        rank,
        decile,
    }))
}

/// The edition of the Indices a file of `vintage` LSOAs is.
pub fn edition_for(vintage: i32) -> i32 {
    match vintage {
        2011 => 2019,
        2021 => 2025,
        other => other,
    }
}

/// Loads an Indices of Deprivation LSOA file as `edition` (default: from its LSOAs' year), in
/// one transaction; nothing when a row is bad.
pub async fn load(
    db: &DatabaseConnection,
    input: impl Read + Send + 'static,
    edition: Option<i32>,
) -> ApiResult<Loaded> {
    let (mut rx, reader) = spawn_reader(input, columns, row);
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start loading deprivation deciles")?;
    let (mut written, mut chosen) = (0u64, None);
    while let Some(batch) = rx.recv().await {
        written += batch.len() as u64;
        let e = edition.unwrap_or_else(|| edition_for(batch[0].vintage));
        chosen = Some(e);
        txn.execute_raw(upsert(e, &batch).statement(txn.get_database_backend()))
            .await
            .context("Failed to write deprivation deciles")?;
    }
    let ended = reader.await.context("The Indices reader stopped")?;
    let note = chosen.map_or_else(String::new, |e| {
        format!("as the Indices of Deprivation {e}")
    });
    end(txn, ended, written, note).await
}

fn upsert(edition: i32, rows: &[Row]) -> Sql {
    let values = Sql::join(
        rows.iter().map(|r| {
            Sql::format(
                "({}, {}, {}, {}, {})",
                [
                    Sql::value(edition),
                    Sql::value(r.lsoa.clone()),
                    Sql::value(r.vintage),
                    Sql::value(r.rank),
                    Sql::value(r.decile),
                ],
            )
        }),
        ", ",
    );
    Sql::format(
        "INSERT INTO lsoa_deprivation (edition, lsoa_code, lsoa_vintage, imd_rank, imd_decile) \
         VALUES {} ON CONFLICT (edition, lsoa_code) DO UPDATE SET \
           lsoa_vintage = excluded.lsoa_vintage, imd_rank = excluded.imd_rank, \
           imd_decile = excluded.imd_decile",
        [values],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_published_columns() {
        let h: Vec<String> = [
            "LSOA code (2011)",
            "LSOA name (2011)",
            "Local Authority District code (2019)",
            "Local Authority District name (2019)",
            "Index of Multiple Deprivation (IMD) Score",
            "Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)",
            "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)",
        ]
        .map(str::to_owned)
        .to_vec();
        let c = columns(&h).unwrap();
        assert_eq!((c.lsoa, c.vintage, c.rank, c.decile), (0, 2011, 5, 6));
        assert_eq!(edition_for(c.vintage), 2019);
        let mut h25 = h.clone();
        h25[0] = "LSOA code (2021)".into();
        assert_eq!(columns(&h25).unwrap().vintage, 2021);
        assert!(columns(&h[1..]).is_err());
        let rec = csv::StringRecord::from(vec![
            "E01009001",
            "x",
            "E08000025",
            "B",
            "40.1",
            "1234",
            "1",
        ]);
        assert_eq!(row(&c, &rec, 2).unwrap().unwrap().decile, 1);
        let rec = csv::StringRecord::from(vec![
            "E01009001",
            "x",
            "E08000025",
            "B",
            "40.1",
            "1234",
            "11",
        ]);
        assert_eq!(
            row(&c, &rec, 2).unwrap_err().column.as_deref(),
            Some("IMD decile")
        );
        let rec = csv::StringRecord::from(vec![
            "E08000025",
            "x",
            "E08000025",
            "B",
            "40.1",
            "1234",
            "1",
        ]);
        assert!(row(&c, &rec, 2).is_err());
    }
}
