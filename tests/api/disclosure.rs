//! Disclosure control under attack (issue 11; docs/access.md "Disclosure control"). Each test
//! plays an attack an outsider or an insider would, against the real server, then checks from
//! the database's truth that no value seen only in aggregate came out to within 10%:
//!
//! - subset differencing: every set of the region's networks, four groupings, the five spend
//!   metrics and the two spend shares, anonymously, as measured on f3bde48;
//! - repetition and averaging: the same cells asked again and in other shapes;
//! - the insider: a network admin who hides a huge restatement of its own institution behind
//!   approval, reads before and after (and at two `asOf` instants), and solves for the rest.
//! - the red team's insider: a network admin who plants institutions of its own next to
//!   another network's and resubmits their returns to redraw the noise;
//! - the third red team's oracle: a network admin who plants a large institution and two tiny
//!   ones and searches for the value at which the dominance rule flips a cell.
//!
//! The truth (who was a member on the period's last day, who reported what) is read from the
//! tables directly, not through the code under test.

use std::collections::{BTreeMap, BTreeSet};

use anchorfed::domain::FinancialYear;
use entity::vocab::{MembershipStatus, ReturnStatus};
use entity::{institutions, memberships, metrics, networks, regions, return_values, returns};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, with_demo_returns};

const WMCA: &str = "E47000007";
const YEAR: &str = "2022/23";
const SUMS: [&str; 5] = [
    "procurement_spend_total",
    "procurement_spend_local",
    "procurement_spend_region",
    "spend_sme",
    "spend_vcse",
];
/// Each share, its numerator and its denominator.
const RATIOS: [(&str, &str, &str); 2] = [
    (
        "local_spend_share",
        "procurement_spend_local",
        "procurement_spend_total",
    ),
    (
        "region_spend_share",
        "procurement_spend_region",
        "procurement_spend_total",
    ),
];
const IMPACT: &str = "query($i: ImpactInput!) { impact(input: $i) { cells { metric { code } \
    year network { key } sector district { code } value suppressed suppressionReason \
    contributors eligible } } }";

/// What the tables say, for one period.
struct Truth {
    /// The region's networks, key to id.
    networks: BTreeMap<String, i64>,
    insts: BTreeMap<i64, Inst>,
    /// (institution, metric) to the published value, in the metric's unit.
    values: BTreeMap<(i64, String), f64>,
}

struct Inst {
    key: String,
    sector: String,
    district: String,
    steward: i64,
    /// Networks it was an active member of on its period's last day.
    member_of: BTreeSet<i64>,
}

async fn truth(app: &TestApp) -> Truth {
    truth_for(app, YEAR).await
}

async fn truth_for(app: &TestApp, period: &str) -> Truth {
    let db = &app.db;
    let region = regions::Entity::find()
        .filter(regions::Column::Code.eq(WMCA))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let networks: BTreeMap<String, i64> = networks::Entity::find()
        .filter(networks::Column::RegionId.eq(region.id))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.key, n.id))
        .collect();
    let year: FinancialYear = period.parse().unwrap();
    let ms = memberships::Entity::find().all(db).await.unwrap();
    let mut insts = BTreeMap::new();
    for i in institutions::Entity::find().all(db).await.unwrap() {
        let end = year
            .end_date(u8::try_from(i.year_end_month).unwrap())
            .unwrap();
        let member_of = ms
            .iter()
            .filter(|m| {
                m.institution_id == i.id
                    && m.status == MembershipStatus::Active
                    && m.from_date <= end
                    && m.to_date.is_none_or(|t| t >= end)
            })
            .map(|m| m.network_id)
            .collect();
        insts.insert(
            i.id,
            Inst {
                key: i.key,
                sector: i.sector.as_str().to_owned(),
                district: i.home_district_code,
                steward: i.steward_network_id,
                member_of,
            },
        );
    }
    let scale: BTreeMap<String, i16> = metrics::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.code, m.scale))
        .collect();
    // The published version of each institution's return: the latest published, not rejected.
    let mut latest: BTreeMap<i64, returns::Model> = BTreeMap::new();
    for r in returns::Entity::find()
        .filter(returns::Column::Period.eq(period))
        .all(db)
        .await
        .unwrap()
    {
        if r.published_at.is_none() || r.status == ReturnStatus::Rejected {
            continue;
        }
        if latest
            .get(&r.institution_id)
            .is_none_or(|l| l.version < r.version)
        {
            latest.insert(r.institution_id, r);
        }
    }
    let by_return: BTreeMap<i64, i64> = latest.values().map(|r| (r.id, r.institution_id)).collect();
    let mut values = BTreeMap::new();
    for v in return_values::Entity::find()
        .filter(return_values::Column::ReturnId.is_in(by_return.keys().copied()))
        .filter(return_values::Column::Breakdown.eq(""))
        .all(db)
        .await
        .unwrap()
    {
        if let Some(value) = v.value {
            let units = value as f64 / 10f64.powi(i32::from(scale[&v.metric_code]));
            values.insert((by_return[&v.return_id], v.metric_code), units);
        }
    }
    Truth {
        networks,
        insts,
        values,
    }
}

/// A cell as an attacker records it: where it is (the networks it covers, its sector and
/// district) and what it showed.
#[derive(Debug, Clone)]
struct Seen {
    metric: String,
    year: String,
    networks: BTreeSet<i64>,
    sector: Option<String>,
    district: Option<String>,
    value: Option<f64>,
    reason: Option<String>,
}

impl Truth {
    /// The institutions a cell covers that reported every one of `metrics`.
    fn members(&self, c: &Seen, metrics: &[&str]) -> BTreeSet<i64> {
        self.insts
            .iter()
            .filter(|(_, i)| {
                !i.member_of.is_disjoint(&c.networks)
                    && c.sector.as_ref().is_none_or(|s| *s == i.sector)
                    && c.district.as_ref().is_none_or(|d| *d == i.district)
            })
            .map(|(id, _)| *id)
            .filter(|id| {
                metrics
                    .iter()
                    .all(|m| self.values.contains_key(&(*id, (*m).to_owned())))
            })
            .collect()
    }

    fn sum(&self, who: &BTreeSet<i64>, metric: &str) -> f64 {
        who.iter()
            .map(|id| self.values[&(*id, metric.to_owned())])
            .sum()
    }

    /// The metrics a cell's value rests on: itself, or a ratio's two parts.
    fn parts(metric: &str) -> Vec<&'static str> {
        match RATIOS.iter().find(|(r, ..)| *r == metric) {
            Some((_, n, d)) => vec![n, d],
            None => SUMS.iter().copied().filter(|m| *m == metric).collect(),
        }
    }
}

/// Asks `impact` (anonymously without a token) and records its cells.
async fn ask(app: &TestApp, token: Option<&str>, truth: &Truth, input: Value) -> Vec<Seen> {
    let body = json!({ "i": input });
    let data = match token {
        Some(t) => app.query_as(t, IMPACT, body).await,
        None => app.query(IMPACT, body).await,
    };
    let scope: BTreeSet<i64> = match input["networkIds"].as_array() {
        Some(keys) => keys
            .iter()
            .map(|k| truth.networks[k.as_str().unwrap()])
            .collect(),
        None => truth.networks.values().copied().collect(),
    };
    data["impact"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Seen {
            metric: c["metric"]["code"].as_str().unwrap().to_owned(),
            year: c["year"].as_str().unwrap().to_owned(),
            networks: match c["network"]["key"].as_str() {
                Some(k) => BTreeSet::from([truth.networks[k]]),
                None => scope.clone(),
            },
            sector: c["sector"].as_str().map(str::to_owned),
            district: c["district"]["code"].as_str().map(str::to_owned),
            value: c["value"].as_str().map(|v| v.parse().unwrap()),
            reason: c["suppressionReason"].as_str().map(str::to_owned),
        })
        .collect()
}

/// A value the attack estimates for one institution, and what it really is.
struct Estimate {
    institution: i64,
    metric: String,
    estimate: f64,
}

/// Every estimate an attacker gets by differencing two released cells of the same metric
/// whose contributors differ by exactly one institution; ratios turned back into their
/// numerators with a released total over the same contributors (the narrowing).
fn differences(truth: &Truth, seen: &[Seen]) -> Vec<Estimate> {
    // (metric, contributors) -> released value, sums and numerators recovered from ratios.
    let mut released: BTreeMap<(String, BTreeSet<i64>), f64> = BTreeMap::new();
    for c in seen.iter().filter(|c| c.value.is_some()) {
        if SUMS.contains(&c.metric.as_str()) {
            let who = truth.members(c, &[&c.metric]);
            released.insert((c.metric.clone(), who), c.value.unwrap_or_default());
        }
    }
    for c in seen.iter().filter(|c| c.value.is_some()) {
        if let Some((_, num, den)) = RATIOS.iter().find(|(r, ..)| *r == c.metric) {
            let who = truth.members(c, &[num, den]);
            if let Some(total) = released.get(&((*den).to_owned(), who.clone())) {
                let numerator = c.value.unwrap_or_default() * total;
                released
                    .entry(((*num).to_owned(), who))
                    .or_insert(numerator);
            }
        }
    }
    let mut out = vec![];
    for ((m, big), v_big) in &released {
        for ((m2, small), v_small) in &released {
            if m != m2 || big.len() != small.len() + 1 || !small.is_subset(big) {
                continue;
            }
            let institution = *big.difference(small).next().unwrap();
            out.push(Estimate {
                institution,
                metric: m.clone(),
                estimate: v_big - v_small,
            });
        }
    }
    out
}

/// The estimates that came within 10% of the truth.
fn recovered<'a>(truth: &Truth, estimates: &'a [Estimate]) -> Vec<(&'a Estimate, f64)> {
    estimates
        .iter()
        .filter_map(|e| {
            let real = truth.values[&(e.institution, e.metric.clone())];
            ((e.estimate - real).abs() <= 0.1 * real.abs()).then_some((e, real))
        })
        .collect()
}

/// Released cells of the same metric whose contributors differ by one or two.
fn near_pairs(truth: &Truth, seen: &[Seen]) -> Vec<(String, BTreeSet<i64>, BTreeSet<i64>)> {
    let mut sets: BTreeMap<String, BTreeSet<BTreeSet<i64>>> = BTreeMap::new();
    for c in seen.iter().filter(|c| c.value.is_some()) {
        for part in Truth::parts(&c.metric) {
            let who = truth.members(c, &Truth::parts(&c.metric));
            sets.entry(part.to_owned()).or_default().insert(who);
        }
    }
    let mut out = vec![];
    for (m, all) in &sets {
        for a in all {
            for b in all.range(a.clone()..).skip(1) {
                let differ = a.symmetric_difference(b).count();
                if (1..3).contains(&differ) {
                    out.push((m.clone(), a.clone(), b.clone()));
                }
            }
        }
    }
    out
}

async fn read_all(app: &TestApp, token: &str, truth: &Truth, shapes: &[Value]) -> Vec<Seen> {
    let mut out = vec![];
    for s in shapes {
        out.extend(ask(app, Some(token), truth, s.clone()).await);
    }
    out
}

async fn demo_with_public_aggregates(backend: Backend) -> TestApp {
    let app = with_demo_returns(backend).await;
    let made = anchorfed::sharing::demo_grants(&app.db).await.unwrap();
    assert!(made >= 5, "every demo network grants the public AGGREGATE");
    app
}

fn input(networks: Option<Vec<&str>>, group_by: &[&str], metrics: &[&str]) -> Value {
    let mut i = json!({"years": [YEAR], "metrics": metrics, "groupBy": group_by});
    match networks {
        Some(n) => i["networkIds"] = json!(n),
        None => i["region"] = json!(WMCA),
    }
    i
}

fn all_metrics() -> Vec<&'static str> {
    SUMS.iter()
        .copied()
        .chain(RATIOS.iter().map(|(r, ..)| *r))
        .collect()
}

/// The attack measured on f3bde48: 31 sets of networks x 4 groupings, the spend metrics and
/// shares, anonymously; then every pair of cells one institution apart differenced, with and
/// without the ratio cells.
async fn subset_differencing_recovers_nothing(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let truth = truth(&app).await;
    let keys: Vec<&str> = truth.networks.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "the demo region's networks");
    let metrics = all_metrics();
    let mut seen = vec![];
    let (mut scope_refusals, mut subsets_asked) = (0, 0);
    for mask in 1u32..(1 << keys.len()) {
        let subset: Vec<&str> = (0..keys.len())
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| keys[b])
            .collect();
        for group_by in [&[][..], &["SECTOR"], &["DISTRICT"], &["NETWORK"]] {
            let cells = ask(
                &app,
                None,
                &truth,
                input(Some(subset.clone()), group_by, &metrics),
            )
            .await;
            subsets_asked += 1;
            for c in &cells {
                // A chosen set of networks is not a published dimension.
                if c.networks.len() > 1 && c.networks.len() < keys.len() {
                    assert!(c.value.is_none(), "a set of networks answered: {c:?}");
                    scope_refusals += usize::from(
                        c.reason
                            .as_deref()
                            .is_some_and(|r| r.contains("one network or a whole region")),
                    );
                }
            }
            seen.extend(cells);
        }
    }
    for group_by in [
        &[][..],
        &["SECTOR"],
        &["DISTRICT"],
        &["NETWORK"],
        &["SECTOR", "DISTRICT"],
        &["NETWORK", "SECTOR"],
        &["NETWORK", "DISTRICT"],
    ] {
        seen.extend(ask(&app, None, &truth, input(None, group_by, &metrics)).await);
    }
    // What the attack had to work with: pairs of cells one institution apart, had every cell
    // been answered (the issue found 251).
    let mut all = seen.clone();
    for c in &mut all {
        c.value = Some(0.0);
    }
    let material = near_pairs(&truth, &all).len();
    let released = seen.iter().filter(|c| c.value.is_some()).count();
    let guarded = seen
        .iter()
        .filter(|c| {
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("already released"))
        })
        .count();
    let near = near_pairs(&truth, &seen);
    assert!(
        near.is_empty(),
        "released cells one or two contributors apart: {:?}",
        &near[..near.len().min(5)]
    );
    let estimates = differences(&truth, &seen);
    let hits = recovered(&truth, &estimates);
    assert!(
        hits.is_empty(),
        "recovered to within 10%: {:?}",
        hits.iter()
            .map(|(e, real)| (
                &truth.insts[&e.institution].key,
                &e.metric,
                e.estimate,
                real
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        subsets_asked == 124 && material > 50 && released > 100 && scope_refusals > 100,
        "the attack did not reach the rules: {material} pairs one or two apart before \
         control, {released} cells released, {scope_refusals} refused as sets of networks, \
         {guarded} withheld by the guard"
    );
    eprintln!(
        "subset differencing: {material} candidate pairs, {released} cells released, \
         {scope_refusals} refused as sets of networks, {guarded} withheld by the guard, \
         {} estimates, 0 within 10%",
        estimates.len()
    );

    // Utility: the region's totals (every network, 10 or more contributors) stay within 2%.
    let region = ask(&app, None, &truth, input(None, &[], &SUMS)).await;
    for c in &region {
        let who = truth.members(c, &[&c.metric]);
        assert!(who.len() >= 10, "{c:?}");
        let exact = truth.sum(&who, &c.metric);
        let v = c
            .value
            .unwrap_or_else(|| panic!("the region total is shown: {c:?}"));
        assert!(
            (v - exact).abs() <= 0.02 * exact.abs() && v != exact,
            "{}: {v} against {exact}",
            c.metric
        );
    }
}

/// Asking again, in other shapes and with other groupings, gives the same noise for the same
/// contributors: averaging repeated answers converges on the noised value, not the truth.
async fn repeated_and_averaged_queries_recover_nothing(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let truth = truth(&app).await;
    let shapes = [
        input(None, &["SECTOR"], &SUMS),
        input(None, &["SECTOR", "YEAR"], &SUMS),
        input(None, &["SECTOR"], &["procurement_spend_total"]),
        input(None, &["YEAR", "SECTOR"], &SUMS),
    ];
    let mut by_cell: BTreeMap<(String, Option<String>), Vec<Option<f64>>> = BTreeMap::new();
    for _round in 0..5 {
        for shape in &shapes {
            for c in ask(&app, None, &truth, shape.clone()).await {
                by_cell
                    .entry((c.metric.clone(), c.sector.clone()))
                    .or_default()
                    .push(c.value);
            }
        }
    }
    let mut noised = 0;
    for ((metric, sector), answers) in &by_cell {
        let first = answers[0];
        assert!(
            answers.iter().all(|a| *a == first),
            "{metric} {sector:?}: {answers:?}"
        );
        let Some(v) = first else { continue };
        let cell = Seen {
            metric: metric.clone(),
            year: YEAR.to_owned(),
            networks: truth.networks.values().copied().collect(),
            sector: sector.clone(),
            district: None,
            value: Some(v),
            reason: None,
        };
        let who = truth.members(&cell, &[metric]);
        let exact = truth.sum(&who, metric);
        let mean = answers.iter().flatten().sum::<f64>() / answers.len() as f64;
        assert!(
            (mean - v).abs() <= 1e-9 * v.abs(),
            "the average of identical answers is the answer"
        );
        noised += usize::from(v != exact);
    }
    assert!(noised >= 5, "noise on the sector cells: {noised}");
}

/// The insider of the issue: a network admin sets its network to require approval, restates
/// one of its own institutions with a huge spend (nobody outside sees it), reads the same
/// cells before and after and at two `asOf` instants, and solves the equations.
async fn an_insider_varying_its_own_values_learns_nothing(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let before = truth(&app).await;
    let me = "sandwell";
    let my_id = before.networks[me];
    let admin = app.token(As::Admin(me), "").await;
    app.query_as(
        &admin,
        "mutation { updateNetwork(id: \"sandwell\", input: {requiresApproval: true}) { key } }",
        json!({}),
    )
    .await;
    // What the insider sees in detail: its stewarded institutions and its members.
    let detail: BTreeSet<i64> = before
        .insts
        .iter()
        .filter(|(_, i)| i.steward == my_id || i.member_of.contains(&my_id))
        .map(|(id, _)| *id)
        .collect();
    let metric = "procurement_spend_total";
    let shapes = [
        input(None, &[], &[metric]),
        input(None, &["SECTOR"], &[metric]),
        input(None, &["DISTRICT"], &[metric]),
        input(None, &["NETWORK"], &[metric]),
        input(None, &["SECTOR", "DISTRICT"], &[metric]),
    ];
    let first = read_all(&app, &admin, &before, &shapes).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // The probe: one of its own institutions, restated with a huge spend.
    let (target, target_inst) = before
        .insts
        .iter()
        .find(|(id, i)| {
            i.steward == my_id && before.values.contains_key(&(**id, metric.to_owned()))
        })
        .unwrap();
    let old = before.values[&(*target, metric.to_owned())];
    let huge = 987_654_321.0;
    app.query_as(
        &admin,
        "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { returns { id } } }",
        json!({"i": {"networkId": me, "idempotencyKey": "insider-probe", "returns": [
            {"institution": target_inst.key, "period": YEAR,
             "values": [{"metric": metric, "value": format!("{huge:.2}")}]}]}}),
    )
    .await;
    let second = read_all(&app, &admin, &before, &shapes).await;
    assert_eq!(first.len(), second.len());

    let mut both_shown = 0;
    let mut estimates = vec![];
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(
            (&a.metric, &a.networks, &a.sector, &a.district),
            (&b.metric, &b.networks, &b.sector, &b.district)
        );
        let who = before.members(a, &[metric]);
        let aggregate_only: BTreeSet<i64> = who.difference(&detail).copied().collect();
        let (Some(v1), Some(v2)) = (a.value, b.value) else {
            continue;
        };
        // Values seen in detail enter exactly and never steer the noise.
        let delta = if who.contains(target) {
            huge - old
        } else {
            0.0
        };
        assert!(
            ((v2 - v1) - delta).abs() < 0.005,
            "the cell moved by {} for a restatement of {delta}: {a:?}",
            v2 - v1
        );
        both_shown += usize::from(delta != 0.0);
        if !aggregate_only.is_empty() {
            assert!(
                aggregate_only.len() >= 3,
                "a cell with fewer than 3 contributors seen only in aggregate: {a:?}"
            );
        }
        // The solution, assuming the cell scaled by one factor k: k = Δv / ΔD, then
        // the aggregate-only part S = v1 / k - D1, differenced between cells below.
        let d1: f64 = who
            .intersection(&detail)
            .map(|id| before.values[&(*id, metric.to_owned())])
            .sum();
        let k = if delta != 0.0 { (v2 - v1) / delta } else { 1.0 };
        estimates.push((aggregate_only, v1 / k - d1));
    }
    assert!(
        both_shown > 0,
        "no shown cell held the restated institution"
    );
    let mut hits = vec![];
    for (big, s_big) in &estimates {
        for (small, s_small) in &estimates {
            if big.len() == small.len() + 1 && small.is_subset(big) {
                let id = *big.difference(small).next().unwrap();
                let real = before.values[&(id, metric.to_owned())];
                if ((s_big - s_small) - real).abs() <= 0.1 * real.abs() {
                    hits.push((before.insts[&id].key.clone(), real));
                }
            }
            if small.len() == 1 {
                let id = *small.iter().next().unwrap();
                let real = before.values[&(id, metric.to_owned())];
                assert!((s_small - real).abs() > 0.1 * real.abs(), "{id}: {s_small}");
            }
        }
    }
    assert!(hits.is_empty(), "the insider recovered {hits:?}");

    // asOf before the probe: cells with contributors seen only in aggregate are not shown
    // as they stood then, so the two instants cannot be set against each other.
    let mut then =
        json!({"region": WMCA, "years": [YEAR], "metrics": [metric], "groupBy": ["SECTOR"]});
    then["asOf"] = json!(between.to_rfc3339());
    let cells = ask(&app, Some(&admin), &before, then).await;
    let mut as_of_refusals = 0;
    for c in &cells {
        let who = before.members(c, &[metric]);
        if who.difference(&detail).next().is_some() {
            assert!(c.value.is_none(), "shown at an earlier asOf: {c:?}");
            as_of_refusals += usize::from(
                c.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("as they stand now")),
            );
        }
    }
    assert!(as_of_refusals > 0, "{cells:?}");
}

/// The red team's insider (finding A): a network admin creates institutions stewarded by its
/// own network next to another network's institution (two NHS trusts homed in Dudley, next to
/// Dudley's one), submits known values for them, reads the crossing anonymously, and
/// resubmits the same values again and again to redraw the noise and average it away.
async fn an_insider_planting_institutions_learns_nothing(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let me = "sandwell";
    let admin = app.token(As::Admin(me), "").await;
    let metric = "procurement_spend_total";
    let (sector, district) = ("NHS_TRUST", "E08000027");
    let planted = [("planted-a", "50000000.00"), ("planted-b", "45000000.00")];
    for (key, _) in planted {
        app.query_as(
            &admin,
            "mutation($in: InstitutionInput!) { createInstitution(input: $in) { key } }",
            json!({"in": {"key": key, "name": format!("Fictional {key}"), "sector": sector,
                "homeDistrict": district, "steward": me, "memberFrom": "2020-04-01"}}),
        )
        .await;
    }
    let submit = |key: &str, value: &str, round: usize| {
        json!({"i": {"networkId": me, "idempotencyKey": format!("plant-{key}-{round}"),
            "returns": [{"institution": key, "period": YEAR,
                "values": [{"metric": metric, "value": value}]}]}})
    };
    const SUBMIT: &str =
        "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { returns { id } } }";
    for (key, value) in planted {
        app.query_as(&admin, SUBMIT, submit(key, value, 0)).await;
    }
    let truth = truth(&app).await;
    let crossing = input(None, &["SECTOR", "DISTRICT"], &[metric]);
    let mut rounds = vec![];
    for round in 0..4 {
        if round > 0 {
            // The same values again: a new version each time.
            app.query_as(&admin, SUBMIT, submit(planted[0].0, planted[0].1, round))
                .await;
        }
        rounds.push(ask(&app, None, &truth, crossing.clone()).await);
    }
    let mine = truth.networks[me];
    let target = ask(&app, None, &truth, crossing.clone())
        .await
        .into_iter()
        .find(|c| c.sector.as_deref() == Some(sector) && c.district.as_deref() == Some(district))
        .unwrap();
    let who = truth.members(&target, &[metric]);
    let others: Vec<&i64> = who
        .iter()
        .filter(|id| truth.insts[*id].steward != mine)
        .collect();
    assert_eq!(
        others.len(),
        1,
        "the crossing holds one institution of another network"
    );
    assert!(
        who.len() >= 3 && target.value.is_none(),
        "a cell one network knows all but one of is withheld: {target:?}"
    );
    // Resubmitting redraws nothing: every cell the same in every round.
    for r in &rounds[1..] {
        let values = |cells: &[Seen]| cells.iter().map(|c| c.value).collect::<Vec<_>>();
        assert_eq!(values(r), values(&rounds[0]));
    }
    // No shown cell leaves the planting network one or two institutions it does not know.
    for c in rounds[0].iter().filter(|c| c.value.is_some()) {
        let unknown = truth
            .members(c, &[metric])
            .into_iter()
            .filter(|id| truth.insts[id].steward != mine)
            .count();
        assert!(unknown == 0 || unknown >= 3, "{c:?}");
    }
}

/// README's regional example, asked anonymously of the demo's public AGGREGATE grants: every
/// total shown, close to the exact total.
async fn the_readme_example_answers_with_useful_totals(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let truth = truth(&app).await;
    let metrics = [
        "procurement_spend_total",
        "procurement_spend_region",
        "headcount",
        "land_owned",
    ];
    let cells = ask(&app, None, &truth, input(None, &[], &metrics)).await;
    assert_eq!(cells.len(), metrics.len(), "{cells:?}");
    for c in &cells {
        let who = truth.members(c, &[&c.metric]);
        let exact = truth.sum(&who, &c.metric);
        let v = c.value.unwrap_or_else(|| panic!("shown: {c:?}"));
        let allowed = if who.len() >= 10 { 0.02 } else { 0.4 };
        assert!(
            (v - exact).abs() <= allowed * exact,
            "{c:?} against {exact}"
        );
    }
}

/// The second red team's subtraction: two cells at one place whose contributors differ
/// (with and without `panel`) must not share their noise, or their difference is an exact sum.
async fn cells_at_one_place_do_not_share_noise(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let (now, before) = (truth(&app).await, truth_for(&app, "2021/22").await);
    let metric = "procurement_spend_total";
    let ask_year = |panel: bool, group_by: &'static [&'static str]| {
        let mut i = json!({"region": WMCA, "years": ["2021/22", YEAR], "metrics": [metric],
            "groupBy": group_by});
        i["panel"] = json!(panel);
        i
    };
    let (mut compared, mut exact) = (0, 0);
    for group_by in [&[][..], &["SECTOR"], &["DISTRICT"]] {
        let plain = ask(&app, None, &now, ask_year(false, group_by)).await;
        let panel = ask(&app, None, &now, ask_year(true, group_by)).await;
        for p in plain.iter().filter(|c| c.year == YEAR && c.value.is_some()) {
            let Some(q) = panel.iter().find(|q| {
                q.year == YEAR
                    && q.value.is_some()
                    && (&q.sector, &q.district) == (&p.sector, &p.district)
            }) else {
                continue;
            };
            let all = now.members(p, &[metric]);
            let kept: BTreeSet<i64> = all
                .iter()
                .copied()
                .filter(|id| before.values.contains_key(&(*id, metric.to_owned())))
                .collect();
            if kept == all {
                continue;
            }
            compared += 1;
            let difference = p.value.unwrap() - q.value.unwrap();
            let truth = now.sum(&all, metric) - now.sum(&kept, metric);
            exact += usize::from((difference - truth).abs() < 0.01);
        }
    }
    assert!(
        compared > 0,
        "no pair of cells at one place with different contributors"
    );
    assert_eq!(
        exact, 0,
        "{exact} of {compared} differences were exact sums"
    );
}

/// The third red team's oracle (finding J): a network admin plants three universities, one
/// large and two of 1.00, in the region's university cell, and resubmits the large one's value
/// searching for where the dominance rule flips the cell between shown and withheld: the flip
/// point is ten times what one network does not see less the largest, one other network's
/// institution plus 2.00. Decisions are kept per contributor set, so resubmitting flips
/// nothing; new sets are decided on their values, and a place decides only so many.
async fn the_dominance_rule_is_no_oracle(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let me = "sandwell";
    let admin = app.token(As::Admin(me), "").await;
    let metric = "procurement_spend_total";
    let sector = "UNIVERSITY";
    assert_eq!(metric, "procurement_spend_total", "what `submit` reports");
    let round = std::sync::atomic::AtomicUsize::new(0);
    let plant = |key: String| {
        let (app, admin) = (&app, &admin);
        async move { create(app, admin, me, &key, sector).await }
    };
    let submit = |key: &str, value: f64| {
        let n = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (app, admin, key) = (&app, &admin, key.to_owned());
        async move {
            let value = format!("{value:.2}");
            submit(app, admin, me, &key, &value, &format!("oracle-{n}")).await
        }
    };
    let (low, high) = (1e9, 1e11);
    let large = "oracle-large".to_owned();
    for (key, value) in [
        (large.clone(), high),
        ("oracle-a".into(), 1.0),
        ("oracle-b".into(), 1.0),
    ] {
        plant(key.clone()).await;
        submit(&key, value).await;
    }
    let cell = || async {
        let truth = truth(&app).await;
        let cells = ask(
            &app,
            None,
            &truth,
            json!({"region": WMCA, "years": [YEAR],
            "metrics": [metric], "groupBy": ["SECTOR"]}),
        )
        .await;
        cells
            .into_iter()
            .find(|c| c.sector.as_deref() == Some(sector))
            .expect("the university cell")
    };
    // The red team's search: shown means the flip point is above, withheld below.
    let first = cell().await;
    assert!(first.value.is_none(), "one huge planted value: {first:?}");
    let (mut lo, mut hi) = (low, high);
    let mut seen = BTreeSet::new();
    for _ in 0..24 {
        let mid = f64::midpoint(lo, hi);
        submit(&large, mid).await;
        let c = cell().await;
        seen.insert(c.value.is_some());
        if c.value.is_some() {
            lo = mid
        } else {
            hi = mid
        }
    }
    submit(&large, low).await;
    let even_now = cell().await;
    assert!(
        even_now.value.is_none() && seen == BTreeSet::from([false]),
        "the decision on one contributor set never flips: {even_now:?}"
    );
    let truth = truth(&app).await;
    let target = truth
        .insts
        .iter()
        .find(|(_, i)| i.key == "wolves-university")
        .map(|(id, _)| *id)
        .unwrap();
    let exact = truth.values[&(target, metric.to_owned())];
    let estimate = lo / 10.0 - 2.0;
    assert!(
        (estimate - exact).abs() > 0.1 * exact,
        "recovered {estimate} for {exact}"
    );
    // A new set is decided on its values: one more tiny university, the large one even now.
    plant("oracle-c".into()).await;
    submit("oracle-c", 1.0).await;
    let fresh = cell().await;
    assert!(fresh.value.is_some(), "a new, even set is shown: {fresh:?}");
    // Planting new sets, each decided withheld, until the place has decided all it may
    // (two so far); then even a new, even set is withheld.
    submit(&large, high).await;
    let mut n = 0;
    for step in 2..anchorfed::analytics::release::DECISIONS_PER_PLACE {
        // Three new institutions: no closer than three to the set shown above.
        for j in 0..3 {
            n += 1;
            let key = format!("oracle-q{step}-{j}");
            plant(key.clone()).await;
            submit(&key, 1.0).await;
        }
        let c = cell().await;
        assert!(c.value.is_none(), "a dominated set: {c:?}");
    }
    assert!(n > 0);
    submit(&large, low).await;
    for j in 0..3 {
        let key = format!("oracle-last-{j}");
        plant(key.clone()).await;
        submit(&key, 1.0).await;
    }
    let last = cell().await;
    assert!(
        last.value.is_none(),
        "a place decides a bounded number of sets: {last:?}"
    );
}

/// The fourth red team's padding (finding L): a network admin plants nine universities of its
/// own beside the region's four, so the cell has 13 contributors and the noise would be capped
/// at 2% of the total; then differences a panel and a plain cell. The cap counts only the
/// contributors the best-informed network does not see (here four), so the noise stays at
/// least a tenth of the largest value.
async fn padding_a_cell_does_not_shrink_its_noise(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let me = "sandwell";
    let admin = app.token(As::Admin(me), "").await;
    let metric = "procurement_spend_total";
    let sector = "UNIVERSITY";
    for n in 0..9 {
        let key = format!("padding-{n}");
        create(&app, &admin, me, &key, sector).await;
        submit(&app, &admin, me, &key, "8000000.00", &key).await;
    }
    let truth = truth(&app).await;
    let cells = ask(
        &app,
        None,
        &truth,
        json!({"region": WMCA, "years": [YEAR],
        "metrics": [metric], "groupBy": ["SECTOR"]}),
    )
    .await;
    let cell = cells
        .iter()
        .find(|c| c.sector.as_deref() == Some(sector))
        .expect("the university cell");
    let who = truth.members(cell, &[metric]);
    assert!(who.len() >= 13, "padded: {who:?}");
    let shown = cell.value.expect("the padded cell is shown");
    let exact = truth.sum(&who, metric);
    let largest = who
        .iter()
        .map(|id| truth.values[&(*id, metric.to_owned())])
        .fold(0.0, f64::max);
    assert!(
        (shown - exact).abs() >= 0.1 * largest - 0.01,
        "noise {} under a tenth of the largest value {largest}",
        shown - exact
    );
}

/// The region's total of `metric` in YEAR, read anonymously, and who is in it.
async fn region_total(app: &TestApp, metric: &str) -> (Seen, BTreeSet<i64>) {
    let truth = truth(app).await;
    let cells = ask(app, None, &truth, input(None, &[], &[metric])).await;
    assert_eq!(cells.len(), 1, "{cells:?}");
    let c = cells.into_iter().next().unwrap();
    let who = truth.members(&c, &[metric]);
    (c, who)
}

/// The fourth red team's reporting season (finding M): the region's total read after every
/// report. A total one or two reporters past a released one would be withheld by the guard
/// for the rest of the period; it shows the released one's figure instead (it lags), and
/// moves on once three more have reported.
async fn a_reporting_season_leaves_the_total_shown(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let me = "sandwell";
    let admin = app.token(As::Admin(me), "").await;
    let metric = "procurement_spend_total";
    let (first, everyone) = region_total(&app, metric).await;
    let v0 = first.value.expect("the region's total is shown");
    let mut reported = vec![];
    for n in 0..3 {
        let key = format!("late-{n}");
        create(&app, &admin, me, &key, "LOCAL_AUTHORITY").await;
        submit(&app, &admin, me, &key, "1000000.00", &key).await;
        reported.push(key);
        let (c, who) = region_total(&app, metric).await;
        let v = c
            .value
            .unwrap_or_else(|| panic!("after {} more: withheld {c:?}", n + 1));
        if n < 2 {
            // One or two past the released total: the released total, as it was.
            assert!((v - v0).abs() < 0.005, "{v} against {v0}");
        } else {
            // Three past it: a total of its own.
            assert!((v - v0).abs() > 0.005, "{v} is still {v0}");
            assert_eq!(who.len(), everyone.len() + 3);
        }
    }
}

/// Creates an institution stewarded by `network`, a `sector` in Sandwell, a member since 2020.
async fn create(app: &TestApp, admin: &str, network: &str, key: &str, sector: &str) {
    app.query_as(
        admin,
        "mutation($in: InstitutionInput!) { createInstitution(input: $in) { key } }",
        json!({"in": {"key": key, "name": format!("Fictional {key}"), "sector": sector,
            "homeDistrict": "E08000028", "steward": network, "memberFrom": "2020-04-01"}}),
    )
    .await;
}

/// Submits `key`'s return for YEAR with one total spend, under the batch key `batch`.
async fn submit(app: &TestApp, admin: &str, network: &str, key: &str, value: &str, batch: &str) {
    app.query_as(
        admin,
        "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { returns { id } } }",
        json!({"i": {"networkId": network, "idempotencyKey": batch,
            "returns": [{"institution": key, "period": YEAR,
                "values": [{"metric": "procurement_spend_total", "value": value}]}]}}),
    )
    .await;
}

/// Creates a local authority stewarded by `network` and, when `value` is given, submits its
/// return for YEAR.
async fn plant(app: &TestApp, admin: &str, network: &str, key: &str, value: Option<&str>) {
    create(app, admin, network, key, "LOCAL_AUTHORITY").await;
    if let Some(v) = value {
        report(app, admin, network, key, v).await;
    }
}

async fn report(app: &TestApp, admin: &str, network: &str, key: &str, value: &str) {
    submit(app, admin, network, key, value, &format!("report-{key}")).await;
}

/// The fifth red team's probe (finding Y): a network that plants two institutions beside a
/// released total, where another network's institution has yet to report, would see the total
/// move if and only if that institution reported (three new against two). As the planting
/// network sees it, the two cells differ by one institution it does not know, so the total
/// lags either way and says nothing of who reported.
async fn planting_beside_a_late_reporter_says_nothing(backend: Backend) {
    let app = demo_with_public_aggregates(backend).await;
    let metric = "procurement_spend_total";
    let (me, other) = ("sandwell", "birmingham");
    let (mine, theirs) = (
        app.token(As::Admin(me), "").await,
        app.token(As::Admin(other), "").await,
    );
    plant(&app, &theirs, other, "late-target", None).await;
    let (first, _) = region_total(&app, metric).await;
    let v0 = first.value.expect("the region's total is shown");
    plant(&app, &mine, me, "probe-a", Some("1000000.00")).await;
    plant(&app, &mine, me, "probe-b", Some("1000000.00")).await;
    let (before, _) = region_total(&app, metric).await;
    report(&app, &theirs, other, "late-target", "5000000.00").await;
    let (after, who) = region_total(&app, metric).await;
    assert!(who.len() >= 3, "{who:?}");
    for c in [&before, &after] {
        let v = c.value.unwrap_or_else(|| panic!("withheld: {c:?}"));
        assert!((v - v0).abs() < 0.005, "{v} moved from {v0}: {c:?}");
    }
}

both_databases!(
    planting_beside_a_late_reporter_says_nothing,
    a_reporting_season_leaves_the_total_shown,
    padding_a_cell_does_not_shrink_its_noise,
    the_dominance_rule_is_no_oracle,
    cells_at_one_place_do_not_share_noise,
    the_readme_example_answers_with_useful_totals,
    an_insider_planting_institutions_learns_nothing,
    subset_differencing_recovers_nothing,
    repeated_and_averaged_queries_recover_nothing,
    an_insider_varying_its_own_values_learns_nothing,
);
