//! The ONS National Statistics Postcode Lookup (NSPL; the ONS Postcode Directory has the same
//! columns), as ONS publishes it: one CSV row a postcode, with a header naming its columns.
//! This reads
//!
//! - `pcds`: the postcode, one space before the inward code (`B69 4HE`);
//! - `laua` (in editions from 2025 also `lad25cd` and the like): its local authority district;
//! - `lsoa11` and/or `lsoa21` (or `lsoa11cd`, `lsoa21cd`): its LSOA, 2011 and 2021 boundaries;
//! - `doterm`: the month it was terminated (`yyyymm`, empty while live); `dointr`, the month
//!   it was introduced, when present;
//!
//! and ignores the other columns. Pseudo-codes (`E99999999`, `L99999999`, `M99999999`) are "no
//! such area".

use std::io::Read;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::{Loaded, code, column, end, spawn_reader};
use crate::domain::Postcode;
use crate::error::ApiResult;
use crate::ingest::jobs::LineProblem;
use crate::sql::Sql;

/// One postcode, as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub postcode: String,
    pub district: Option<String>,
    pub lsoa11: Option<String>,
    pub lsoa21: Option<String>,
    pub introduced: Option<i32>,
    pub terminated: Option<i32>,
}

struct Columns {
    pcds: usize,
    district: usize,
    lsoa11: Option<usize>,
    lsoa21: Option<usize>,
    dointr: Option<usize>,
    doterm: usize,
}

fn columns(header: &[String]) -> Result<Columns, String> {
    let need = |names: &[&str], what: &str| {
        column(header, names)
            .ok_or_else(|| format!("no `{}` column ({what}): is this the NSPL's CSV?", names[0]))
    };
    let district = column(header, &["laua"]).or_else(|| {
        // Editions from 2025 name the district column by its year: lad25cd.
        header.iter().position(|h| {
            let h = h.to_ascii_lowercase();
            h.len() == 7 && h.starts_with("lad") && h.ends_with("cd")
        })
    });
    let cols = Columns {
        pcds: need(&["pcds"], "the postcode")?,
        district: district
            .ok_or_else(|| "no `laua` column (the district): is this the NSPL's CSV?".to_owned())?,
        lsoa11: column(header, &["lsoa11", "lsoa11cd"]),
        lsoa21: column(header, &["lsoa21", "lsoa21cd"]),
        dointr: column(header, &["dointr"]),
        doterm: need(&["doterm"], "the month a postcode was terminated")?,
    };
    if cols.lsoa11.is_none() && cols.lsoa21.is_none() {
        return Err("no `lsoa21` or `lsoa11` column (the LSOA): is this the NSPL's CSV?".into());
    }
    Ok(cols)
}

/// A month as NSPL writes it, `yyyymm`; empty is `None`.
fn month(
    record: &csv::StringRecord,
    at: Option<usize>,
    line: u64,
    name: &str,
) -> Result<Option<i32>, LineProblem> {
    let raw = at.and_then(|i| record.get(i)).unwrap_or("").trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i32>()
        .ok()
        .filter(|m| raw.len() == 6 && (1..=12).contains(&(m % 100)) && *m >= 180_001)
        .map(Some)
        .ok_or_else(|| {
            LineProblem::bad(
                line,
                Some(name),
                format!("`{raw}` is not a month written yyyymm"),
            )
        })
}

fn row(c: &Columns, record: &csv::StringRecord, line: u64) -> Result<Option<Row>, LineProblem> {
    let raw = record.get(c.pcds).unwrap_or("");
    let postcode = Postcode::parse(raw).map_err(|e| LineProblem::bad(line, Some("pcds"), e.0))?;
    Ok(Some(Row {
        postcode: postcode.to_string(),
        district: code(record, Some(c.district), line, "laua")?,
        lsoa11: code(record, c.lsoa11, line, "lsoa11")?,
        lsoa21: code(record, c.lsoa21, line, "lsoa21")?,
        introduced: month(record, c.dointr, line, "dointr")?,
        terminated: month(record, Some(c.doterm), line, "doterm")?,
    }))
}

/// Loads an NSPL file: every postcode in it, added or replaced, in one transaction; nothing
/// when a row is bad. An LSOA the file has no column for is left as an earlier load set it.
pub async fn load(db: &DatabaseConnection, input: impl Read + Send + 'static) -> ApiResult<Loaded> {
    let (mut rx, reader) = spawn_reader(input, columns, row);
    let txn = crate::db::begin_write(db)
        .await
        .context("Failed to start loading postcodes")?;
    let (mut written, mut terminated) = (0u64, 0u64);
    while let Some(batch) = rx.recv().await {
        written += batch.len() as u64;
        terminated += batch.iter().filter(|r| r.terminated.is_some()).count() as u64;
        txn.execute_raw(upsert(&batch).statement(txn.get_database_backend()))
            .await
            .context("Failed to write postcodes")?;
    }
    let ended = reader.await.context("The NSPL reader stopped")?;
    end(
        txn,
        ended,
        written,
        format!("{terminated} of them terminated"),
    )
    .await
}

fn upsert(rows: &[Row]) -> Sql {
    let values = Sql::join(
        rows.iter().map(|r| {
            Sql::format(
                "({}, {}, {}, {}, {}, {})",
                [
                    Sql::value(r.postcode.clone()),
                    Sql::value(r.district.clone()),
                    Sql::value(r.lsoa11.clone()),
                    Sql::value(r.lsoa21.clone()),
                    Sql::value(r.introduced),
                    Sql::value(r.terminated),
                ],
            )
        }),
        ", ",
    );
    Sql::format(
        "INSERT INTO postcodes (postcode, district_code, lsoa11_code, lsoa21_code, introduced, \
           terminated) VALUES {} \
         ON CONFLICT (postcode) DO UPDATE SET district_code = excluded.district_code, \
           lsoa11_code = COALESCE(excluded.lsoa11_code, postcodes.lsoa11_code), \
           lsoa21_code = COALESCE(excluded.lsoa21_code, postcodes.lsoa21_code), \
           introduced = excluded.introduced, terminated = excluded.terminated",
        [values],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(csv: &str) -> Result<Vec<Row>, Vec<LineProblem>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(csv.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let cols = columns(&header).map_err(|r| vec![LineProblem::bad(1, None, r)])?;
        let mut out = vec![];
        let mut problems = vec![];
        for r in reader.records() {
            let r = r.unwrap();
            let line = r.position().unwrap().line();
            match row(&cols, &r, line) {
                Ok(Some(x)) => out.push(x),
                Ok(None) => {}
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn reads_the_2025_layout() {
        let csv = "pcd,pcd2,pcds,dointr,doterm,usertype,oseast1m,osnrth1m,osgrdind,oa21,cty,ced,laua,ward,nhser,ctry,rgn,pcon,ttwa,itl,park,lsoa21,msoa21,wz11,sicbl,bua24,ruc21,oac11,lat,long,lep1,lep2,pfa,imd,icb\n\
            \"B694HE \",\"B69  4HE\",\"B69 4HE\",\"199001\",\"\",\"0\",\"399000\",\"0289000\",\"1\",\"E00000001\",\"E99999999\",\"E99999999\",\"E08000028\",\"E05001234\",\"E40000008\",\"E92000001\",\"E12000005\",\"E14001234\",\"E30000169\",\"E06000001\",\"E65000001\",\"E01009999\",\"E02001234\",\"E33000001\",\"E38000001\",\"E63000001\",\"UN1\",\"3B1\",52.5,-2.0,\"E37000001\",\"\",\"E23000014\",1234,\"E54000001\"\n\
            \"GY1 1AA\",\"GY1  1AA\",\"GY1 1AA\",\"198001\",\"201506\",\"0\",\"\",\"\",\"9\",\"\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L93000001\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"L99999999\",\"\",\"\",49.4,-2.5,\"L99999999\",\"\",\"L99999999\",0,\"L99999999\"\n";
        let r = rows(csv).unwrap();
        assert_eq!(r[0].postcode, "B69 4HE");
        assert_eq!(r[0].district.as_deref(), Some("E08000028"));
        assert_eq!(r[0].lsoa21.as_deref(), Some("E01009999"));
        assert_eq!((r[0].lsoa11.clone(), r[0].terminated), (None, None));
        assert_eq!(r[0].introduced, Some(199_001));
        assert_eq!(
            (r[1].district.clone(), r[1].terminated),
            (None, Some(201_506))
        );
    }

    #[test]
    fn reads_the_2020_layout_and_names_bad_rows() {
        let head = "pcd,pcd2,pcds,dointr,doterm,usertype,oseast1m,osnrth1m,osgrdind,oa11,cty,ced,laua,ward,hlthau,nhser,ctry,rgn,pcon,eer,teclec,ttwa,pct,nuts,park,lsoa11,msoa11,wz11,ccg,bua11,buasd11,ru11ind,oac11,lat,long,lep1,lep2,pfa,imd,calncv,stp\n";
        let good = "DY1 1AA,DY1  1AA,DY1 1AA,198001,,0,394000,290000,1,E00000002,E99999999,E99999999,E08000027,E05000001,E18000005,E40000008,E92000001,E12000005,E14000001,E15000005,E24000001,E30000001,E16000001,E05000001,E99999999,E01009000,E02001000,E33000001,E38000001,E34000001,E35000001,A1,1A1,52.5,-2.1,E37000001,,E23000014,100,E56000001,E54000001\n";
        let r = rows(&format!("{head}{good}")).unwrap();
        assert_eq!(r[0].lsoa11.as_deref(), Some("E01009000"));
        let bad = good
            .replace("DY1 1AA,198001,,", "DY1 1AA,198001,2020-06,")
            .replacen("DY1 1AA", "NOPE", 1);
        let p = rows(&format!("{head}{good}{bad}")).unwrap_err();
        assert_eq!((p[0].line, p[0].column.as_deref()), (3, Some("doterm")));
        assert!(rows("postcode,district\nB1 1AA,E08000025\n").is_err());
    }
}
