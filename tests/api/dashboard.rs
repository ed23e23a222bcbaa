//! The regional dashboard (`/dashboard`) in headless Chromium, on both databases: what the
//! page shows is what `impact` answers the same reader; suppressed cells show as suppressed
//! with their reason; an anonymous visitor and a network admin see what the rules give each;
//! a table's CSV download is the table; axe-core finds nothing serious. Screenshots go to
//! `target/dashboard-*.png`.

use serde_json::{Value, json};

use crate::helpers::{As, Backend, TestApp, with_demo_returns};

#[path = "../browser/driver.rs"]
mod driver;

use driver::{Browser, grouped};

const REGION: &str = "E47000007";
const YEAR: &str = "2022/23";

/// The headline's figures, asked independently of the page's own documents.
const HEADLINE: &str = r#"query($region: GssCode!, $year: FinancialYear!) {
  impact(input: { region: $region, years: [$year], metrics: [
    "procurement_spend_total", "local_spend_share", "region_spend_share", "headcount",
    "employees_by_residence", "land_owned", "emissions_scope1", "emissions_scope2"] }) {
    withheldNetworks { key }
    cells { metric { code } breakdown value suppressed suppressionReason contributors eligible coverage }
  }
}"#;

const BY_NETWORK: &str = r#"query($region: GssCode!, $year: FinancialYear!) {
  impact(input: { region: $region, years: [$year], groupBy: [NETWORK],
                  metrics: ["procurement_spend_total", "local_spend_share", "headcount"] }) {
    cells { metric { code } network { key name } value suppressed suppressionReason }
  }
}"#;

const BY_DISTRICT: &str = r#"query($region: GssCode!, $year: FinancialYear!) {
  impact(input: { region: $region, years: [$year], groupBy: [DISTRICT],
                  metrics: ["procurement_spend_total"] }) {
    cells { district { code name } value suppressed suppressionReason contributors eligible }
  }
}"#;

const TRENDS: &str = r#"query($region: GssCode!, $years: [FinancialYear!]!, $panel: Boolean) {
  impact(input: { region: $region, years: $years, metrics: ["procurement_spend_total"], panel: $panel }) {
    cells { year value suppressed contributors eligible }
  }
}"#;

const AXE: &str = include_str!("../browser/vendor/axe-core/axe.min.js");

/// A reader: no token, or one.
struct Reader<'a> {
    name: &'static str,
    token: Option<&'a str>,
    role: &'static str,
}

async fn api(app: &TestApp, reader: &Reader<'_>, query: &str, vars: Value) -> Value {
    match reader.token {
        Some(t) => app.query_as(t, query, vars).await,
        None => app.query(query, vars).await,
    }
}

/// Opens the dashboard as the reader (pasting the token when there is one) and waits for
/// every figure.
async fn open(b: &Browser, app: &TestApp, reader: &Reader<'_>) {
    b.client
        .goto(&format!("{}/dashboard", app.address))
        .await
        .unwrap();
    b.wait_ready("true").await;
    if let Some(token) = reader.token {
        let input = b
            .client
            .find(fantoccini::Locator::Css("#token"))
            .await
            .unwrap();
        input.send_keys(token).await.unwrap();
        b.client
            .find(fantoccini::Locator::Css("#use-token"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The token never stays in the page or in the address.
        assert_eq!(
            b.js("return document.getElementById('token').value").await,
            ""
        );
        assert!(
            !b.client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .contains(token)
        );
    }
    b.wait_ready(&format!(
        "document.body.dataset.reader === '{}'",
        reader.role
    ))
    .await;
    assert_eq!(
        b.js("return document.getElementById('year').value").await,
        YEAR,
        "the newest year with reports is chosen"
    );
}

/// A table's cells as the page shows them: text, whether numeric, suppressed and why.
async fn table(b: &Browser, prefix: &str) -> Vec<Vec<Value>> {
    let v = b
        .js(&format!(
            "const t = document.querySelector('table[data-table^=\"{prefix}\"]');
             if (!t) return null;
             return [...t.querySelectorAll('tr')].map(tr => [...tr.children].map(c => ({{
               text: c.textContent.replace(/\\s+/g, ' ').trim(),
               num: c.classList.contains('num'),
               suppressed: c.dataset.suppressed === 'true',
               reason: c.dataset.reason || null }})));"
        ))
        .await;
    serde_json::from_value(v).unwrap_or_else(|e| panic!("no table {prefix}…: {e}"))
}

/// Checks one table cell against one `impact` cell: the exact value with separators, or
/// "suppressed" with the API's reason and no number.
fn same_cell(shown: &Value, cell: &Value, what: &str) -> bool {
    if cell["suppressed"] == true {
        assert_eq!(
            shown["suppressed"], true,
            "{what}: the API suppressed it: {shown}"
        );
        assert_eq!(shown["reason"], cell["suppressionReason"], "{what}");
        let text = shown["text"].as_str().unwrap();
        assert!(
            text.starts_with("suppressed") && !text.chars().any(|c| c.is_ascii_digit()),
            "{what}: a suppressed cell shows no number: {text}"
        );
        true
    } else {
        assert_eq!(shown["suppressed"], false, "{what}: {shown}");
        let value = cell["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {cell}"));
        assert_eq!(shown["text"], grouped(value), "{what}");
        false
    }
}

/// The headline figures on the page equal the API's cells for the same reader; returns
/// the figures, and the number of suppressed table cells the page shows.
async fn check_reader(b: &Browser, app: &TestApp, reader: &Reader<'_>) -> (Value, usize) {
    let vars = json!({"region": REGION, "year": YEAR});
    let headline = api(app, reader, HEADLINE, vars.clone()).await;
    let cells = headline["impact"]["cells"].as_array().unwrap();
    let figures = b
        .js(
            "return [...document.querySelectorAll('#headline [data-metric]')].map(e => ({
               metric: e.dataset.metric, breakdown: e.dataset.breakdown || null,
               value: e.dataset.value || null, suppressed: e.dataset.suppressed === 'true' }))",
        )
        .await;
    let figures = figures.as_array().unwrap();
    assert_eq!(figures.len(), 8, "eight headline figures: {figures:?}");
    for f in figures {
        let cell = cells
            .iter()
            .find(|c| c["metric"]["code"] == f["metric"] && c["breakdown"] == f["breakdown"])
            .unwrap_or_else(|| panic!("the API has no cell for {f}"));
        assert_eq!(f["suppressed"], cell["suppressed"], "{} {f}", reader.name);
        assert_eq!(f["value"], cell["value"], "{}: {f} vs {cell}", reader.name);
    }
    // "based on N% of anchors reporting", from the API's coverage and counts.
    let coverage = b
        .js(
            "return Object.fromEntries([...document.querySelectorAll('[data-coverage-of]')]
               .map(e => [e.dataset.coverageOf, e.textContent]))",
        )
        .await;
    for code in [
        "procurement_spend_total",
        "headcount",
        "land_owned",
        "emissions_scope1",
    ] {
        let c = cells
            .iter()
            .find(|c| c["metric"]["code"] == code && c["breakdown"].is_null())
            .unwrap();
        let pct = (c["coverage"].as_f64().unwrap() * 100.0).round();
        let want = format!(
            "based on {pct}% of anchors reporting ({} of {})",
            c["contributors"], c["eligible"]
        );
        assert_eq!(coverage[code], want.as_str(), "{}", reader.name);
    }
    // Withheld networks are named.
    let withheld: Vec<&str> = headline["impact"]["withheldNetworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        b.js("return document.getElementById('withheld').dataset.withheld")
            .await,
        withheld.join(" ")
    );

    // The networks side by side: each network's spend as the API gives it.
    let mut suppressed = 0;
    let by_network = api(app, reader, BY_NETWORK, vars.clone()).await;
    let rows = table(b, "networks-").await;
    assert_eq!(rows[0][2]["text"], "Spend (£)");
    for c in by_network["impact"]["cells"].as_array().unwrap() {
        let column = match c["metric"]["code"].as_str().unwrap() {
            "procurement_spend_total" => 2,
            "headcount" => 4,
            _ => continue,
        };
        let name = &c["network"]["name"];
        let row = rows
            .iter()
            .find(|r| &r[0]["text"] == name)
            .unwrap_or_else(|| panic!("no row for {name}"));
        suppressed += usize::from(same_cell(&row[column], c, &format!("{name}")));
    }
    assert_eq!(rows.len(), 1 + 5 + 1, "header, five networks, the region");

    suppressed += check_districts(b, app, reader).await;
    (Value::Array(figures.clone()), suppressed)
}

/// The map's table: each home district as the API gives the reader; returns how many are
/// suppressed.
async fn check_districts(b: &Browser, app: &TestApp, reader: &Reader<'_>) -> usize {
    let vars = json!({"region": REGION, "year": YEAR});
    let mut suppressed = 0;
    let by_district = api(app, reader, BY_DISTRICT, vars).await;
    let rows = table(b, "districts-").await;
    let dcells = by_district["impact"]["cells"].as_array().unwrap();
    assert_eq!(rows.len(), 1 + dcells.len());
    for c in dcells {
        let name = &c["district"]["name"];
        let row = rows
            .iter()
            .find(|r| &r[0]["text"] == name)
            .unwrap_or_else(|| panic!("no row for {name}"));
        suppressed += usize::from(same_cell(&row[1], c, &format!("{name}")));
        assert_eq!(
            row[2]["text"],
            format!("{} of {}", c["contributors"], c["eligible"])
        );
    }
    check_map(b, dcells).await;
    suppressed
}

/// The map draws the twelve districts' boundaries, each a shape of its own inside the plot
/// (not a dot, not the whole globe, as a ring wound the wrong way for d3 would be), titled
/// with its name and why it is grey; the shaded shapes are the districts the API gives a
/// figure for.
async fn check_map(b: &Browser, dcells: &[Value]) {
    let map = b
        .js(
            "const titled = [...document.querySelectorAll('#map-chart path')]
               .filter((p) => p.querySelector(':scope > title'));
             const [base, shaded] = [...new Set(titled.map((p) => p.parentElement))];
             const svg = base.ownerSVGElement.getBoundingClientRect();
             const shape = (p) => {
               const r = p.getBoundingClientRect();
               return { title: p.querySelector('title').textContent,
                        fits: r.width >= 10 && r.height >= 10 && r.left >= svg.left - 1
                          && r.right <= svg.right + 1 && r.top >= svg.top - 1
                          && r.bottom <= svg.bottom + 1
                          && r.width <= svg.width * 0.8 && r.height <= svg.height * 0.8 };
             };
             return { base: [...base.querySelectorAll('path')].map(shape),
                      shaded: shaded ? [...shaded.querySelectorAll('path')].map(shape) : [] };",
        )
        .await;
    let titles = |layer: &str| -> Vec<String> {
        map[layer]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["fits"], true, "the map's {layer} shape {s}");
                s["title"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let base = titles("base");
    assert_eq!(
        base.len(),
        12,
        "seven WMCA and five Warwickshire districts: {base:?}"
    );
    let mut shaded = titles("shaded");
    shaded.sort();
    let mut with_figure = Vec::new();
    for c in dcells {
        let name = c["district"]["name"].as_str().unwrap();
        let title = base
            .iter()
            .find(|t| t.as_str() == name || t.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no shape for {name}: {base:?}"));
        if c["suppressed"] == true {
            assert_eq!(title, &format!("{name}: suppressed"));
        } else if !c["value"].is_null() {
            assert_eq!(title, name);
            with_figure.push(name.to_owned());
        }
    }
    with_figure.sort();
    assert_eq!(
        shaded, with_figure,
        "the shaded districts are those with a figure"
    );
}

async fn screenshot(b: &Browser, backend: Backend, who: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("dashboard-{backend:?}-{who}.png").to_lowercase());
    b.screenshot(&path).await;
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 10_000, "{} is only {size} bytes", path.display());
}

async fn demo_app(backend: Backend) -> TestApp {
    let app = with_demo_returns(backend).await;
    anchorfed::sharing::demo_grants(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    app
}

/// The page equals `impact` for an anonymous visitor and for a network admin, and the two
/// see different figures as the rules say: the admin sees its own network's members
/// exactly, the public through disclosure control.
async fn dashboard_shows_each_reader_what_impact_answers(backend: Backend) {
    let app = demo_app(backend).await;
    let token = app.token(As::Admin("sandwell"), "").await;
    let b = Browser::start(1280, 3000).await;

    let anonymous = Reader {
        name: "anonymous",
        token: None,
        role: "ANONYMOUS",
    };
    open(&b, &app, &anonymous).await;
    let (anon_figures, anon_suppressed) = check_reader(&b, &app, &anonymous).await;
    assert!(
        anon_suppressed > 0,
        "the demo's public view has suppressed cells, and the page shows them"
    );
    screenshot(&b, backend, "anonymous").await;

    let admin = Reader {
        name: "sandwell admin",
        token: Some(&token),
        role: "NETWORK_ADMIN",
    };
    open(&b, &app, &admin).await;
    let (admin_figures, _) = check_reader(&b, &app, &admin).await;
    screenshot(&b, backend, "network-admin").await;
    assert_ne!(
        anon_figures, admin_figures,
        "the admin's own returns enter exactly; the public's carry noise"
    );
    // Sandwell's own row: withheld from the public by disclosure control, shown to its admin.
    let vars = json!({"region": REGION, "year": YEAR});
    let public = app.query(BY_NETWORK, vars.clone()).await;
    let own = app.query_as(&token, BY_NETWORK, vars).await;
    let sandwell_spend = |d: &Value| {
        d["impact"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["network"]["key"] == "sandwell"
                    && c["metric"]["code"] == "procurement_spend_total"
            })
            .cloned()
            .unwrap()
    };
    // Every member of Sandwell is seen by its admin at DETAIL (steward or fellow member), so
    // its cell enters exactly and disclosure control never withholds it; the public sees
    // the same institutions only in aggregate: noise, or suppression.
    let (public, own) = (sandwell_spend(&public), sandwell_spend(&own));
    assert_eq!(own["suppressed"], false, "{own}");
    assert!(
        public["suppressed"] == true || public["value"] != own["value"],
        "the public's figure for Sandwell is protected: {public} vs {own}"
    );

    // Forgetting the token goes back to the public view.
    b.client
        .find(fantoccini::Locator::Css("#forget-token"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_ready("document.body.dataset.reader === 'ANONYMOUS'")
        .await;
    assert_eq!(
        b.js("return sessionStorage.getItem('anchorfed.token')")
            .await,
        Value::Null
    );
    b.close().await;
}

/// "Download CSV" writes the table as shown (suppressed cells with their reason, numbers
/// without separators); the fixed-panel switch works from the keyboard and shows what
/// `impact` answers with `panel: true`; axe-core finds nothing serious or critical.
async fn dashboard_downloads_tables_and_passes_axe(backend: Backend) {
    let app = demo_app(backend).await;
    let b = Browser::start(1280, 2700).await;
    let anonymous = Reader {
        name: "anonymous",
        token: None,
        role: "ANONYMOUS",
    };
    open(&b, &app, &anonymous).await;

    let rows = table(&b, "districts-").await;
    b.client
        .find(fantoccini::Locator::Css(
            "button[aria-label='Download CSV of the districts table']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let csv = b
        .downloaded("districts-procurement_spend_total-E47000007-2022-23.csv")
        .await;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes());
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(records.len(), rows.len(), "{csv}");
    let mut suppressed = 0;
    for (record, row) in records.iter().zip(&rows) {
        assert_eq!(record.len(), row.len());
        for (field, cell) in record.iter().zip(row) {
            let text = cell["text"].as_str().unwrap();
            let want = if cell["suppressed"] == true {
                suppressed += 1;
                format!("suppressed: {}", cell["reason"].as_str().unwrap())
            } else if cell["num"] == true {
                text.replace(',', "")
            } else {
                text.to_owned()
            };
            assert_eq!(field, &want);
        }
    }
    assert!(suppressed > 0, "the table had suppressed cells: {csv}");

    // The fixed panel, switched on from the keyboard.
    let panel = b
        .client
        .find(fantoccini::Locator::Css("#panel"))
        .await
        .unwrap();
    panel.send_keys(" ").await.unwrap();
    b.wait_ready("document.getElementById('panel').checked")
        .await;
    // The panel is asked over the years anyone reported: the demo's three.
    let years = ["2020/21", "2021/22", "2022/23"];
    let answer = app
        .query(
            TRENDS,
            json!({"region": REGION, "years": years, "panel": true}),
        )
        .await;
    let rows = table(&b, "trends-").await;
    assert_eq!(rows[0][1]["text"], "Spend (£)");
    let shown = &rows[1..];
    assert_eq!(shown.len(), 3, "2020/21 to 2022/23: {rows:?}");
    for row in shown {
        let cell = answer["impact"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["year"] == row[0]["text"])
            .unwrap();
        same_cell(&row[1], cell, "panel trend");
    }

    // axe-core, injected into the page as it stands.
    b.js(&format!("{AXE}\nreturn true;")).await;
    let violations = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))))
               .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e) }]));",
            vec![],
        )
        .await
        .unwrap();
    let serious: Vec<&Value> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    assert!(
        serious.is_empty(),
        "axe-core: {}",
        serde_json::to_string_pretty(&serious).unwrap()
    );

    // A token whose scopes reach spend in two years only: the page asks for those years
    // alone (impact refuses any other), shows the districts' spend as impact answers that
    // reader, and says which sections the token does not reach instead of failing whole.
    let scoped = app
        .token(As::Analyst(REGION), "metrics:spend years:2021/22-2022/23")
        .await;
    let analyst = Reader {
        name: "scoped analyst",
        token: Some(&scoped),
        role: "REGION_ANALYST",
    };
    b.client
        .find(fantoccini::Locator::Css("#panel"))
        .await
        .unwrap()
        .send_keys(" ")
        .await
        .unwrap();
    b.wait_ready("!document.getElementById('panel').checked")
        .await;
    open(&b, &app, &analyst).await;
    assert_eq!(
        b.js("return [...document.getElementById('year').options].map(o => o.value)")
            .await,
        json!(["2022/23", "2021/22"])
    );
    let refused = b
        .js("return [...document.querySelectorAll('[data-problem=FORBIDDEN]')].map(e => e.parentElement.id)")
        .await;
    assert!(
        refused.as_array().unwrap().contains(&json!("headline")),
        "the headline asks for employment too, which the token does not reach: {refused}"
    );
    check_districts(&b, &app, &analyst).await;
    b.close().await;
}

crate::both_databases!(
    dashboard_shows_each_reader_what_impact_answers,
    dashboard_downloads_tables_and_passes_axe,
);

/// Over plain HTTP: the page and its assets are served compressed with a policy that keeps
/// them to this server; GraphiQL links to it; its documents run by id for anonymous callers
/// when only registered documents are allowed, with no registry file at all.
async fn dashboard_is_served_and_its_documents_run_by_id(backend: Backend) {
    let app = crate::helpers::spawn_with(backend, true, |s| {
        s.trusted_documents.anonymous_only = true;
    })
    .await;
    anchorfed::ingest::demo::load(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));
    anchorfed::sharing::demo_grants(&app.db)
        .await
        .unwrap_or_else(|e| panic!("{}", e.message()));

    let page = app.get("/dashboard").await;
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));
    for (path, size) in anchorfed::dashboard::assets() {
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
        assert!(
            r.bytes().await.unwrap().len() < size,
            "{path} is compressed"
        );
    }
    assert_eq!(
        app.get("/dashboard/nothing.js").await.status().as_u16(),
        404
    );
    let head = app
        .client
        .head(format!("{}/dashboard/app.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
    let graphiql = app.get("/").await.text().await.unwrap();
    assert!(graphiql.contains("href=\"/dashboard\""));

    // Anonymous callers may run the built-in documents only.
    let run = |body: Value| {
        app.client
            .post(format!("{}/graphql", app.address))
            .json(&body)
            .send()
    };
    let r = run(json!({"documentId": "dashboard-headline",
                       "variables": {"region": REGION, "year": YEAR}}))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let by_id = &body["data"]["impact"];
    let asked = app
        .query_as(
            &app.token(As::Analyst(REGION), "").await,
            HEADLINE,
            json!({"region": REGION, "year": YEAR}),
        )
        .await;
    assert_eq!(
        by_id["cells"].as_array().unwrap().len(),
        asked["impact"]["cells"].as_array().unwrap().len()
    );
    let r = run(json!({"query": HEADLINE, "variables": {"region": REGION, "year": YEAR}}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a document of its own is refused");
}

crate::both_databases!(dashboard_is_served_and_its_documents_run_by_id);
