//! A randomized check of `impact` against a deliberately naive model: random networks,
//! memberships over time, versioned returns in every status, readers of every kind. Every
//! cell's eligible, contributors and value must equal what the model computes in plain Rust
//! from the rules as DESIGN.md states them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use entity::vocab::{MembershipStatus, ReturnStatus, Sector};
use entity::{institutions, memberships, network_districts, networks, return_values, returns};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use serde_json::json;

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_with};

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[derive(Clone)]
pub(crate) struct Inst {
    pub(crate) id: i64,
    pub(crate) steward: usize,
    pub(crate) month: u32,
    /// (network index, from, to)
    pub(crate) members: Vec<(usize, NaiveDate, Option<NaiveDate>)>,
}

#[derive(Clone)]
pub(crate) struct Ver {
    pub(crate) version: i32,
    pub(crate) submitted: DateTime<Utc>,
    pub(crate) published: Option<DateTime<Utc>>,
    pub(crate) rejected_at: Option<DateTime<Utc>>,
    pub(crate) values: BTreeMap<&'static str, Option<i64>>,
}

pub(crate) const YEARS: [(&str, i32); 2] = [("2021/22", 2022), ("2022/23", 2023)];
pub(crate) const METRICS: [&str; 3] = [
    "headcount",
    "procurement_spend_total",
    "procurement_spend_local",
];

pub(crate) fn end_of(year_end: i32, month: u32) -> NaiveDate {
    let first_next = if month == 12 {
        NaiveDate::from_ymd_opt(year_end + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year_end, month + 1, 1)
    };
    first_next.unwrap().pred_opt().unwrap()
}

pub(crate) struct World {
    pub(crate) nets: Vec<(i64, String, bool)>,
    pub(crate) insts: Vec<Inst>,
    /// (institution index, period) -> versions
    pub(crate) rets: BTreeMap<(usize, &'static str), Vec<Ver>>,
}

pub(crate) async fn build(db: &DatabaseConnection, rng: &mut Rng, region_id: i64) -> World {
    let now = Utc::now();
    let mut nets = vec![];
    for n in 0..3 {
        let approval = rng.chance(50);
        let row = networks::ActiveModel {
            key: Set(format!("n{n}-{}", rng.below(1_000_000))),
            name: Set(format!("Network {n}")),
            short_name: Set(format!("N{n}")),
            region_id: Set(region_id),
            established: Set(2019),
            population: Set(1000),
            model: Set(String::new()),
            membership_rule: Set(String::new()),
            governance: Set(String::new()),
            imd_rank: Set(None),
            imd_rank_of: Set(None),
            requires_approval: Set(approval),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        network_districts::ActiveModel {
            network_id: Set(row.id),
            district_code: Set("E08000025".into()),
        }
        .insert(db)
        .await
        .unwrap();
        nets.push((row.id, row.key, approval));
    }
    let froms = [
        NaiveDate::from_ymd_opt(2019, 4, 1).unwrap(),
        NaiveDate::from_ymd_opt(2021, 6, 1).unwrap(),
        NaiveDate::from_ymd_opt(2022, 7, 1).unwrap(),
    ];
    let mut insts = vec![];
    for k in 0..8 {
        let steward = rng.below(3) as usize;
        let month = if rng.chance(25) { 7 } else { 3 };
        let row = institutions::ActiveModel {
            key: Set(format!("i{k}-{}", rng.below(1_000_000))),
            name: Set(format!("Fictional institution {k}")),
            sector: Set(if k % 2 == 0 {
                Sector::NhsTrust
            } else {
                Sector::LocalAuthority
            }),
            home_district_code: Set("E08000025".into()),
            year_end_month: Set(month as i16),
            steward_network_id: Set(nets[steward].0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        let mut members = vec![(steward, froms[0], None)];
        for n in 0..3 {
            if n != steward && rng.chance(45) {
                let from = froms[rng.below(3) as usize];
                let to = rng
                    .chance(25)
                    .then(|| NaiveDate::from_ymd_opt(2023, 1, 31).unwrap())
                    .filter(|t| *t > from);
                members.push((n, from, to));
            }
        }
        for (n, from, to) in &members {
            memberships::ActiveModel {
                institution_id: Set(row.id),
                network_id: Set(nets[*n].0),
                from_date: Set(*from),
                to_date: Set(*to),
                status: Set(MembershipStatus::Active),
                created_at: Set(now),
                accepted_at: Set(Some(now)),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
        }
        insts.push(Inst {
            id: row.id,
            steward,
            month,
            members,
        });
    }
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut rets = BTreeMap::new();
    for (ii, inst) in insts.iter().enumerate() {
        for (period, year_end) in YEARS {
            if !rng.chance(75) {
                continue;
            }
            let mut vers = vec![];
            for v in 1..=(1 + rng.below(3) as i32) {
                let submitted = t0 + Duration::days(i64::from(v) * 10 + rng.below(5) as i64);
                let status = rng.below(3);
                let decided = submitted + Duration::days(2);
                let approval = nets[inst.steward].2;
                let (st, published, rejected_at) = match (approval, status) {
                    (false, _) => (ReturnStatus::Submitted, Some(submitted), None),
                    (true, 0) => (ReturnStatus::Submitted, None, None),
                    (true, 1) => (ReturnStatus::Approved, Some(decided), None),
                    _ => (ReturnStatus::Rejected, None, Some(decided)),
                };
                let mut values = BTreeMap::new();
                for m in METRICS {
                    values.insert(m, rng.chance(80).then(|| rng.below(1_000_000) as i64));
                }
                // Local spend is part of total spend, as validation would insist.
                if let (Some(Some(t)), Some(Some(l))) = (
                    values.get("procurement_spend_total"),
                    values.get("procurement_spend_local"),
                ) && l > t
                {
                    values.insert("procurement_spend_local", Some(*t));
                }
                let start = end_of(year_end - 1, inst.month).succ_opt().unwrap();
                let r = returns::ActiveModel {
                    institution_id: Set(inst.id),
                    period: Set(period.into()),
                    period_start: Set(start),
                    period_end: Set(end_of(year_end, inst.month)),
                    version: Set(v),
                    status: Set(st),
                    submitted_at: Set(submitted),
                    submitted_by: Set("model".into()),
                    published_at: Set(published),
                    decided_at: Set(rejected_at.or(published.filter(|_| approval))),
                    ..Default::default()
                }
                .insert(db)
                .await
                .unwrap();
                for (m, val) in &values {
                    return_values::ActiveModel {
                        return_id: Set(r.id),
                        metric_code: Set((*m).into()),
                        breakdown: Set(String::new()),
                        value: Set(*val),
                        not_reported: Set(val.is_none()),
                        ..Default::default()
                    }
                    .insert(db)
                    .await
                    .unwrap();
                }
                vers.push(Ver {
                    version: v,
                    submitted,
                    published,
                    rejected_at,
                    values,
                });
            }
            rets.insert((ii, period), vers);
        }
    }
    // Written around the service, so mark the current versions as its writes do.
    for sql in migration::m20261130_000009_current_returns::REFRESH_ALL {
        sea_orm::ConnectionTrait::execute_unprepared(db, sql)
            .await
            .unwrap();
    }
    World { nets, insts, rets }
}

pub(crate) fn member_on(inst: &Inst, net: usize, day: NaiveDate) -> bool {
    inst.members
        .iter()
        .any(|(n, f, t)| *n == net && *f <= day && t.is_none_or(|t| t >= day))
}

/// The model: (eligible, contributors, value) per (metric, period, network or None).
#[allow(clippy::type_complexity)]
fn model(
    w: &World,
    reader: Option<(usize, bool)>,
    scope: &[usize],
    by_network: bool,
    at: DateTime<Utc>,
) -> (
    BTreeMap<(String, String, Option<usize>), (i64, i64, Option<i128>)>,
    BTreeSet<usize>,
) {
    let mut out = BTreeMap::new();
    let mut withheld = BTreeSet::new();
    let groups: Vec<Option<usize>> = if by_network {
        scope.iter().map(|n| Some(*n)).collect()
    } else {
        vec![None]
    };
    for (period, year_end) in YEARS {
        for g in &groups {
            let nets: Vec<usize> = match g {
                Some(n) => vec![*n],
                None => scope.to_vec(),
            };
            let eligible: Vec<usize> = (0..w.insts.len())
                .filter(|&i| {
                    nets.iter()
                        .any(|&n| member_on(&w.insts[i], n, end_of(year_end, w.insts[i].month)))
                })
                .collect();
            // The version of each eligible institution's return this reader sees.
            let seen = |i: usize| -> Option<&Ver> {
                let inst = &w.insts[i];
                let (rn, admin) = reader?;
                let vers = w.rets.get(&(i, period))?;
                if inst.steward == rn {
                    vers.iter()
                        .filter(|v| v.submitted <= at && v.rejected_at.is_none_or(|r| r > at))
                        .max_by_key(|v| v.version)
                } else if admin && member_on(inst, rn, end_of(year_end, inst.month)) {
                    vers.iter()
                        .filter(|v| v.published.is_some_and(|p| p <= at))
                        .max_by_key(|v| v.version)
                } else {
                    None
                }
            };
            for &i in &eligible {
                let inst = &w.insts[i];
                let access = reader.is_some_and(|(rn, admin)| {
                    inst.steward == rn
                        || (admin && member_on(inst, rn, end_of(year_end, inst.month)))
                });
                if !access {
                    withheld.insert(inst.steward);
                }
            }
            for m in METRICS {
                let reported: Vec<i64> = eligible
                    .iter()
                    .filter_map(|&i| seen(i).and_then(|v| v.values[m]))
                    .collect();
                let value =
                    (!reported.is_empty()).then(|| reported.iter().map(|v| i128::from(*v)).sum());
                out.insert(
                    (m.to_owned(), period.to_owned(), *g),
                    (eligible.len() as i64, reported.len() as i64, value),
                );
            }
            // The ratio: over institutions that reported both parts.
            let both: Vec<(i64, i64)> = eligible
                .iter()
                .filter_map(|&i| {
                    seen(i).and_then(|v| {
                        Some((
                            v.values["procurement_spend_local"]?,
                            v.values["procurement_spend_total"]?,
                        ))
                    })
                })
                .collect();
            let (n, d): (i128, i128) = both.iter().fold((0, 0), |(a, b), (l, t)| {
                (a + i128::from(*l), b + i128::from(*t))
            });
            let ratio = (!both.is_empty() && d != 0).then(|| {
                anchorfed::domain::quantity::ratio(n, d, 4)
                    .unwrap()
                    .parse::<f64>()
                    .map(|f| (f * 10_000.0).round() as i128)
                    .unwrap()
            });
            out.insert(
                ("local_spend_share".into(), period.to_owned(), *g),
                (eligible.len() as i64, both.len() as i64, ratio),
            );
        }
    }
    (out, withheld)
}

async fn impact_equals_a_naive_model(backend: Backend) {
    let app: TestApp = spawn_with(backend, true, |_| {}).await;
    let region_id = {
        use sea_orm::EntityTrait;
        entity::regions::Entity::find()
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let cases = 40;
    let mut checked = 0;
    for seed in 1..=cases {
        let mut rng = Rng(0x9E3779B97F4A7C15 ^ (seed * 7919));
        let w = build(&app.db, &mut rng, region_id).await;
        let reader = match rng.below(4) {
            0 => None,
            k => Some((rng.below(3) as usize, k != 1)),
        };
        let token = match reader {
            None => app.token(As::Analyst("E47000007"), "").await,
            Some((n, true)) => app.token(As::Admin(&w.nets[n].1), "").await,
            Some((n, false)) => app.token(As::Submitter(&w.nets[n].1), "").await,
        };
        let mut scope: Vec<usize> = (0..3).filter(|_| rng.chance(60)).collect();
        if scope.is_empty() {
            scope.push(rng.below(3) as usize);
        }
        let by_network = rng.chance(50);
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
            + Duration::days(rng.below(45) as i64);
        let ids: Vec<String> = scope.iter().map(|&n| w.nets[n].1.clone()).collect();
        let d = app
            .query_as(&token, "query($i: ImpactInput!) { impact(input: $i) { withheldNetworks { key } cells { metric { code } year network { key } value contributors eligible } } }",
                json!({"i": {"networkIds": ids, "years": ["2021/22", "2022/23"], "asOf": at.to_rfc3339(),
                    "metrics": ["headcount", "procurement_spend_total", "procurement_spend_local", "local_spend_share"],
                    "groupBy": if by_network { json!(["NETWORK"]) } else { json!([]) }}}))
            .await;
        let (expected, withheld) = model(&w, reader, &scope, by_network, at);
        let cells = d["impact"]["cells"].as_array().unwrap();
        let key_index: BTreeMap<&str, usize> = w
            .nets
            .iter()
            .enumerate()
            .map(|(i, n)| (n.1.as_str(), i))
            .collect();
        let mut seen = BTreeSet::new();
        for c in cells {
            let metric = c["metric"]["code"].as_str().unwrap().to_owned();
            let period = c["year"].as_str().unwrap().to_owned();
            let g = c["network"]["key"].as_str().map(|k| key_index[k]);
            let (eligible, contributors, value) = expected
                .get(&(metric.clone(), period.clone(), g))
                .unwrap_or_else(|| panic!("seed {seed}: unexpected cell {c}"));
            let got_value = c["value"].as_str().map(|v| {
                if metric == "local_spend_share" {
                    (v.parse::<f64>().unwrap() * 10_000.0).round() as i128
                } else {
                    // Shown with the metric's scale: the digits are the minor units.
                    v.replace('.', "").parse::<i128>().unwrap()
                }
            });
            assert_eq!(
                (
                    c["eligible"].as_i64().unwrap(),
                    c["contributors"].as_i64().unwrap(),
                    got_value
                ),
                (*eligible, *contributors, *value),
                "seed {seed}: cell {c} (reader {reader:?}, scope {scope:?}, asOf {at})"
            );
            seen.insert((metric, period, g));
            checked += 1;
        }
        for (k, (eligible, _, _)) in &expected {
            assert!(
                seen.contains(k) || *eligible == 0,
                "seed {seed}: missing cell {k:?}"
            );
        }
        let got: BTreeSet<usize> = d["impact"]["withheldNetworks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| key_index[n["key"].as_str().unwrap()])
            .collect();
        assert_eq!(got, withheld, "seed {seed}: withheld networks");
    }
    assert!(checked > cases as usize * 8, "{checked}");
}

both_databases!(impact_equals_a_naive_model);
