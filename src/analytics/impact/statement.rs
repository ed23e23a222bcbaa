//! The impact statement: common table expressions evaluated once, then one part per kind of
//! row joined by `UNION ALL`. Every part returns the same named columns ([`COLUMNS`]); a part
//! names only the columns it fills and [`part`] fills the rest with their defaults, so a new
//! column is one line here and one in each part that fills it.
//!
//! - `pe`: each requested year's last day for each year-end month;
//! - `elig`: the institutions that were members of the networks in scope on their period's
//!   last day, once per cell (per network only when grouping by network);
//! - `ei`: each eligible institution once, with the columns the policy's predicates read;
//! - `vis`: the versions of returns of eligible institutions current for this reader at
//!   `asOf`, by the policy module's predicate — the only place access is decided;
//! - `vals`: the reported (not "not reported") values of those returns, with the level at
//!   which the reader sees each, and whether each is derived from spend lines (`drv`);
//! - `pan`: with `panel`, the institutions that reported a metric in every requested year.
//!
//! The expressions are `MATERIALIZED` (SQLite 3.35+, PostgreSQL 12+): left inline, SQLite
//! re-evaluated `vis` and its correlated version checks once for every eligible row.

use sea_orm::{DbBackend, FromQueryResult};

use super::Spec;
use crate::analytics::spend::{LineSum, Lines};
use crate::auth::Caller;
use crate::domain::MetricGroup;
use crate::domain::Verb;
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::sql::Sql;
use entity::vocab::PlaceSource;

/// What a row of the statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Eligible institutions of a cell (`contributors` holds the count).
    Eligible,
    /// A sum cell.
    Sum,
    /// A ratio cell (`metric` is the ratio; `total` its numerator, `denominator` below it).
    Ratio,
    /// A steward network (in `network`) of eligible institutions the reader sees nothing of.
    Withheld,
    /// A steward network whose values the answer used, for the access log.
    Touched,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Eligible,
        Kind::Sum,
        Kind::Ratio,
        Kind::Withheld,
        Kind::Touched,
    ];

    fn tag(self) -> &'static str {
        match self {
            Kind::Eligible => "'E'",
            Kind::Sum => "'S'",
            Kind::Ratio => "'R'",
            Kind::Withheld => "'W'",
            Kind::Touched => "'T'",
        }
    }

    fn parse(tag: &str) -> ApiResult<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.tag().trim_matches('\'') == tag)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("impact row of kind `{tag}`")))
    }
}

/// One row of the statement, by the names in [`COLUMNS`].
#[derive(Debug, Clone, FromQueryResult)]
pub struct Row {
    kind: String,
    pub metric: String,
    pub breakdown: String,
    pub period: String,
    pub network: i64,
    pub sector: String,
    pub district: String,
    /// A sum, or a ratio's numerator sum.
    pub total: Option<i64>,
    /// A ratio's denominator sum.
    pub denominator: Option<i64>,
    pub contributors: i64,
    /// Contributors the reader sees only at AGGREGATE.
    pub aggregate_only: i64,
    /// Over aggregate-only contributors: the sum and the two largest values (of a ratio's
    /// numerator), and the same of a ratio's denominator.
    pub agg_sum: Option<i64>,
    pub agg_largest: Option<i64>,
    pub agg_second: Option<i64>,
    pub agg_den_sum: Option<i64>,
    pub agg_den_largest: Option<i64>,
    pub agg_den_second: Option<i64>,
    /// The strictest thresholds among the aggregate-only contributors' stewards (null: the
    /// defaults).
    pub min_contributors: Option<i64>,
    pub dominance_percent: Option<i64>,
    pub people_count_min: Option<i64>,
    pub people_count_round: Option<i64>,
    /// The aggregate-only contributors as `institution:steward:value:networks` (a ratio's:
    /// `institution:steward:numerator:denominator:networks`), comma-separated, in no
    /// particular order, `networks` being those it belonged to, `;`-separated: the
    /// differencing guard needs who they are, the rule for each network's view who knows them.
    pub agg_members: Option<String>,
    /// Contributors whose value rests on spend lines.
    pub derived: i64,
}

impl Row {
    pub fn kind(&self) -> ApiResult<Kind> {
        Kind::parse(&self.kind)
    }
}

/// Every part's columns, in order, with the value a part that does not fill one gives it.
/// The cell's dimensions come first: `GROUP BY 2, 3, 4, 5, 6, 7` ([`CELL`]) relies on it.
const COLUMNS: [(&str, &str); 23] = [
    ("kind", "''"),
    ("metric", "''"),
    ("breakdown", "''"),
    ("period", "''"),
    ("network", "CAST(0 AS BIGINT)"),
    ("sector", "''"),
    ("district", "''"),
    ("total", NULL),
    ("denominator", NULL),
    ("contributors", "CAST(0 AS BIGINT)"),
    ("aggregate_only", "CAST(0 AS BIGINT)"),
    ("agg_sum", NULL),
    ("agg_largest", NULL),
    ("agg_second", NULL),
    ("agg_den_sum", NULL),
    ("agg_den_largest", NULL),
    ("agg_den_second", NULL),
    ("min_contributors", NULL),
    ("dominance_percent", NULL),
    ("people_count_min", NULL),
    ("people_count_round", NULL),
    ("agg_members", "CAST(NULL AS TEXT)"),
    ("derived", "CAST(0 AS BIGINT)"),
];

const NULL: &str = "CAST(NULL AS BIGINT)";

/// Groups by the cell: metric, breakdown and the dimensions (columns 2 to 7).
const CELL: &str = " GROUP BY 2, 3, 4, 5, 6, 7";

/// `SELECT` of every column, `filled` where given (by name), the default elsewhere, then
/// `rest` (its `FROM` and what follows).
fn part(kind: Kind, filled: Vec<(&'static str, Sql)>, rest: Sql) -> Sql {
    debug_assert!(
        filled
            .iter()
            .all(|(name, _)| COLUMNS.iter().any(|(c, _)| c == name)),
        "a part fills a column the statement does not have"
    );
    let mut filled = filled;
    let columns = COLUMNS.iter().map(|&(name, default)| {
        let expr = match filled.iter().position(|(n, _)| *n == name) {
            Some(at) => filled.swap_remove(at).1,
            None if name == "kind" => Sql::raw(kind.tag()),
            None => Sql::raw(default),
        };
        Sql::format("{} AS {}", [expr, Sql::raw(name)])
    });
    let columns: Vec<Sql> = columns.collect();
    Sql::format("SELECT {} {}", [Sql::join(columns, ", "), rest])
}

/// Where a part reads a cell's dimensions from.
#[derive(Clone, Copy)]
enum Source {
    /// `e`, a row of `elig`.
    Elig,
    /// `x`, an inner select that names them as `elig` does.
    Inner,
}

/// The cell's dimensions: period and network always, sector and district when grouped by,
/// constant otherwise.
fn dimensions(s: &Spec, from: Source) -> Vec<(&'static str, Sql)> {
    let [period, network, sector, district] = match from {
        Source::Elig => ["e.period", "e.network", "e.sector", "e.district"],
        Source::Inner => ["x.period", "x.network", "x.sector", "x.district"],
    };
    let grouped = |by: bool, column: &'static str| Sql::raw(if by { column } else { "''" });
    vec![
        ("period", Sql::raw(period)),
        ("network", Sql::raw(network)),
        ("sector", grouped(s.by_sector, sector)),
        ("district", grouped(s.by_district, district)),
    ]
}

/// The sector and district of a row of `elig` when grouped by them, constant otherwise.
fn grouped_sector_district(s: &Spec) -> (&'static str, &'static str) {
    (
        if s.by_sector { "e.sector" } else { "''" },
        if s.by_district { "e.district" } else { "''" },
    )
}

/// The whole statement for `caller`.
pub fn build(
    backend: DbBackend,
    caller: &Caller,
    s: &Spec,
    sums: &[String],
    value_metrics: &[String],
) -> ApiResult<Sql> {
    let reach = policy::returns::reach(caller);
    let withheld = withheld(caller, &reach);
    let members = AggregateOnlyMembers(backend);
    let ctes = ctes(caller, &reach, s, value_metrics, members)?;
    let mut parts = vec![eligible(caller, &reach, s)];
    if !sums.is_empty() {
        parts.push(sum_cells(s, sums, members));
    }
    for (ratio, (num, den)) in &s.ratio_parts {
        parts.push(ratio_cells(s, ratio, num, den, members));
    }
    parts.push(withheld);
    parts.push(touched());
    let mut with = vec![reach.cte()];
    with.extend(ctes);
    Ok(Sql::format(
        "WITH {} {}",
        [Sql::join(with, ", "), Sql::join(parts, " UNION ALL ")],
    ))
}

/// For the spend analysis split below institutions: how many distinct cell places (period,
/// network and sector when grouped by, bucket) the lines this reader may count fall in, up
/// to `cap` + 1. One pass over those lines, cheaper than the statement it guards, so an answer
/// too large to give is refused before its cells are worked out. The common table
/// expressions are the statement's; those this does not read are not evaluated.
pub fn cell_places(
    backend: DbBackend,
    caller: &Caller,
    s: &Spec,
    value_metrics: &[String],
    cap: usize,
) -> ApiResult<Option<Sql>> {
    let Some(lines) = s.lines.as_ref().filter(|l| l.bucketed()) else {
        return Ok(None);
    };
    let reach = policy::returns::reach(caller);
    let members = AggregateOnlyMembers(backend);
    let ctes = ctes(caller, &reach, s, value_metrics, members)?;
    let (sector, _) = grouped_sector_district(s);
    let mut with = vec![reach.cte()];
    with.extend(ctes);
    Ok(Some(Sql::format(
        "WITH {} SELECT CAST(COUNT(*) AS BIGINT) AS n FROM (SELECT DISTINCT e.period, e.network, \
           {}, {} FROM fl JOIN elig e ON e.inst = fl.inst AND e.period = fl.period \
           JOIN spend_lines l ON l.file_id = fl.fid WHERE fl.lvl > 0 LIMIT {}) x",
        [
            Sql::join(with, ", "),
            Sql::raw(sector),
            bucket(lines),
            Sql::value(i64::try_from(cap).unwrap_or(i64::MAX).saturating_add(1)),
        ],
    )))
}

/// The common table expressions after `reach`.
/// `(period, month, end_date)` rows: each requested year's last day for each year-end month.
fn period_ends(s: &Spec) -> ApiResult<Vec<Sql>> {
    let mut rows = vec![];
    for y in &s.years {
        for month in 1u8..=12 {
            let end = y.end_date(month).ok_or_else(|| {
                ApiError::bad_input("input.years", format!("{y} has no end date"))
            })?;
            rows.push(Sql::format(
                "({}, {}, {})",
                [
                    Sql::value(y.to_string()),
                    Sql::value(i32::from(month)),
                    Sql::value(end),
                ],
            ));
        }
    }
    Ok(rows)
}

// Long because it is the text of six common table expressions, each commented at the top of
// this file; splitting it would scatter one statement's SQL.
fn ctes(
    caller: &Caller,
    reach: &policy::returns::Reach,
    s: &Spec,
    value_metrics: &[String],
    members: AggregateOnlyMembers,
) -> ApiResult<Vec<Sql>> {
    let period_ends = period_ends(s)?;
    let network = Sql::raw(if s.by_network {
        "m.network_id"
    } else {
        "CAST(0 AS BIGINT)"
    });
    let eligible_returns = policy::returns::ReturnRows::of_institutions("ei");
    let visible = policy::returns::visible_returns(
        caller,
        reach,
        &eligible_returns,
        s.as_of,
        Verb::ReadImpact,
    )?;
    let chosen = policy::returns::ChosenReturns::new("vis", "ei");
    let level = policy::returns::value_level(caller, reach, &chosen, Sql::raw("mt.metric_group"));
    let by_residence = value_metrics.iter().any(|m| m == "employees_by_residence");
    let mut out = vec![
        Sql::format(
            "pe(period, month, end_date) AS (VALUES {})",
            [Sql::join(period_ends, ", ")],
        ),
        Sql::format(
            "elig AS MATERIALIZED (SELECT DISTINCT i.id AS inst, pe.period AS period, pe.end_date AS pend, \
               {} AS network, i.sector AS sector, i.home_district_code AS district, \
               i.steward_network_id AS steward \
             FROM institutions i JOIN pe ON pe.month = i.year_end_month \
             JOIN memberships m ON m.institution_id = i.id \
             WHERE m.network_id IN ({}) AND m.status = 'ACTIVE' AND m.from_date <= pe.end_date \
               AND (m.to_date IS NULL OR m.to_date >= pe.end_date))",
            [network, Sql::list(s.networks.iter().copied())],
        ),
        Sql::raw(
            "ei AS MATERIALIZED (SELECT DISTINCT inst AS id, steward AS steward_network_id FROM elig)",
        ),
        Sql::format(
            "vis AS MATERIALIZED (SELECT r.id AS rid, r.institution_id AS institution_id, \
               r.period AS period, r.period_end AS period_end, r.submitted_at AS submitted_at \
             FROM {} WHERE ({}) AND r.period IN ({}))",
            [
                eligible_returns.from(),
                visible,
                Sql::list(s.years.iter().map(|y| y.to_string())),
            ],
        ),
    ];
    if let Some(lines) = &s.lines {
        out.extend(spend_values(caller, reach, &chosen, lines, members.0));
    } else {
        out.push(Sql::format(
            "{} AS MATERIALIZED (SELECT inst, period, metric, breakdown, value, lvl, drv FROM ( \
               SELECT r.institution_id AS inst, r.period AS period, v.metric_code AS metric, \
                 v.breakdown AS breakdown, v.value AS value, {} AS lvl, \
                 CASE WHEN v.method LIKE {} THEN 1 ELSE 0 END AS drv \
               FROM {} \
               JOIN return_values v ON v.return_id = r.rid JOIN metrics mt ON mt.code = v.metric_code \
               WHERE v.metric_code IN ({}) AND v.value IS NOT NULL) x WHERE x.lvl > 0)",
            [
                Sql::raw(if by_residence { "lv" } else { "vals" }),
                level,
                Sql::value(format!("{}%", crate::ingest::spend::derive::METHOD_PREFIX)),
                chosen.from(),
                Sql::list(value_metrics.iter().cloned()),
            ],
        ));
    }
    if by_residence {
        // The share in the two most deprived deciles, as its own breakdown.
        out.push(Sql::raw(
            "vals AS MATERIALIZED (SELECT inst, period, metric, breakdown, value, lvl, drv FROM lv \
               UNION ALL SELECT inst, period, metric, 'imd_decile:1-2', SUM(value), MIN(lvl), MAX(drv) FROM lv \
               WHERE metric = 'employees_by_residence' AND breakdown IN ('imd_decile:1', 'imd_decile:2') \
               GROUP BY inst, period, metric)",
        ));
    }
    // Which networks' admins see each eligible institution in detail for its period: its
    // steward and the networks it belonged to on the period's last day (rules 1 and 2).
    out.push(Sql::format(
        "kn AS MATERIALIZED (SELECT k.inst AS inst, k.period AS period, {} AS nets FROM ( \
           SELECT DISTINCT e.inst AS inst, e.period AS period, m.network_id AS net \
           FROM (SELECT DISTINCT inst, period, pend FROM elig) e JOIN memberships m \
             ON m.institution_id = e.inst AND m.status = 'ACTIVE' AND m.from_date <= e.pend \
             AND (m.to_date IS NULL OR m.to_date >= e.pend)) k GROUP BY k.inst, k.period)",
        [members.networks()],
    ));
    if s.panel {
        out.push(Sql::format(
            "pan AS MATERIALIZED (SELECT inst, metric FROM vals GROUP BY inst, metric \
               HAVING COUNT(DISTINCT period) = {})",
            [Sql::value(i64::try_from(s.years.len()).unwrap_or(0))],
        ));
    }
    Ok(out)
}

/// A line's bucket, as [`crate::analytics::spend::Bucket`] reads it back: the parts grouped
/// by, `|`-separated, the category last.
fn bucket(lines: &Lines) -> Sql {
    let mut parts = vec![];
    if lines.by_supplier_district {
        parts.push(Sql::format(
            "'supplier_district:' || COALESCE(CASE WHEN l.place <> {} THEN l.district_code END, 'unknown')",
            [Sql::value(PlaceSource::Unknown.as_str())],
        ));
    }
    if lines.by_size {
        parts.push(Sql::raw(
            "'size:' || CASE WHEN l.sole_trader THEN 'sole_trader' WHEN l.sme THEN 'sme' ELSE 'large' END",
        ));
    }
    if lines.by_category {
        parts.push(Sql::raw("'category:' || COALESCE(l.category, '')"));
    }
    if parts.is_empty() {
        Sql::raw("''")
    } else {
        Sql::join(parts, " || '|' || ")
    }
}

/// The spend analysis's values: for each visible return, the spend file behind it (the
/// latest switched in by the time that version was submitted: lines and the return they
/// restate are written in one transaction) and the level of its `SPEND` values (`fl`); each
/// institution's sums over its lines per bucket (`lb`: summed by file first, an integer, then
/// given the institution, period and level, which cost a third more when grouped on over ten
/// million lines); and those sums as `vals` rows, one metric code a sum.
fn spend_values(
    caller: &Caller,
    reach: &policy::returns::Reach,
    chosen: &policy::returns::ChosenReturns,
    lines: &Lines,
    backend: DbBackend,
) -> Vec<Sql> {
    let level = policy::returns::value_level(
        caller,
        reach,
        chosen,
        Sql::value(MetricGroup::Spend.as_str()),
    );
    let unknown = || Sql::value(PlaceSource::Unknown.as_str());
    let bucket = bucket(lines);
    let sums: Vec<(LineSum, Sql)> = {
        let mut wanted: Vec<LineSum> = lines.sums.values().copied().collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|sum| {
                // `FILTER` rather than `CASE`: PostgreSQL skips the rows instead of adding
                // zeros (a tenth of the aggregate's time over ten million lines).
                let flagged = |flag: &'static str| {
                    Sql::format(
                        "CAST(COALESCE(SUM(l.amount) FILTER (WHERE {}), 0) AS BIGINT)",
                        [Sql::raw(flag)],
                    )
                };
                let expr = match sum {
                    LineSum::Total => Sql::raw("CAST(SUM(l.amount) AS BIGINT)"),
                    // A line whose place is unknown has no district.
                    // The geography as a relation (`geo`): one hashed probe a line, where a
                    // list of bound codes is compared one by one (BENCHMARKS.md, part 3).
                    LineSum::InGeography => Sql::raw(
                        "CAST(COALESCE(SUM(l.amount) FILTER \
                           (WHERE l.district_code IN (SELECT code FROM geo)), 0) AS BIGINT)",
                    ),
                    LineSum::Sme => flagged("l.sme"),
                    LineSum::Vcse => flagged("l.vcse"),
                    LineSum::Anchor => flagged("l.anchor"),
                    LineSum::PlaceUnknown => Sql::format(
                        "CAST(COALESCE(SUM(l.amount) FILTER (WHERE l.place = {}), 0) AS BIGINT)",
                        [unknown()],
                    ),
                    LineSum::Suppliers => Sql::raw("CAST(COUNT(DISTINCT l.supplier_id) AS BIGINT)"),
                };
                (sum, expr)
            })
            .collect()
    };
    let column = |sum: LineSum| -> &'static str {
        match sum {
            LineSum::Total => "s_total",
            LineSum::InGeography => "s_in",
            LineSum::Sme => "s_sme",
            LineSum::Vcse => "s_vcse",
            LineSum::Anchor => "s_anchor",
            LineSum::Suppliers => "s_suppliers",
            LineSum::PlaceUnknown => "s_unknown",
        }
    };
    let picked: Vec<Sql> = sums
        .iter()
        .map(|(sum, _)| Sql::format("s.{}", [Sql::raw(column(*sum))]))
        .collect();
    let columns = sums
        .into_iter()
        .map(|(sum, expr)| Sql::format("{} AS {}", [expr, Sql::raw(column(sum))]));
    let rows = lines.sums.iter().map(|(code, sum)| {
        Sql::format(
            "SELECT inst, period, {} AS metric, breakdown, {} AS value, lvl, 0 AS drv FROM lb",
            [Sql::value(code.clone()), Sql::raw(column(*sum))],
        )
    });
    let geo = if lines.geography.is_empty() {
        Sql::raw("geo(code) AS (SELECT CAST(NULL AS TEXT) WHERE 1 = 0)")
    } else {
        let rows = lines
            .geography
            .iter()
            .map(|code| Sql::format("({})", [Sql::value(code.clone())]));
        Sql::format("geo(code) AS (VALUES {})", [Sql::join(rows, ", ")])
    };
    vec![
        geo,
        Sql::format(
            "fl AS MATERIALIZED (SELECT r.institution_id AS inst, r.period AS period, {} AS lvl, \
               (SELECT f.id FROM spend_files f WHERE f.institution_id = r.institution_id \
                  AND f.period = r.period AND f.submitted_at <= r.submitted_at \
                ORDER BY f.version DESC LIMIT 1) AS fid \
             FROM {})",
            [level, chosen.from()],
        ),
        match backend {
            // Each file summed on its own, by a plain aggregate over its lines (grouped only
            // when split by a line's district, size or category): the work of a hand-written
            // sum, where one hash aggregate keyed on the file took 4 of 7 s over ten million
            // lines (BENCHMARKS.md, spend part 3).
            DbBackend::Postgres => Sql::format(
                "lb AS MATERIALIZED (SELECT fl.inst AS inst, fl.period AS period, fl.lvl AS lvl, \
                   s.breakdown AS breakdown, {} \
                 FROM fl CROSS JOIN LATERAL (SELECT {} AS breakdown, {} FROM spend_lines l \
                   WHERE l.file_id = fl.fid {}) s \
                 WHERE fl.lvl > 0)",
                [
                    Sql::join(picked, ", "),
                    bucket,
                    Sql::join(columns, ", "),
                    Sql::raw(if lines.bucketed() {
                        "GROUP BY 1"
                    } else {
                        "HAVING COUNT(*) > 0"
                    }),
                ],
            ),
            // SQLite has no LATERAL.
            _ => Sql::format(
                "lb AS MATERIALIZED (SELECT fl.inst AS inst, fl.period AS period, fl.lvl AS lvl, \
                   s.breakdown AS breakdown, {} \
                 FROM fl JOIN (SELECT l.file_id AS fid, {} AS breakdown, {} FROM spend_lines l \
                   WHERE l.file_id IN (SELECT fid FROM fl WHERE lvl > 0) GROUP BY 1, 2) s \
                   ON s.fid = fl.fid \
                 WHERE fl.lvl > 0)",
                [Sql::join(picked, ", "), bucket, Sql::join(columns, ", ")],
            ),
        },
        Sql::format(
            "vals AS MATERIALIZED ({})",
            [Sql::join(rows, " UNION ALL ")],
        ),
    ]
}

/// Eligible institutions per cell (per metric only under `panel`).
/// With, as `aggregate_only`, the eligible institutions the reader may see only in aggregate.
fn eligible(caller: &Caller, reach: &policy::returns::Reach, s: &Spec) -> Sql {
    let institutions = policy::returns::InstitutionRows::of("ei");
    let only_aggregate = policy::returns::seen_only_in_aggregate(
        caller,
        reach,
        &institutions,
        Sql::raw("e.period"),
        Sql::raw("e.pend"),
    );
    let mut cols = dimensions(s, Source::Elig);
    cols.push(("contributors", Sql::raw("COUNT(DISTINCT e.inst)")));
    cols.push((
        "aggregate_only",
        Sql::format(
            "COUNT(DISTINCT CASE WHEN {} THEN e.inst END)",
            [only_aggregate],
        ),
    ));
    let panel = if s.panel {
        cols.push(("metric", Sql::raw("pan.metric")));
        Sql::raw("JOIN pan ON pan.inst = e.inst")
    } else {
        Sql::raw("")
    };
    part(
        Kind::Eligible,
        cols,
        Sql::format(
            "FROM elig e JOIN {} ON i.id = e.inst {}{}",
            [institutions.from(), panel, Sql::raw(CELL)],
        ),
    )
}

/// Per cell, over the aggregate-only contributors (`x.agg = 1`): the strictest thresholds
/// among their stewards, and who they are, whose, with which values (`values`).
fn thresholds(members: AggregateOnlyMembers, values: &'static str) -> Vec<(&'static str, Sql)> {
    vec![
        (
            "min_contributors",
            Sql::raw("CAST(MAX(CASE WHEN x.agg = 1 THEN x.mc END) AS BIGINT)"),
        ),
        (
            "dominance_percent",
            Sql::raw("CAST(MAX(CASE WHEN x.agg = 1 THEN x.dp END) AS BIGINT)"),
        ),
        (
            "people_count_min",
            Sql::raw("CAST(MAX(CASE WHEN x.agg = 1 THEN x.pm END) AS BIGINT)"),
        ),
        (
            "people_count_round",
            Sql::raw("CAST(MAX(CASE WHEN x.agg = 1 THEN x.pr END) AS BIGINT)"),
        ),
        ("agg_members", members.column(values)),
    ]
}

/// The list of aggregate-only contributors, in the backend's string aggregate.
#[derive(Clone, Copy)]
struct AggregateOnlyMembers(DbBackend);

impl AggregateOnlyMembers {
    /// `values`: the text of the value columns after the institution and its steward, such as
    /// `':' || CAST(x.value AS TEXT)`.
    fn column(self, values: &'static str) -> Sql {
        let each = Sql::format(
            "CASE WHEN x.agg = 1 THEN CAST(x.inst AS TEXT) || ':' || CAST(x.steward AS TEXT) {} \
               || ':' || COALESCE(x.nets, '') END",
            [Sql::raw(values)],
        );
        self.aggregate(each, ",")
    }

    /// `kn`'s list of networks, `;`-separated.
    fn networks(self) -> Sql {
        self.aggregate(Sql::raw("CAST(k.net AS TEXT)"), ";")
    }

    fn aggregate(self, each: Sql, separator: &'static str) -> Sql {
        let separator = Sql::raw(match separator {
            ";" => "';'",
            _ => "','",
        });
        match self.0 {
            DbBackend::Postgres => Sql::format("STRING_AGG({}, {})", [each, separator]),
            _ => Sql::format("GROUP_CONCAT({}, {})", [each, separator]),
        }
    }
}

/// Contributors whose value (or one of a ratio's parts) is derived from spend lines.
const DERIVED: &str = "COUNT(DISTINCT CASE WHEN x.derived_part = 1 THEN x.inst END)";

/// Contributors the reader sees only at AGGREGATE (`x.agg = 1`).
const AGGREGATE_ONLY: &str = "COUNT(DISTINCT CASE WHEN x.agg = 1 THEN x.inst END)";

/// Over the aggregate-only contributors: the sum of `value`, and its largest and second
/// largest by `rank` (a row number within the cell, largest first), as the named columns.
fn aggregate_only_side(
    [sum, largest, second]: [&'static str; 3],
    value: &'static str,
    rank: &'static str,
) -> [(&'static str, Sql); 3] {
    let v = || Sql::raw(value);
    let r = || Sql::raw(rank);
    [
        (
            sum,
            Sql::format(
                "CAST(SUM(CASE WHEN x.agg = 1 THEN {} END) AS BIGINT)",
                [v()],
            ),
        ),
        (
            largest,
            Sql::format(
                "CAST(MAX(CASE WHEN x.agg = 1 AND {} = 1 THEN {} END) AS BIGINT)",
                [r(), v()],
            ),
        ),
        (
            second,
            Sql::format(
                "CAST(MAX(CASE WHEN x.agg = 1 AND {} = 2 THEN {} END) AS BIGINT)",
                [r(), v()],
            ),
        ),
    ]
}

/// The per-institution columns [`thresholds`] reads, and the join that brings them.
const THRESHOLD_COLUMNS: &str = "th.min_contributors AS mc, \
    th.dominance_percent AS dp, th.people_count_min AS pm, th.people_count_round AS pr";
const THRESHOLD_JOIN: &str = "LEFT JOIN disclosure_thresholds th ON th.network_id = e.steward";

/// Keeps a value only where its institution is in the metric's panel.
fn panel_join(s: &Spec) -> Sql {
    Sql::raw(if s.panel {
        "JOIN pan p ON p.inst = e.inst AND p.metric = v.metric"
    } else {
        ""
    })
}

/// The sum cells of every summed metric.
fn sum_cells(s: &Spec, sums: &[String], members: AggregateOnlyMembers) -> Sql {
    let mut cols = vec![
        ("metric", Sql::raw("x.metric")),
        ("breakdown", Sql::raw("x.breakdown")),
    ];
    cols.extend(dimensions(s, Source::Inner));
    cols.extend([
        ("total", Sql::raw("CAST(SUM(x.value) AS BIGINT)")),
        ("contributors", Sql::raw("COUNT(DISTINCT x.inst)")),
        ("aggregate_only", Sql::raw(AGGREGATE_ONLY)),
        ("derived", Sql::raw(DERIVED)),
    ]);
    cols.extend(aggregate_only_side(
        ["agg_sum", "agg_largest", "agg_second"],
        "x.value",
        "x.rk",
    ));
    cols.extend(thresholds(members, "|| ':' || CAST(x.value AS TEXT)"));
    let (sector, district) = grouped_sector_district(s);
    // The inner select names the cell's dimensions as the outer one reads them (`x.…`).
    let inner_dims = Sql::format(
        "e.period AS period, e.network AS network, {} AS sector, {} AS district",
        [Sql::raw(sector), Sql::raw(district)],
    );
    let partition = Sql::format(
        "e.period, e.network, {}, {}",
        [Sql::raw(sector), Sql::raw(district)],
    );
    part(
        Kind::Sum,
        cols,
        Sql::format(
            "FROM (SELECT v.metric AS metric, v.breakdown AS breakdown, {}, e.inst AS inst, \
                 e.steward AS steward, kn.nets AS nets, v.value AS value, v.drv AS derived_part, CASE WHEN v.lvl = 1 THEN 1 ELSE 0 END AS agg, {}, \
                 ROW_NUMBER() OVER (PARTITION BY v.metric, v.breakdown, {}, v.lvl \
                   ORDER BY v.value DESC) AS rk \
               FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period {} {} \
               LEFT JOIN kn ON kn.inst = e.inst AND kn.period = e.period \
               WHERE v.metric IN ({})) x{}",
            [
                inner_dims,
                Sql::raw(THRESHOLD_COLUMNS),
                partition,
                panel_join(s),
                Sql::raw(THRESHOLD_JOIN),
                Sql::list(sums.iter().cloned()),
                Sql::raw(CELL),
            ],
        ),
    )
}

/// The cells of one ratio: each institution's two parts side by side in one pass over `vals`
/// (a self-join of the materialized CTE, whose size the planner cannot see, went quadratic).
fn ratio_cells(s: &Spec, ratio: &str, num: &str, den: &str, members: AggregateOnlyMembers) -> Sql {
    let mut cols = vec![
        ("metric", Sql::value(ratio.to_owned())),
        ("breakdown", Sql::raw("x.breakdown")),
    ];
    cols.extend(dimensions(s, Source::Inner));
    cols.extend([
        ("total", Sql::raw("CAST(SUM(x.nv) AS BIGINT)")),
        ("denominator", Sql::raw("CAST(SUM(x.dv) AS BIGINT)")),
        ("contributors", Sql::raw("COUNT(DISTINCT x.inst)")),
        ("aggregate_only", Sql::raw(AGGREGATE_ONLY)),
        ("derived", Sql::raw(DERIVED)),
    ]);
    cols.extend(aggregate_only_side(
        ["agg_sum", "agg_largest", "agg_second"],
        "x.nv",
        "x.rn",
    ));
    cols.extend(aggregate_only_side(
        ["agg_den_sum", "agg_den_largest", "agg_den_second"],
        "x.dv",
        "x.rd",
    ));
    cols.extend(thresholds(
        members,
        "|| ':' || CAST(x.nv AS TEXT) || ':' || CAST(x.dv AS TEXT)",
    ));
    let (sector, district) = grouped_sector_district(s);
    part(
        Kind::Ratio,
        cols,
        Sql::format(
            "FROM (SELECT y.*, \
                 ROW_NUMBER() OVER (PARTITION BY y.breakdown, y.period, y.network, y.sector, y.district, y.agg \
                   ORDER BY y.nv DESC) AS rn, \
                 ROW_NUMBER() OVER (PARTITION BY y.breakdown, y.period, y.network, y.sector, y.district, y.agg \
                   ORDER BY y.dv DESC) AS rd \
               FROM (SELECT e.period AS period, e.network AS network, {} AS sector, {} AS district, \
                   e.inst AS inst, e.steward AS steward, kn.nets AS nets, {}, v.breakdown AS breakdown, \
                   MAX(CASE WHEN v.metric = {} THEN v.value END) AS nv, \
                   MAX(CASE WHEN v.metric = {} THEN v.value END) AS dv, \
                   CASE WHEN MIN(v.lvl) = 1 THEN 1 ELSE 0 END AS agg, MAX(v.drv) AS derived_part \
                 FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period \
                   AND v.metric IN ({}, {}) {} {} {} \
                 LEFT JOIN kn ON kn.inst = e.inst AND kn.period = e.period \
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 \
                 HAVING COUNT(DISTINCT v.metric) = 2) y) x{}",
            [
                Sql::raw(sector),
                Sql::raw(district),
                Sql::raw(THRESHOLD_COLUMNS),
                Sql::value(num.to_owned()),
                Sql::value(den.to_owned()),
                Sql::value(num.to_owned()),
                Sql::value(den.to_owned()),
                // Impact's ratios are of totals; the spend analysis's, of each bucket's sums.
                Sql::raw(if s.lines.is_some() {
                    ""
                } else {
                    "AND v.breakdown = ''"
                }),
                panel_join(s),
                Sql::raw(THRESHOLD_JOIN),
                Sql::raw(CELL),
            ],
        ),
    )
}

/// Steward networks of eligible institutions that no rule lets this reader see.
fn withheld(caller: &Caller, reach: &policy::returns::Reach) -> Sql {
    let institutions = policy::returns::InstitutionRows::of("ei");
    let access = policy::returns::has_access(
        caller,
        reach,
        &institutions,
        Sql::raw("e.period"),
        Sql::raw("e.pend"),
    );
    part(
        Kind::Withheld,
        vec![("network", Sql::raw("e.steward"))],
        Sql::format(
            "FROM elig e JOIN {} ON i.id = e.inst WHERE NOT ({}) GROUP BY e.steward",
            [institutions.from(), access],
        ),
    )
}

/// Steward networks whose values this answer used: for the access log.
fn touched() -> Sql {
    part(
        Kind::Touched,
        vec![("network", Sql::raw("e.steward"))],
        Sql::raw(
            "FROM elig e JOIN vals v ON v.inst = e.inst AND v.period = e.period GROUP BY e.steward",
        ),
    )
}
