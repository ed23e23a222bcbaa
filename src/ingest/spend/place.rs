//! Where each line's supplier is, worked out as the lines stream past (PostgreSQL's single
//! write), and what the switch needs to know about the lines once they have all passed.
//!
//! A line's place comes from its postcode through the postcode lookup, or from the district
//! given when no postcode is; a postcode the lookup does not know, or knows to have been
//! terminated before the period began, leaves it unknown. (SQLite's switch says the same in
//! SQL: `super::move_lines`; the API tests hold both to the same answers.)
//!
//! The postcodes of each batch of lines are looked up in one statement, with what was found
//! (or not found) kept in a bounded map in front: a file's suppliers repeat, so most lines
//! are answered from it, and memory stays flat however long the file.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use entity::vocab::PlaceSource;
use sea_orm::sqlx;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};

use super::derive::Sums;
use super::lines::StagedLine;
use super::{MAX_PLACE_UNKNOWN, PlaceUnknown};
use crate::error::ApiResult;

/// Postcodes kept between batches. At this bound the map starts again (a file of more
/// distinct postcodes than this costs more lookups, never more memory): about 10 MB.
const MAX_KEPT: usize = 100_000;

/// A row of the lookup: postcode, district, LSOA 2021, LSOA 2011, terminated.
type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
);

/// What the lookup says of one postcode, whatever the period.
#[derive(Debug, Clone)]
pub struct Entry {
    pub district: Option<String>,
    pub lsoa: Option<String>,
    /// yyyymm
    pub terminated: Option<i32>,
}

/// A line's resolved place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub district: Option<&'a str>,
    pub lsoa: Option<&'a str>,
    pub source: PlaceSource,
}

/// Whether no postcode lookup is loaded (then every postcode's place is unknown, and the
/// reason says so).
pub async fn lookup_empty<C: ConnectionTrait>(db: &C) -> ApiResult<bool> {
    Ok(entity::postcodes::Entity::find()
        .select_only()
        .column(entity::postcodes::Column::Postcode)
        .into_tuple::<String>()
        .one(db)
        .await
        .context("Failed to look at the postcode lookup")?
        .is_none())
}

/// Why a line's place is unknown.
pub fn unknown_reason(
    postcode: Option<&str>,
    entry: Option<&Entry>,
    start_month: i32,
    period: &str,
    lookup_empty: bool,
) -> String {
    match (postcode, entry) {
        (None, _) => "no postcode or district given".into(),
        (Some(_), None) if lookup_empty => {
            "no postcode lookup is loaded (anchorfed geography load nspl)".into()
        }
        (Some(p), None) => format!("postcode {p} is not in the postcode lookup"),
        (Some(p), Some(e)) => match e.terminated {
            Some(t) if t < start_month => format!(
                "postcode {p} was terminated in {}-{:02}, before {period} began",
                t / 100,
                t % 100
            ),
            _ if e.district.is_none() => {
                format!("the postcode lookup places {p} in no district")
            }
            _ => format!("postcode {p} did not resolve"),
        },
    }
}

/// Resolves lines' places for one file and keeps the counts and sums the switch records.
pub struct Places {
    pool: sqlx::PgPool,
    /// Opened at the first lookup and kept for the file: one round trip a lookup, not an
    /// acquisition (and its check) as well. Detached from the pool, as the import's own
    /// connection is, so that uploads, however many, never hold the connections requests
    /// are served from.
    conn: Option<sqlx::PgConnection>,
    known: HashMap<String, Option<Entry>>,
    start_month: i32,
    period: String,
    lookup_empty: bool,
    network: HashSet<String>,
    region: HashSet<String>,
    pub tally: Tally,
}

/// What the lines came to.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub sums: Sums,
    pub unknown_lines: i64,
    pub unknown_total: i64,
    /// The first [`MAX_PLACE_UNKNOWN`] lines whose place is unknown, in file order.
    pub unknown: Vec<PlaceUnknown>,
}

impl Places {
    /// For a file of `network`'s for a period starting in `start_month` (yyyymm).
    pub async fn new(
        db: &DatabaseConnection,
        network: &entity::networks::Model,
        start_month: i32,
        period: String,
    ) -> ApiResult<Self> {
        let lookup_empty = lookup_empty(db).await?;
        let network_districts = entity::network_districts::Entity::find()
            .select_only()
            .column(entity::network_districts::Column::DistrictCode)
            .filter(entity::network_districts::Column::NetworkId.eq(network.id))
            .into_tuple::<String>()
            .all(db)
            .await
            .context("Failed to read the network's districts")?;
        let region_districts = entity::region_districts::Entity::find()
            .select_only()
            .column(entity::region_districts::Column::DistrictCode)
            .filter(entity::region_districts::Column::RegionId.eq(network.region_id))
            .into_tuple::<String>()
            .all(db)
            .await
            .context("Failed to read the region's districts")?;
        Ok(Self {
            pool: db.get_postgres_connection_pool().clone(),
            conn: None,
            known: HashMap::new(),
            start_month,
            period,
            lookup_empty,
            network: network_districts.into_iter().collect(),
            region: region_districts.into_iter().collect(),
            tally: Tally::default(),
        })
    }

    /// Looks up the postcodes of `batch` not seen yet, in one statement.
    pub async fn learn(&mut self, batch: &[StagedLine]) -> ApiResult<()> {
        let mut missing: Vec<&str> = batch
            .iter()
            .filter_map(|l| l.postcode.as_deref())
            .filter(|p| !self.known.contains_key(*p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        if self.known.len() + missing.len() > MAX_KEPT {
            self.known.clear();
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(
                self.pool
                    .acquire()
                    .await
                    .context("Failed to get a connection to look up postcodes")?
                    .detach(),
            ),
        };
        let found: Vec<Row> = sqlx::query_as(
            "SELECT postcode, district_code, lsoa21_code, lsoa11_code, terminated \
                 FROM postcodes WHERE postcode = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await
        .context("Failed to look up the postcodes of an import's lines")?;
        for p in missing {
            self.known.insert(p.to_owned(), None);
        }
        for (postcode, district, lsoa21, lsoa11, terminated) in found {
            self.known.insert(
                postcode,
                Some(Entry {
                    district,
                    lsoa: lsoa21.or(lsoa11),
                    terminated,
                }),
            );
        }
        Ok(())
    }

    /// Ends the lookups: what the lines came to.
    pub async fn finish(self) -> Tally {
        if let Some(conn) = self.conn {
            use sqlx::Connection as _;
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing an import's lookup connection failed");
            }
        }
        self.tally
    }

    /// The place of `line` (its postcode learnt), counted into the tally.
    pub fn place<'a>(&'a mut self, line: &'a StagedLine) -> Place<'a> {
        let place = match (&line.postcode, &line.district) {
            (None, Some(d)) => Place {
                district: Some(d),
                lsoa: None,
                source: PlaceSource::District,
            },
            (None, None) => Place {
                district: None,
                lsoa: None,
                source: PlaceSource::Unknown,
            },
            (Some(p), _) => match self.known.get(p.as_str()).and_then(Option::as_ref) {
                Some(e) if e.terminated.is_none_or(|t| t >= self.start_month) => Place {
                    district: e.district.as_deref(),
                    lsoa: e.lsoa.as_deref(),
                    source: if e.district.is_some() {
                        PlaceSource::Postcode
                    } else {
                        PlaceSource::Unknown
                    },
                },
                _ => Place {
                    district: None,
                    lsoa: None,
                    source: PlaceSource::Unknown,
                },
            },
        };
        let t = &mut self.tally;
        t.sums.total += line.amount;
        if place.source == PlaceSource::Unknown {
            t.unknown_lines += 1;
            t.unknown_total += line.amount;
            if t.unknown.len() < MAX_PLACE_UNKNOWN {
                let entry = line
                    .postcode
                    .as_deref()
                    .and_then(|p| self.known.get(p))
                    .and_then(Option::as_ref);
                t.unknown.push(PlaceUnknown {
                    line: u64::try_from(line.line).unwrap_or(0),
                    postcode: line.postcode.clone(),
                    reason: unknown_reason(
                        line.postcode.as_deref(),
                        entry,
                        self.start_month,
                        &self.period,
                        self.lookup_empty,
                    ),
                });
            }
        } else if let Some(d) = place.district {
            if self.network.contains(d) {
                t.sums.local += line.amount;
            }
            if self.region.contains(d) {
                t.sums.region += line.amount;
            }
        }
        place
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(lookup_empty: bool) -> Places {
        let known = [
            ("B69 4HE", Some("E08000028"), None),
            ("CV1 1AA", Some("E08000026"), None),
            ("B69 9QZ", Some("E08000028"), Some(202006)),
            ("B70 1AA", Some("E08000028"), Some(202405)),
            ("ZZ1 1ZZ", None, None),
        ];
        Places {
            // Never connected: these tests give the lookup's answers themselves.
            pool: sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://nobody@localhost/none")
                .unwrap_or_else(|e| panic!("{e}")),
            conn: None,
            known: known
                .into_iter()
                .map(|(p, d, t)| {
                    (
                        p.to_owned(),
                        Some(Entry {
                            district: d.map(str::to_owned),
                            lsoa: d.map(|_| "E01009999".to_owned()),
                            terminated: t,
                        }),
                    )
                })
                .chain([("ZZ9 9ZZ".to_owned(), None)])
                .collect(),
            start_month: 202304,
            period: "2023/24".into(),
            lookup_empty,
            network: ["E08000028".to_owned()].into(),
            region: ["E08000028".to_owned(), "E08000026".to_owned()].into(),
            tally: Tally::default(),
        }
    }

    fn line(n: i32, postcode: Option<&str>, district: Option<&str>, amount: i64) -> StagedLine {
        StagedLine {
            line: n,
            supplier: format!("S{n}"),
            supplier_id: format!("{n}"),
            postcode: postcode.map(str::to_owned),
            district: district.map(str::to_owned),
            amount,
            category: None,
            sme: false,
            vcse: false,
            sole_trader: false,
            anchor: false,
        }
    }

    // A runtime, as the (never connected) pool may want one.
    #[tokio::test]
    async fn places_resolve_as_the_switch_on_sqlite_resolves_them() {
        let mut p = places(false);
        let cases = [
            // A postcode the lookup knows: its district and LSOA.
            (
                line(2, Some("B69 4HE"), None, 100),
                Some("E08000028"),
                PlaceSource::Postcode,
            ),
            // A postcode wins over a district given.
            (
                line(3, Some("CV1 1AA"), Some("E08000028"), 200),
                Some("E08000026"),
                PlaceSource::Postcode,
            ),
            // No postcode: the district given.
            (
                line(4, None, Some("E08000026"), 400),
                Some("E08000026"),
                PlaceSource::District,
            ),
            (line(5, None, None, 800), None, PlaceSource::Unknown),
            // Terminated before the period began; terminated after it began still places.
            (
                line(6, Some("B69 9QZ"), None, 1_600),
                None,
                PlaceSource::Unknown,
            ),
            (
                line(7, Some("B70 1AA"), None, 3_200),
                Some("E08000028"),
                PlaceSource::Postcode,
            ),
            (
                line(8, Some("ZZ9 9ZZ"), Some("E08000028"), 6_400),
                None,
                PlaceSource::Unknown,
            ),
            (
                line(9, Some("ZZ1 1ZZ"), None, 12_800),
                None,
                PlaceSource::Unknown,
            ),
        ];
        for (l, district, source) in &cases {
            let got = p.place(l);
            assert_eq!(
                (got.district, got.source),
                (*district, *source),
                "line {}",
                l.line
            );
        }
        let t = &p.tally;
        assert_eq!(t.sums.total, 25_500);
        // In the network (E08000028): lines 2 and 7; in the region also 3 and 4.
        assert_eq!(t.sums.local, 100 + 3_200);
        assert_eq!(t.sums.region, 100 + 200 + 400 + 3_200);
        assert_eq!(
            (t.unknown_lines, t.unknown_total),
            (4, 800 + 1_600 + 6_400 + 12_800)
        );
        let reasons: Vec<(u64, &str)> = t
            .unknown
            .iter()
            .map(|u| (u.line, u.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (5, "no postcode or district given"),
                (
                    6,
                    "postcode B69 9QZ was terminated in 2020-06, before 2023/24 began"
                ),
                (8, "postcode ZZ9 9ZZ is not in the postcode lookup"),
                (9, "the postcode lookup places ZZ1 1ZZ in no district"),
            ]
        );
    }

    #[tokio::test]
    async fn unknown_lines_are_all_counted_and_the_first_named() {
        let mut p = places(true);
        for n in 0..(MAX_PLACE_UNKNOWN as i32 + 50) {
            let l = line(n + 2, Some("ZZ9 9ZZ"), None, 1);
            p.place(&l);
        }
        assert_eq!(p.tally.unknown_lines, MAX_PLACE_UNKNOWN as i64 + 50);
        assert_eq!(p.tally.unknown.len(), MAX_PLACE_UNKNOWN);
        assert!(
            p.tally.unknown[0]
                .reason
                .contains("no postcode lookup is loaded")
        );
    }
}
