//! `spendAnalysis` (issue 14): the local-spend analysis from spend lines, equal to the sums
//! worked out here from the files for readers who see the lines' institutions in detail, and
//! under the same rules and disclosure control as `impact` for everyone else.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app};
use crate::spend::{HEADER, import, pence};

const YEAR: &str = "2022/23";
const WMCA: [&str; 7] = [
    "E08000025",
    "E08000026",
    "E08000027",
    "E08000028",
    "E08000029",
    "E08000030",
    "E08000031",
];
/// Institutions Sandwell stewards, each with a file; members of Sandwell's network alone, so
/// no other network knows any of them in detail (disclosure control's insider rule).
const INSTITUTIONS: [&str; 5] = [
    "sandwell-leisure",
    "sandwell-cvo",
    "sandwell-chamber",
    "tipton-engineering",
    "oldbury-logistics",
];
/// A category and a district only the first institution's file names.
const SECRET_CATEGORY: &str = "Settlement with a named former employee";
const LONE_DISTRICT: &str = "E07000218";

const ANALYSIS: &str = "query($i: SpendAnalysisInput!) { spendAnalysis(input: $i) { \
    cells { measure year network { key } sector supplierDistrict { code } supplierPlaceKnown \
            size category value suppressed suppressionReason contributors eligible coverage } \
    withheldNetworks { key } geography { code } } }";

/// One line as the test reads it back from its own file.
struct Line {
    supplier_id: String,
    district: Option<String>,
    amount: i64,
    category: String,
    sme: bool,
    vcse: bool,
    sole_trader: bool,
    anchor: bool,
}

/// Institution `k`'s file: suppliers in Sandwell, Birmingham (the region), Warwick (outside
/// it) and nowhere known, in three categories (one empty), with every flag on some lines,
/// suppliers repeated within and across files; the totals close, so no one dominates.
fn file(k: usize) -> String {
    let mut out = String::from(HEADER);
    let districts = ["E08000028", "E08000025", "E07000222", ""];
    let categories = ["Estates", "IT services", ""];
    for i in 0..12 {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let amount = 10_000 * 100 + (k as i64) * 3_737 + (i as i64) * 11_311;
        let sole = i == 7;
        out.push_str(&format!(
            "Fictional Supplier {} Ltd,CH{}{},,{},{}.{:02},{},{},{},{},{}\n",
            i % 9,
            k % 2,
            i % 9,
            districts[i % 4],
            amount / 100,
            amount % 100,
            categories[i % 3],
            yes(i % 2 == 0 || sole),
            yes(i % 3 == 0),
            yes(sole),
            yes(i % 5 == 0),
        ));
    }
    if k == 0 {
        out.push_str(&format!(
            "Fictional Lone Supplier Ltd,CH999,,{LONE_DISTRICT},4321.09,{SECRET_CATEGORY},no,no,no,no\n"
        ));
    }
    out
}

fn parse(file: &str) -> Vec<Line> {
    file.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Line {
                supplier_id: f[1].to_owned(),
                district: Some(f[3].to_owned()).filter(|d| !d.is_empty()),
                amount: pence(f[4]),
                category: f[5].to_owned(),
                sme: f[6] == "yes",
                vcse: f[7] == "yes",
                sole_trader: f[8] == "yes",
                anchor: f[9] == "yes",
            }
        })
        .collect()
}

/// The measures over some institutions' lines, by the API's names, in minor units (the
/// share as the API rounds it).
fn measures(files: &[Vec<Line>], geography: &[&str]) -> BTreeMap<&'static str, String> {
    let sum = |keep: &dyn Fn(&Line) -> bool| -> i64 {
        files
            .iter()
            .flatten()
            .filter(|l| keep(l))
            .map(|l| l.amount)
            .sum()
    };
    let total = sum(&|_| true);
    let inside = sum(&|l| {
        l.district
            .as_deref()
            .is_some_and(|d| geography.contains(&d))
    });
    let suppliers: usize = files
        .iter()
        .map(|f| {
            f.iter()
                .map(|l| &l.supplier_id)
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    let money = |p: i64| format!("{}.{:02}", p / 100, p % 100);
    let share = rust_decimal::Decimal::from(inside) / rust_decimal::Decimal::from(total);
    BTreeMap::from([
        ("TOTAL", money(total)),
        ("IN_GEOGRAPHY", money(inside)),
        (
            "SHARE_IN_GEOGRAPHY",
            share
                .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointNearestEven)
                .to_string(),
        ),
        ("SME", money(sum(&|l| l.sme))),
        ("VCSE", money(sum(&|l| l.vcse))),
        ("ANCHOR", money(sum(&|l| l.anchor))),
        ("SUPPLIERS", suppliers.to_string()),
        ("PLACE_UNKNOWN", money(sum(&|l| l.district.is_none()))),
    ])
}

/// Imports each institution's file as Sandwell's admin; their lines as the test reads them.
async fn import_files(app: &TestApp, admin: &str) -> Vec<Vec<Line>> {
    let mut files = vec![];
    for (k, key) in INSTITUTIONS.iter().enumerate() {
        let f = file(k);
        let (_, job) = import(
            app,
            admin,
            &format!("institution={key}&period={YEAR}"),
            f.clone().into_bytes(),
        )
        .await;
        assert_eq!(job["state"], "SUCCEEDED", "{key}: {job}");
        files.push(parse(&f));
    }
    files
}

async fn analysis(app: &TestApp, token: Option<&str>, input: Value) -> Value {
    let d = match token {
        Some(t) => app.query_as(t, ANALYSIS, json!({ "i": input })).await,
        None => app.query(ANALYSIS, json!({ "i": input })).await,
    };
    d["spendAnalysis"].clone()
}

/// The cells of an answer by measure, for an ungrouped answer.
fn by_measure(answer: &Value) -> BTreeMap<String, Value> {
    answer["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["measure"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

fn cents(v: &Value) -> i64 {
    pence(v.as_str().unwrap_or_else(|| panic!("no value: {v}")))
}

async fn grant_region_aggregate(app: &TestApp, admin: &str) {
    let g = app
        .query_as(
            admin,
            "mutation($i: GrantInput!) { grantAccess(input: $i) { id } }",
            json!({"i": {
                "networkId": "sandwell",
                "grantee": {"region": "E47000007"},
                "level": "AGGREGATE",
                "metricGroups": ["SPEND"],
                "fromYear": "2020/21",
                "toYear": YEAR,
                "expiresAt": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
                "agreement": {
                    "reference": "DSA-2026-081",
                    "lawfulBasis": "UK GDPR Art 6(1)(e): public task",
                    "purpose": "Regional local-spend analysis",
                    "reviewDate": (chrono::Utc::now() + chrono::Duration::days(20)).date_naive().to_string()
                }
            }}),
        )
        .await;
    assert!(g["grantAccess"]["id"].is_string(), "{g}");
}

/// The analysis equals the sums over the lines for the steward's admin: every measure, three
/// kinds of geography, and each grouping adding up to the whole.
async fn the_analysis_is_the_sum_of_the_lines(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let files = import_files(&app, &admin).await;

    // The region by default (Sandwell's combined authority), a network's area, two districts.
    let sandwell_only = ["E08000028"];
    for (geography, districts) in [
        (Value::Null, &WMCA[..]),
        (json!({"region": "E47000007"}), &WMCA[..]),
        (json!({"network": "sandwell"}), &sandwell_only[..]),
        (
            json!({"districts": ["E08000028", "E07000222"]}),
            &["E08000028", "E07000222"][..],
        ),
    ] {
        let mut input = json!({"networkIds": ["sandwell"], "years": [YEAR]});
        if !geography.is_null() {
            input["geography"] = geography.clone();
        }
        let a = analysis(&app, Some(&admin), input).await;
        let geo: Vec<&str> = a["geography"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["code"].as_str().unwrap())
            .collect();
        let mut want_geo = districts.to_vec();
        want_geo.sort();
        assert_eq!(geo, want_geo, "{geography}");
        let cells = by_measure(&a);
        let want = measures(&files, districts);
        assert_eq!(cells.len(), want.len(), "{a}");
        for (measure, value) in &want {
            let c = &cells[*measure];
            assert_eq!(c["value"], json!(value), "{measure} in {geography}: {c}");
            assert_eq!(c["suppressed"], false);
            assert_eq!(c["contributors"], 5, "{c}");
            let eligible = c["eligible"].as_i64().unwrap();
            assert!(eligible >= 5, "{c}");
            assert_eq!(c["coverage"], json!(5.0 / eligible as f64));
        }
        assert_eq!(a["withheldNetworks"], json!([]));
    }

    // Grouped by supplier district: one cell a district (and one for place unknown), adding
    // up to the total.
    let grouped = |by: &'static str, measures: Value| json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": [by], "measures": measures});
    let a = analysis(
        &app,
        Some(&admin),
        grouped("SUPPLIER_DISTRICT", json!(["TOTAL"])),
    )
    .await;
    let mut want: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for l in files.iter().flatten() {
        *want.entry(l.district.clone()).or_default() += l.amount;
    }
    let got: BTreeMap<Option<String>, i64> = a["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(
                c["supplierPlaceKnown"],
                json!(!c["supplierDistrict"].is_null()),
                "{c}"
            );
            (
                c["supplierDistrict"]["code"].as_str().map(str::to_owned),
                cents(&c["value"]),
            )
        })
        .collect();
    assert_eq!(got, want, "{a}");
    let every = analysis(
        &app,
        Some(&admin),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["SUPPLIER_DISTRICT"]}),
    )
    .await;
    let measures: BTreeSet<&str> = every["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["measure"].as_str().unwrap())
        .collect();
    assert_eq!(
        measures.len(),
        6,
        "no spend in the geography by district: {measures:?}"
    );
    assert!(!measures.contains("IN_GEOGRAPHY"));

    // By size and by category, the same way.
    let a = analysis(&app, Some(&admin), grouped("SIZE", json!(["TOTAL"]))).await;
    let mut want: BTreeMap<&str, i64> = BTreeMap::new();
    for l in files.iter().flatten() {
        let size = match (l.sole_trader, l.sme) {
            (true, _) => "SOLE_TRADER",
            (false, true) => "SME",
            _ => "LARGE",
        };
        *want.entry(size).or_default() += l.amount;
    }
    let got: BTreeMap<&str, i64> = a["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["size"].as_str().unwrap(), cents(&c["value"])))
        .collect();
    assert_eq!(got, want, "{a}");
    let a = analysis(
        &app,
        Some(&admin),
        grouped("CATEGORY", json!(["TOTAL", "SHARE_IN_GEOGRAPHY"])),
    )
    .await;
    let mut want: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for l in files.iter().flatten() {
        *want
            .entry(Some(l.category.clone()).filter(|c| !c.is_empty()))
            .or_default() += l.amount;
    }
    let got: BTreeMap<Option<String>, i64> = a["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["measure"] == "TOTAL")
        .map(|c| {
            (
                c["category"].as_str().map(str::to_owned),
                cents(&c["value"]),
            )
        })
        .collect();
    assert_eq!(got, want, "{a}");
    let shares = a["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["measure"] == "SHARE_IN_GEOGRAPHY")
        .count();
    assert_eq!(shares, want.len(), "a share for each category: {a}");

    // By network and by the buyers' sector: each cell is its institutions' lines.
    let a = analysis(&app, Some(&admin), grouped("NETWORK", json!(["TOTAL"]))).await;
    assert_eq!(a["cells"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(a["cells"][0]["network"]["key"], "sandwell");
    let a = analysis(
        &app,
        Some(&admin),
        grouped("INSTITUTION_SECTOR", json!(["TOTAL"])),
    )
    .await;
    let by_sector: i64 = a["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            assert!(c["sector"].is_string(), "{c}");
            // Sectors with members but no lines answer with nothing.
            c["contributors"] != 0 || !c["value"].is_null()
        })
        .map(|c| cents(&c["value"]))
        .sum();
    assert_eq!(
        by_sector,
        files.iter().flatten().map(|l| l.amount).sum::<i64>()
    );

    // Bad input is named.
    for (input, field) in [
        (
            json!({"networkIds": ["sandwell"], "years": [YEAR], "geography": {"region": "E47000007", "network": "sandwell"}}),
            "input.geography",
        ),
        (
            json!({"networkIds": ["sandwell"], "years": [YEAR], "geography": {"districts": ["E47000007"]}}),
            "input.geography.districts[0]",
        ),
        (
            json!({"networkIds": ["sandwell"], "years": [YEAR], "measures": []}),
            "input.measures",
        ),
        (
            json!({"networkIds": ["sandwell"], "years": []}),
            "input.years",
        ),
        // Grouped by supplier district, spend in the geography is each district's total.
        (
            json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["SUPPLIER_DISTRICT"], "measures": ["SHARE_IN_GEOGRAPHY"]}),
            "input.measures",
        ),
    ] {
        let (_, body) = app.post_as(&admin, ANALYSIS, json!({ "i": input })).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{field}: {body}"
        );
    }
}

both_databases!(the_analysis_is_the_sum_of_the_lines);

/// Readers who see the lines' institutions only in aggregate get the analysis under
/// disclosure control; readers given nothing learn nothing.
async fn the_analysis_is_disclosure_controlled(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let files = import_files(&app, &admin).await;
    let whole = json!({"networkIds": ["sandwell"], "years": [YEAR]});

    // Nothing shared yet: anonymous callers, another network's admin and the region's
    // analyst learn nothing (but who withheld it).
    let others = [
        None,
        Some(app.token(As::Admin("birmingham"), "").await),
        Some(app.token(As::Analyst("E47000007"), "").await),
    ];
    for token in &others {
        let a = analysis(&app, token.as_deref(), whole.clone()).await;
        for c in a["cells"].as_array().unwrap() {
            assert!(c["value"].is_null(), "{c}");
            assert_eq!(c["contributors"], 0, "{c}");
        }
        // Sandwell stewards the files' institutions; the Black Country stewards other members.
        assert!(
            a["withheldNetworks"]
                .as_array()
                .unwrap()
                .contains(&json!({"key": "sandwell"})),
            "{a}"
        );
    }
    // A token that may not read spend, or may not read aggregates, is refused outright.
    let emissions = app.token(As::Admin("sandwell"), "metrics:emissions").await;
    assert_eq!(
        app.error_as(&emissions, ANALYSIS, json!({ "i": whole.clone() }))
            .await,
        "FORBIDDEN"
    );
    let returns_only = app.token(As::Admin("sandwell"), "read:returns").await;
    assert_eq!(
        app.error_as(&returns_only, ANALYSIS, json!({ "i": whole.clone() }))
            .await,
        "FORBIDDEN"
    );

    // Shared with the region in aggregate: the analyst's totals are protected figures, near
    // the truth but not it; the counts rounded.
    grant_region_aggregate(&app, &admin).await;
    let analyst = app.token(As::Analyst("E47000007"), "").await;
    let exact = measures(&files, &WMCA);
    let largest = files
        .iter()
        .map(|f| f.iter().map(|l| l.amount).sum::<i64>())
        .max()
        .unwrap();
    let a = analysis(&app, Some(&analyst), whole.clone()).await;
    let cells = by_measure(&a);
    let total = &cells["TOTAL"];
    assert_eq!(total["suppressed"], false, "{total}");
    let shown = cents(&total["value"]);
    let truth = pence(&exact["TOTAL"]);
    // The noise is between half of and all of a fifth of the largest contribution rounded up
    // to a power of two: at least a tenth of it, at most two fifths.
    let off = (shown - truth).abs();
    assert!(
        off >= largest / 10 && off <= 2 * largest / 5 + 1,
        "{shown} vs {truth}, the largest contribution {largest}"
    );
    assert_eq!(total["contributors"], 5);
    // The same question again gets the same answer (the noise is keyed, not drawn afresh).
    let again = analysis(&app, Some(&analyst), whole.clone()).await;
    assert_eq!(by_measure(&again)["TOTAL"]["value"], total["value"]);

    // A supplier district only one institution spends in, and a category only one writes,
    // are not even named (their withheld cells are left out); the others are shown.
    let a = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["SUPPLIER_DISTRICT"], "measures": ["TOTAL"]}),
    )
    .await;
    assert!(!a.to_string().contains(LONE_DISTRICT), "{a}");
    assert!(
        a["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["supplierDistrict"]["code"] == "E08000028" && c["value"].is_string()),
        "{a}"
    );
    let a = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["CATEGORY"]}),
    )
    .await;
    assert!(!a.to_string().contains(SECRET_CATEGORY), "{a}");
    let admin_view = analysis(
        &app,
        Some(&admin),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["CATEGORY"]}),
    )
    .await;
    assert!(
        admin_view.to_string().contains(SECRET_CATEGORY),
        "the steward sees its own categories"
    );

    // A cell whose aggregate-only contributions are all zero is not shown as an exact zero
    // (none of the files' sole traders is an anchor): it would tell each contributor's.
    let a = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["SIZE"], "measures": ["ANCHOR"]}),
    )
    .await;
    assert!(
        a["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["value"] != "0.00"),
        "{a}"
    );
    let own = analysis(
        &app,
        Some(&admin),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["SIZE"], "measures": ["ANCHOR"]}),
    )
    .await;
    assert!(
        own["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["size"] == "SOLE_TRADER" && c["value"] == "0.00"),
        "the steward sees its zero: {own}"
    );

    // Spend in a chosen set of districts is not published from aggregate-only lines; in one
    // district, a network's area or the region it is.
    let two = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "geography": {"districts": ["E08000028", "E08000025"]}}),
    )
    .await;
    for m in ["IN_GEOGRAPHY", "SHARE_IN_GEOGRAPHY"] {
        let c = &by_measure(&two)[m];
        assert!(c["value"].is_null(), "{c}");
        assert!(
            c["suppressionReason"]
                .as_str()
                .unwrap()
                .contains("chosen set of districts"),
            "{c}"
        );
    }
    assert_eq!(by_measure(&two)["TOTAL"]["suppressed"], false);
    for geography in [
        json!({"districts": ["E08000028"]}),
        json!({"network": "sandwell"}),
        json!({"region": "E47000007"}),
    ] {
        let a = analysis(
            &app,
            Some(&analyst),
            json!({"networkIds": ["sandwell"], "years": [YEAR], "geography": geography, "measures": ["IN_GEOGRAPHY"]}),
        )
        .await;
        let c = &by_measure(&a)["IN_GEOGRAPHY"];
        assert!(
            !c["suppressionReason"]
                .as_str()
                .unwrap_or("")
                .contains("chosen set"),
            "{geography}: {c}"
        );
    }

    // A chosen set of networks, as for impact, shows no aggregate-only figure.
    let set = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell", "birmingham"], "years": [YEAR], "measures": ["TOTAL"]}),
    )
    .await;
    let c = &by_measure(&set)["TOTAL"];
    assert!(c["value"].is_null(), "{c}");
    assert!(
        c["suppressionReason"]
            .as_str()
            .unwrap()
            .contains("chosen set of networks"),
        "{c}"
    );
}

both_databases!(the_analysis_is_disclosure_controlled);

/// Every request has a bounded cost: a file names at most 1,000 categories; a grouping that
/// would split the answer past `MAX_CELLS` (5,000) cells is refused with the count and what
/// to do; one priced past the complexity limit is refused before it runs.
async fn an_answer_too_large_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    // A file may name 1,000 categories: six institutions' 900 each make 5,400 cells.
    let buyers = INSTITUTIONS.iter().chain(["smethwick-foods"].iter());
    for (k, key) in buyers.enumerate() {
        let mut f = String::from(HEADER);
        for i in 0..900 {
            f.push_str(&format!(
                "Fictional Supplier {i} Ltd,CH{i},,E08000028,1.00,Category {k}-{i},no,no,no,no\n"
            ));
        }
        let (_, job) = import(
            &app,
            &admin,
            &format!("institution={key}&period={YEAR}"),
            f.into_bytes(),
        )
        .await;
        assert_eq!(job["state"], "SUCCEEDED", "{job}");
    }
    let (_, body) = app
        .post_as(
            &admin,
            ANALYSIS,
            json!({"i": {"networkIds": ["sandwell"], "years": [YEAR], "groupBy": ["CATEGORY"], "measures": ["TOTAL"]}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("more than the 5000 cells") && message.contains("group by fewer"),
        "{message}"
    );
    // Every measure by category and supplier district, for twenty years: priced, refused.
    let years: Vec<String> = (2003..2023)
        .map(|y| format!("{y}/{:02}", (y + 1) % 100))
        .collect();
    let (_, body) = app
        .post_as(
            &admin,
            ANALYSIS,
            json!({"i": {"networkIds": ["sandwell"], "years": years, "groupBy": ["CATEGORY", "SUPPLIER_DISTRICT"]}}),
        )
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("the limit is"), "{body}");
}

both_databases!(an_answer_too_large_is_refused);

/// The README's example on the demo: the analysis of the sample lines agrees with the spend
/// derived into the same institutions' returns (total, in the network's place, in the
/// region), and shows the README's figures; `impact` counts the derived contributors.
async fn the_demo_analysis_agrees_with_the_derived_returns(backend: Backend) {
    use anchorfed::ingest::spend::demo;
    let app = spawn_app(backend).await;
    anchorfed::ingest::demo::load(&app.db).await.unwrap();
    assert_eq!(demo::load(&app.db).await.unwrap(), demo::INSTITUTIONS.len());
    let admin = app.token(As::Admin("sandwell"), "").await;
    let mut derived = [0i64; 3];
    for (key, _, _) in demo::INSTITUTIONS {
        let d = app
            .query_as(
                &admin,
                "query($i: ID!) { returns(filter: { institution: $i, period: \"2022/23\" }, first: 1) \
                   { nodes { values { metric { code } value } } } }",
                json!({ "i": key }),
            )
            .await;
        for v in d["returns"]["nodes"][0]["values"].as_array().unwrap() {
            let at = match v["metric"]["code"].as_str().unwrap() {
                "procurement_spend_total" => 0,
                "procurement_spend_local" => 1,
                "procurement_spend_region" => 2,
                _ => continue,
            };
            derived[at] += cents(&v["value"]);
        }
    }
    let mut seen = [0i64; 3];
    for (at, geography) in [
        (1, json!({"network": "sandwell"})),
        (2, json!({"region": "E47000007"})),
    ] {
        let a = analysis(
            &app,
            Some(&admin),
            json!({"networkIds": ["sandwell"], "years": ["2022/23"], "geography": geography}),
        )
        .await;
        let cells = by_measure(&a);
        seen[0] = cents(&cells["TOTAL"]["value"]);
        seen[at] = cents(&cells["IN_GEOGRAPHY"]["value"]);
        assert_eq!(cells["TOTAL"]["contributors"], demo::INSTITUTIONS.len());
        if at == 1 {
            // The README's figures.
            assert_eq!(cells["TOTAL"]["value"], "13758578.37", "{a}");
            assert_eq!(cells["IN_GEOGRAPHY"]["value"], "1558804.56", "{a}");
            assert_eq!(cells["SHARE_IN_GEOGRAPHY"]["value"], "0.1133", "{a}");
            assert_eq!(cells["SUPPLIERS"]["value"], "81", "{a}");
        }
    }
    assert_eq!(seen, derived, "the analysis and the derived returns agree");

    // `impact` says which cells rest on derived values: the spend the three institutions'
    // lines restate, and a share of two derived sums; not headcount, which they typed.
    let d = app
        .query_as(
            &admin,
            "{ impact(input: { networkIds: [\"sandwell\"], years: [\"2022/23\"], \
               metrics: [\"procurement_spend_total\", \"local_spend_share\", \"headcount\"] }) \
               { cells { metric { code } contributors derivedContributors } } }",
            json!({}),
        )
        .await;
    let cells: BTreeMap<String, (i64, i64)> = d["impact"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["metric"]["code"].as_str().unwrap().to_owned(),
                (
                    c["contributors"].as_i64().unwrap(),
                    c["derivedContributors"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(cells["procurement_spend_total"].1, 3, "{d}");
    assert_eq!(cells["local_spend_share"].1, 3, "{d}");
    assert!(cells["procurement_spend_total"].0 >= 3, "{d}");
    assert_eq!(cells["headcount"].1, 0, "{d}");
}

both_databases!(the_demo_analysis_agrees_with_the_derived_returns);

/// The second red team on `spendAnalysis` (finding 1a): with one institution that typed its
/// spend and five that imported lines, `impact`'s total and the analysis's total differed by
/// exactly that institution, and both were released. The analysis's total now shares the
/// return metric's slot in the differencing guard.
async fn impact_and_the_analysis_are_guarded_against_each_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    import_files(&app, &admin).await;
    let typed = app
        .query_as(
            &admin,
            "mutation($i: SubmitReturnsInput!) { submitReturns(input: $i) { returns { id } } }",
            json!({"i": {"networkId": "sandwell", "idempotencyKey": "typed-1",
                "returns": [{"institution": "smethwick-foods", "period": YEAR,
                    "values": [{"metric": "procurement_spend_total", "value": "102345.67"}]}]}}),
        )
        .await;
    assert!(
        typed["submitReturns"]["returns"][0]["id"].is_string(),
        "{typed}"
    );
    grant_region_aggregate(&app, &admin).await;
    let analyst = app.token(As::Analyst("E47000007"), "").await;
    let d = app
        .query_as(
            &analyst,
            "{ impact(input: { networkIds: [\"sandwell\"], years: [\"2022/23\"], \
               metrics: [\"procurement_spend_total\"] }) { cells { value suppressed } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["impact"]["cells"][0]["suppressed"], false, "{d}");
    let a = analysis(
        &app,
        Some(&analyst),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "measures": ["TOTAL"]}),
    )
    .await;
    let total = &by_measure(&a)["TOTAL"];
    assert!(total["value"].is_null(), "released beside impact's: {a}");
    assert!(
        total["suppressionReason"]
            .as_str()
            .unwrap()
            .contains("single out"),
        "{total}"
    );
    // The steward, who sees every line, gets its figure as ever.
    let own = analysis(
        &app,
        Some(&admin),
        json!({"networkIds": ["sandwell"], "years": [YEAR], "measures": ["TOTAL"]}),
    )
    .await;
    assert!(by_measure(&own)["TOTAL"]["value"].is_string(), "{own}");
}

both_databases!(impact_and_the_analysis_are_guarded_against_each_other);
