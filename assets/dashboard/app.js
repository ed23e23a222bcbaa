// anchorfed's regional dashboard. It reads the public GraphQL API as any client does, by the
// service's built-in trusted documents (run by id; the list is in src/dashboard/mod.rs), with
// the caller's token when one was given. It computes nothing the API did not answer: every
// figure on the page is a cell of `impact`, shown as the API gave it (suppressed cells as
// suppressed, with their reason, never as zero).

const TOKEN_KEY = "anchorfed.token";
const DEFAULT_REGION = "E47000007";
// Trends start with the year the region's first network was established, at most this many
// years back.
const MOST_YEARS = 15;

// The figures the trends and the map can show (each is a metric of the catalogue).
const FIGURES = [
  { code: "procurement_spend_total", label: "Procurement spend", unit: "£", column: "Spend (£)" },
  { code: "headcount", label: "Employees", unit: "persons", column: "Employees" },
  { code: "land_owned", label: "Land owned", unit: "hectares", column: "Land (hectares)" },
  { code: "emissions_scope1", label: "Scope 1 emissions", unit: "kg CO2e", column: "Scope 1 emissions (kg CO2e)" },
];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  region: null,
  year: null,
  regions: [],
  networks: [],
  viewer: null,
  trends: null,
  headline: null,
  generation: 0,
  geo: null,
};

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// Runs one of the dashboard's trusted documents by id.
async function run(documentId, variables) {
  const headers = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ documentId, variables }),
    credentials: "omit",
    cache: "no-store",
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status}`, "INTERNAL", response.status);
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new ApiError(e.message, e.extensions && e.extensions.code, response.status);
  }
  return body.data;
}

const query = {
  context: () => run("dashboard-context", {}),
  headline: (region, year) => run("dashboard-headline", { region, year }),
  networks: (region, year) => run("dashboard-networks", { region, year, on: yearEnd(year) }),
  trends: (region, years, panel) => run("dashboard-trends", { region, years, panel }),
  districts: (region, year, metric) => run("dashboard-districts", { region, year, metric }),
};

// ---------------------------------------------------------------- formatting

// An exact decimal string with thousands separators; the digits are the API's own.
function grouped(decimal) {
  let s = String(decimal);
  const negative = s.startsWith("-");
  if (negative) s = s.slice(1);
  const [whole, fraction] = s.split(".");
  const g = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-" : "") + g + (fraction !== undefined ? `.${fraction}` : "");
}

function compactMoney(decimal) {
  const n = Number(decimal);
  if (Math.abs(n) >= 1e9) return `£${(n / 1e9).toFixed(2)}bn`;
  if (Math.abs(n) >= 1e6) return `£${(n / 1e6).toFixed(1)}m`;
  return `£${grouped(Math.round(n).toString())}`;
}

function percent(ratio) {
  return `${(Number(ratio) * 100).toFixed(1)}%`;
}

function tonnes(kg) {
  return `${grouped(Math.round(Number(kg) / 1000).toString())} tonnes CO2e`;
}

function coverageText(cell) {
  if (!cell || cell.coverage === null || cell.coverage === undefined) return "no anchors were members that year";
  return `based on ${Math.round(cell.coverage * 100)}% of anchors reporting (${cell.contributors} of ${cell.eligible})`;
}

// The last day of a financial year `2022/23`: 31 March 2023.
function yearEnd(year) {
  return `${Number(year.slice(0, 4)) + 1}-03-31`;
}

// Financial years from the region's first network's establishment to the current one.
function yearsWindow(now = new Date()) {
  const current = now.getMonth() >= 3 ? now.getFullYear() : now.getFullYear() - 1;
  const established = state.networks.filter((n) => n.region.code === state.region).map((n) => n.established);
  const first = Math.max(current - MOST_YEARS + 1, Math.min(current, ...established));
  const years = [];
  for (let y = first; y <= current; y += 1) {
    years.push(`${y}/${String((y + 1) % 100).padStart(2, "0")}`);
  }
  return years.filter(yearAllowed);
}

// Whether the token's `years:` scopes (`years:2021/22-2023/24`, `years:2022/23`) reach a
// year; a token without them, or no token, reaches every year. Asking `impact` for a year
// outside them is refused, so the page does not.
function yearAllowed(year) {
  const scopes = (state.viewer && state.viewer.scopes) || [];
  const ranges = scopes.filter((s) => s.startsWith("years:")).map((s) => s.slice(6).split("-"));
  return !ranges.length || ranges.some(([from, to]) => year >= from && year <= (to || from));
}

// A section whose figures the API refused or could not give says so in place of them.
function showProblem(ids, e) {
  const text =
    e && e.code === "FORBIDDEN"
      ? "Your token does not reach these figures: its role or scopes leave them out."
      : `These figures could not be loaded: ${e ? e.message : "unknown error"}.`;
  for (const id of ids) $(id).replaceChildren(h("p", { class: "problem", dataProblem: (e && e.code) || "ERROR" }, text));
}

// A refused token fails the whole page; anything else fails only its section.
function settled(result) {
  if (result.status === "fulfilled") return result.value;
  if (result.reason && result.reason.code === "UNAUTHENTICATED") throw result.reason;
  return null;
}

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("data")) el.setAttribute(k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function setStatus(text, error = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

function suppressedNode(cell) {
  return [
    h("span", { class: "suppressed" }, "suppressed"),
    h("span", { class: "reason" }, `: ${cell.suppressionReason || "withheld by disclosure control"}`),
  ];
}

// A table cell for one impact cell: its exact value, or "suppressed" with the reason, or a
// dash when nothing was reported.
function valueCell(cell, show = grouped) {
  if (!cell) return { text: "—", title: "no cell: no eligible anchors" };
  if (cell.suppressed) return { suppressed: cell };
  if (cell.value === null || cell.value === undefined) return { text: "not reported" };
  return { text: show(cell.value), num: true };
}

// An accessible table with a caption, column headers, and a button that downloads the
// table as shown (numbers without their thousands separators).
function renderTable(container, { caption, columns, rows, filename, label }) {
  const reasons = [];
  const mark = (cell) => {
    const reason = cell.suppressionReason || "withheld by disclosure control";
    if (!reasons.includes(reason)) reasons.push(reason);
    return String.fromCharCode(97 + reasons.indexOf(reason));
  };
  const table = h(
    "table",
    { dataTable: filename },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: i > 0 && c.num ? "num" : null }, c.label)))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          row.map((c, i) => {
            const tag = i === 0 ? "th" : "td";
            const attrs = { scope: i === 0 ? "row" : null, class: c.num ? "num" : null, title: c.title };
            if (c.suppressed) {
              const m = mark(c.suppressed);
              return h(
                tag,
                { ...attrs, class: null, dataSuppressed: "true", dataReason: reasons[m.charCodeAt(0) - 97] },
                h("span", { class: "suppressed" }, "suppressed"),
                " ",
                h("span", { class: "mark", "aria-label": `reason ${m}` }, `(${m})`),
              );
            }
            return h(tag, attrs, c.text);
          }),
        ),
      ),
    ),
  );
  const legend = reasons.length
    ? h("dl", { class: "reasons" }, reasons.map((r, i) => [h("dt", {}, `(${String.fromCharCode(97 + i)}) suppressed:`), h("dd", {}, r)]))
    : null;
  const button = h("button", { type: "button", class: "download", "aria-label": `Download CSV of ${label}` }, "Download CSV");
  button.addEventListener("click", () => download(filename, tableCsv(table)));
  container.replaceChildren(table, legend || "", button);
}

function csvField(s) {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function tableCsv(table) {
  const lines = [];
  for (const tr of table.querySelectorAll("tr")) {
    const fields = [...tr.children].map((c) => {
      // A suppressed cell is written with its reason in full, as the legend under the table gives it.
      if (c.dataset.suppressed === "true") return csvField(`suppressed: ${c.dataset.reason}`);
      const text = c.textContent.replace(/\s+/g, " ").trim();
      return csvField(c.classList.contains("num") ? text.replace(/,/g, "") : text);
    });
    lines.push(fields.join(","));
  }
  return `${lines.join("\r\n")}\r\n`;
}

function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function chartWidth(el) {
  return Math.max(320, Math.min(760, el.clientWidth || 640));
}

// Puts a chart in its figure as one image with a name (the table beside it has the numbers):
// the chart's marks carry no ARIA of their own, and a chart with a legend is named as a whole.
function figure(el, plot, caption) {
  for (const g of plot.querySelectorAll("g[aria-label], g[aria-description]")) {
    g.removeAttribute("aria-label");
    g.removeAttribute("aria-description");
  }
  if (plot.tagName.toLowerCase() !== "svg") {
    const named = plot.querySelector("svg[aria-label]");
    if (named) plot.setAttribute("aria-label", named.getAttribute("aria-label"));
  }
  plot.setAttribute("role", "img");
  el.replaceChildren(plot, h("figcaption", {}, caption));
}

// ---------------------------------------------------------------- the headline

function cellOf(report, metric, breakdown = null) {
  return report.cells.find((c) => c.metric.code === metric && (c.breakdown || null) === breakdown);
}

// One figure of the headline: its exact value in `data-value`, shown compactly.
function figureNode(cell, metric, show, breakdown = null) {
  const attrs = {
    dataMetric: metric,
    dataBreakdown: breakdown,
    dataSuppressed: cell && cell.suppressed ? "true" : "false",
    dataValue: cell && !cell.suppressed && cell.value !== null ? cell.value : null,
  };
  if (!cell) return h("span", attrs, "no figure");
  if (cell.suppressed) return h("span", attrs, suppressedNode(cell));
  if (cell.value === null) return h("span", attrs, "not reported");
  return h("span", attrs, show(cell.value, cell));
}

function card(title, big, lines, coverageCell) {
  return h(
    "article",
    { class: "card" },
    h("h3", {}, title),
    h("p", { class: "big" }, big),
    lines.map((l) => h("p", {}, l)),
    h("p", { class: "coverage", dataCoverageOf: coverageCell ? coverageCell.metric.code : null }, coverageText(coverageCell)),
  );
}

function renderHeadline(report) {
  const spend = cellOf(report, "procurement_spend_total");
  const local = cellOf(report, "local_spend_share");
  const regional = cellOf(report, "region_spend_share");
  const heads = cellOf(report, "headcount");
  const deprived = cellOf(report, "employees_by_residence", "imd_decile:1-2");
  const land = cellOf(report, "land_owned");
  const s1 = cellOf(report, "emissions_scope1");
  const s2 = cellOf(report, "emissions_scope2");
  const pitches = (c) => {
    const e = c && c.equivalences && c.equivalences.find((q) => q.unit === "pitches");
    return e ? `, about ${grouped(e.value)} football pitches` : "";
  };
  const cards = [
    card("Spend on goods and services", figureNode(spend, "procurement_spend_total", compactMoney), [
      ["Local (in each network's own place): ", figureNode(local, "local_spend_share", percent)],
      ["In the region: ", figureNode(regional, "region_spend_share", percent)],
    ], spend),
    card("Employees", figureNode(heads, "headcount", (v) => grouped(v)), [
      [
        "Living in the two most deprived tenths of neighbourhoods (IMD deciles 1–2): ",
        figureNode(deprived, "employees_by_residence", (v, c) => `${grouped(v)}${c.share !== null ? ` (${percent(c.share)})` : ""}`, "imd_decile:1-2"),
      ],
      deprived && deprived.coverage !== (heads && heads.coverage) ? [`Where they live: ${coverageText(deprived)}`] : [],
    ].filter((l) => l.length), heads),
    card("Land owned", figureNode(land, "land_owned", (v) => `${grouped(v)} ha`), [[`${land && !land.suppressed && land.value !== null ? `${grouped(land.value)} hectares` : ""}${pitches(land)}`]], land),
    card("Emissions (scope 1)", figureNode(s1, "emissions_scope1", tonnes), [
      ["Scope 2 (electricity and heat bought): ", figureNode(s2, "emissions_scope2", tonnes)],
      s2 && s1 && s2.coverage !== s1.coverage ? [`Scope 2 ${coverageText(s2)}`] : [],
    ].filter((l) => l.length), s1),
  ];
  $("headline").replaceChildren(...cards);
  renderWithheld($("withheld"), report.withheldNetworks);
}

function renderWithheld(el, withheld) {
  el.replaceChildren();
  el.dataset.withheld = withheld.map((n) => n.key).join(" ");
  if (!withheld.length) {
    el.textContent = "No network withheld its returns from you for these figures.";
    return;
  }
  el.textContent = `Withheld from you: ${withheld.map((n) => n.name).join(", ")}. Their institutions count as eligible but not as reporting, so the coverage above shows what is missing.`;
}

// ---------------------------------------------------------------- networks side by side

function renderNetworks(data, headline) {
  const networks = data.networks.edges.map((e) => e.node).filter((n) => n.region.code === state.region);
  const cell = (key, metric) => data.impact.cells.find((c) => c.metric.code === metric && c.network && c.network.key === key);
  const rows = networks.map((n) => ({
    name: n.name,
    members: n.members.totalCount,
    spend: cell(n.key, "procurement_spend_total"),
    local: cell(n.key, "local_spend_share"),
    heads: cell(n.key, "headcount"),
  }));
  const region = headline && {
    name: "Region (each institution once)",
    members: cellOf(headline, "procurement_spend_total") ? cellOf(headline, "procurement_spend_total").eligible : "—",
    spend: cellOf(headline, "procurement_spend_total"),
    local: cellOf(headline, "local_spend_share"),
    heads: cellOf(headline, "headcount"),
  };
  const chartEl = $("networks-chart");
  const shown = rows.filter((r) => r.spend && !r.spend.suppressed && r.spend.value !== null);
  const plot = Plot.plot({
    width: chartWidth(chartEl),
    height: 60 + rows.length * 36,
    marginLeft: 230,
    ariaLabel: "Bar chart: procurement spend of each network, in £ million",
    ariaDescription: "The table beside the chart gives each network's members, spend, local share and employees.",
    x: { label: "Spend (£ million) →", grid: true },
    y: { label: null, domain: rows.map((r) => r.name) },
    marks: [
      Plot.barX(shown, { y: "name", x: (r) => Number(r.spend.value) / 1e6, fill: "#0b4f8a" }),
      Plot.text(rows.filter((r) => !shown.includes(r)), {
        y: "name",
        x: 0,
        text: (r) => (r.spend && r.spend.suppressed ? "suppressed" : "not reported"),
        textAnchor: "start",
        dx: 4,
        fill: "#5a3d00",
      }),
      Plot.ruleX([0]),
    ],
  });
  figure(chartEl, plot, `Spend by network, ${state.year}. Suppressed networks are marked, not drawn as zero.`);
  renderTable($("networks-table"), {
    caption: `Networks, ${state.year}`,
    label: "the networks table",
    filename: `networks-${state.region}-${state.year.replace("/", "-")}.csv`,
    columns: [
      { label: "Network" },
      { label: "Members", num: true },
      { label: "Spend (£)", num: true },
      { label: "Local share", num: true },
      { label: "Employees", num: true },
      { label: "Anchors reporting spend", num: true },
    ],
    rows: [...rows, region].filter(Boolean).map((r) => [
      { text: r.name },
      { text: grouped(String(r.members)), num: true },
      valueCell(r.spend),
      valueCell(r.local, percent),
      valueCell(r.heads),
      { text: r.spend ? `${r.spend.contributors} of ${r.spend.eligible}` : "—", num: false },
    ]),
  });
}

// ---------------------------------------------------------------- trends

function renderTrends() {
  const report = state.trends;
  if (!report) {
    showProblem(["trends-chart", "trends-table"], state.trendsError);
    return;
  }
  const code = $("trend-metric").value;
  const fig = FIGURES.find((f) => f.code === code);
  const years = reportedYears(report.cells);
  const cells = report.cells.filter((c) => c.metric.code === code && years.includes(c.year));
  const drawn = cells.filter((c) => !c.suppressed && c.value !== null);
  const chartEl = $("trends-chart");
  const panel = $("panel").checked;
  const plot = Plot.plot({
    width: chartWidth(chartEl),
    height: 280,
    marginLeft: 80,
    ariaLabel: `Line chart: ${fig.label} by financial year${panel ? ", same institutions every year" : ""}`,
    ariaDescription: "The table beside the chart gives each year's figure and how many anchors reported it.",
    x: { type: "point", label: "Financial year", domain: cells.map((c) => c.year) },
    y: { label: `${fig.column} ↑`, grid: true, zero: true, tickFormat: "~s" },
    marks: [
      Plot.lineY(drawn, { x: "year", y: (c) => Number(c.value), stroke: "#0b4f8a", strokeWidth: 2 }),
      Plot.dot(drawn, { x: "year", y: (c) => Number(c.value), fill: "#0b4f8a", r: 4 }),
      Plot.text(cells.filter((c) => c.suppressed), { x: "year", frameAnchor: "bottom", dy: -6, text: () => "suppressed", fill: "#5a3d00" }),
    ],
  });
  figure(chartEl, plot, `${fig.label} by year${panel ? " (a fixed panel: only anchors that reported in every year shown)" : ""}.`);
  renderTable($("trends-table"), {
    caption: `${fig.label} by year${panel ? ", same institutions every year" : ""}`,
    label: "the trends table",
    filename: `trends-${code}-${state.region}${panel ? "-panel" : ""}.csv`,
    columns: [{ label: "Year" }, { label: fig.column, num: true }, { label: "Anchors reporting", num: true }, { label: "Coverage", num: true }],
    rows: cells.map((c) => [
      { text: c.year },
      valueCell(c),
      { text: `${c.contributors} of ${c.eligible}`, num: false },
      { text: c.coverage === null ? "—" : `${Math.round(c.coverage * 100)}%`, num: true },
    ]),
  });
}

// ---------------------------------------------------------------- the map

async function geography() {
  if (!state.geo) {
    const r = await fetch("/dashboard/districts.geojson", { credentials: "omit" });
    if (!r.ok) throw new ApiError(`the district map could not be loaded (${r.status})`, "INTERNAL", r.status);
    state.geo = await r.json();
  }
  return state.geo;
}

function renderMap(data, geo) {
  const code = $("map-metric").value;
  const fig = FIGURES.find((f) => f.code === code);
  const cells = data.impact.cells.filter((c) => c.district);
  const byCode = new Map(cells.map((c) => [c.district.code, c]));
  const value = (f) => {
    const c = byCode.get(f.properties.code);
    return c && !c.suppressed && c.value !== null ? Number(c.value) : null;
  };
  const status = (f) => {
    const c = byCode.get(f.properties.code);
    if (!c) return "no anchors";
    if (c.suppressed) return "suppressed";
    if (c.value === null) return "not reported";
    return "";
  };
  const chartEl = $("map-chart");
  const title = (f) => `${f.properties.name}${status(f) ? `: ${status(f)}` : ""}`;
  const plot = Plot.plot({
    width: chartWidth(chartEl),
    height: 520, // the districts fit inside, their shape kept
    ariaLabel: `Map of districts shaded by ${fig.label}, ${state.year}`,
    ariaDescription: "The table beside the map gives each district's figure.",
    // Boundaries in longitude and latitude; room on the left for the westernmost district's
    // name (Wolverhampton's, on the edge).
    projection: { type: "mercator", domain: geo, inset: 6, insetLeft: 24 },
    color: { type: "linear", scheme: "blues", zero: true, legend: true, label: fig.column, tickFormat: "~s" },
    marks: [
      Plot.geo(geo.features, { fill: "#e4e4e4", stroke: "#333", strokeWidth: 1, title }),
      Plot.geo(geo.features.filter((f) => value(f) !== null), { fill: value, stroke: "#333", strokeWidth: 1, title }),
      // Names only: the small districts leave no room for a second line; the fill, each
      // shape's title and the table say which are suppressed or have no anchors.
      Plot.text(
        geo.features,
        Plot.centroid({
          text: (f) => f.properties.name,
          fill: "#111",
          stroke: "white",
          strokeWidth: 3,
          fontSize: 10,
          lineWidth: 7,
        }),
      ),
    ],
  });
  const caption = "Districts shaded by the figure. Grey: suppressed, not reported, or no anchors based there; the table says which.";
  figure(chartEl, plot, caption);
  $("map-note").textContent = geo.source ? `Map: ${geo.name}. Source: ${geo.source}. Licence: ${geo.licence}.` : "";
  const names = new Map(geo.features.map((f) => [f.properties.code, f.properties.name]));
  const rows = cells
    .slice()
    .sort((a, b) => (names.get(a.district.code) || a.district.name).localeCompare(names.get(b.district.code) || b.district.name))
    .map((c) => [
      { text: c.district.name },
      valueCell(c),
      { text: `${c.contributors} of ${c.eligible}` },
      { text: c.coverage === null ? "—" : `${Math.round(c.coverage * 100)}%`, num: true },
    ]);
  renderTable($("map-table"), {
    caption: `${fig.label} by home district, ${state.year}`,
    label: "the districts table",
    filename: `districts-${code}-${state.region}-${state.year.replace("/", "-")}.csv`,
    columns: [{ label: "Home district" }, { label: fig.column, num: true }, { label: "Anchors reporting" }, { label: "Coverage", num: true }],
    rows,
  });
}

// ---------------------------------------------------------------- loading

// Runs `work` as the page's current load; a later load makes an earlier one's result moot.
async function load(work) {
  const generation = ++state.generation;
  document.body.dataset.state = "loading";
  setStatus("Loading…");
  const started = performance.now();
  try {
    await work(() => generation === state.generation);
    if (generation !== state.generation) return;
    document.body.dataset.state = "ready";
    document.body.dataset.renderMs = String(Math.round(performance.now()));
    const region = state.regions.find((r) => r.code === state.region);
    setStatus(`Showing ${state.year} for ${region ? region.name : state.region} (loaded in ${Math.round(performance.now() - started)} ms).`);
  } catch (e) {
    if (generation !== state.generation) return;
    document.body.dataset.state = "error";
    const refused = e.code === "UNAUTHENTICATED";
    setStatus(
      refused
        ? "The token was refused (expired, revoked, or not for this server). Forget it to see the public view."
        : `Could not load the figures: ${e.message}${e.code ? ` (${e.code})` : ""}`,
      true,
    );
  }
}

function describeViewer(v) {
  if (!v) return "Reading as an anonymous visitor: the public view.";
  const who = v.network ? ` of ${v.network.name}` : v.region ? ` for ${v.region.name}` : v.organisation ? ` of ${v.organisation.name}` : "";
  return `Reading as ${v.role.toLowerCase().replace(/_/g, " ")}${who} (token expires ${new Date(v.expiresAt).toLocaleString("en-GB")}).`;
}

async function loadContext() {
  const ctx = await query.context();
  state.viewer = ctx.viewer;
  state.regions = ctx.regions;
  state.networks = ctx.networks.edges.map((e) => e.node);
  $("reader").textContent = describeViewer(ctx.viewer);
  document.body.dataset.reader = ctx.viewer ? ctx.viewer.role : "ANONYMOUS";
  const select = $("region");
  const wanted = state.region || (ctx.viewer && ctx.viewer.region && ctx.viewer.region.code) || DEFAULT_REGION;
  select.replaceChildren(...ctx.regions.map((r) => h("option", { value: r.code }, r.name)));
  state.region = ctx.regions.some((r) => r.code === wanted) ? wanted : ctx.regions[0] && ctx.regions[0].code;
  select.value = state.region || "";
  const region = ctx.regions.find((r) => r.code === state.region);
  $("title").textContent = region ? `${region.name}: regional impact of anchor institutions` : "Regional impact of anchor institutions";
}

// The trends over every year, then, for a fixed panel, over the years anyone reported:
// a panel keeps the institutions that reported in every year asked for.
async function loadTrends() {
  const [all] = await Promise.allSettled([query.trends(state.region, yearsWindow(), false)]);
  state.trends = settled(all) && all.value.impact;
  state.trendsError = all.reason;
  if (!state.trends || !$("panel").checked) return;
  const years = reportedYears(state.trends.cells);
  if (years.length) state.trends = (await query.trends(state.region, years, true)).impact;
}

// The years from the first to the last in which any anchor reported what this reader may
// count; when there are none, the years in which anchors were members.
function reportedYears(cells) {
  const member = [...new Set(cells.filter((c) => c.eligible > 0).map((c) => c.year))].sort();
  const reported = member.filter((y) => cells.some((c) => c.year === y && c.contributors > 0));
  if (!reported.length) return member;
  return member.filter((y) => y >= reported[0] && y <= reported.at(-1));
}

// The years to choose from, newest first; the default is the newest with reports.
function fillYears() {
  const cells = state.trends ? state.trends.cells : yearsWindow().map((year) => ({ year, eligible: 1, contributors: 0 }));
  const years = reportedYears(cells).slice().reverse();
  const reported = years.filter((y) => cells.some((c) => c.year === y && c.contributors > 0));
  const select = $("year");
  select.replaceChildren(...years.map((y) => h("option", { value: y }, y)));
  if (!years.includes(state.year)) state.year = reported[0] || years[0] || yearsWindow().at(-1);
  if (!years.length) select.append(h("option", { value: state.year }, state.year));
  select.value = state.year;
}

async function loadYear(fresh) {
  const results = await Promise.allSettled([
    query.headline(state.region, state.year),
    query.networks(state.region, state.year),
    query.districts(state.region, state.year, $("map-metric").value),
    geography(),
  ]);
  const [headline, networks, districts, geo] = results.map(settled);
  if (!fresh()) return;
  state.headline = headline && headline.impact;
  if (headline) renderHeadline(headline.impact);
  else {
    showProblem(["headline"], results[0].reason);
    $("withheld").replaceChildren();
  }
  if (networks) renderNetworks(networks, state.headline);
  else showProblem(["networks-chart", "networks-table"], results[1].reason);
  if (districts && geo) renderMap(districts, geo);
  else showProblem(["map-chart", "map-table"], results[2].reason || results[3].reason);
}

async function loadMap(fresh) {
  const results = await Promise.allSettled([query.districts(state.region, state.year, $("map-metric").value), geography()]);
  const [districts, geo] = results.map(settled);
  if (!fresh()) return;
  if (districts && geo) renderMap(districts, geo);
  else showProblem(["map-chart", "map-table"], results[0].reason || results[1].reason);
}

async function loadEverything(fresh) {
  await loadContext();
  if (!state.region) throw new ApiError("no region is registered on this server", "NOT_FOUND", 404);
  await loadTrends();
  if (!fresh()) return;
  fillYears();
  renderTrends();
  await loadYear(fresh);
}

function setUp() {
  for (const id of ["trend-metric", "map-metric"]) {
    $(id).replaceChildren(...FIGURES.map((f) => h("option", { value: f.code }, f.label)));
  }
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    state.token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    load(loadEverything);
  });
  $("forget-token").addEventListener("click", () => {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    load(loadEverything);
  });
  $("region").addEventListener("change", (e) => {
    state.region = e.target.value;
    load(async (fresh) => {
      await loadTrends();
      if (!fresh()) return;
      fillYears();
      renderTrends();
      await loadYear(fresh);
    });
  });
  $("year").addEventListener("change", (e) => {
    state.year = e.target.value;
    load(loadYear);
  });
  $("panel").addEventListener("change", () =>
    load(async (fresh) => {
      await loadTrends();
      if (fresh()) renderTrends();
    }),
  );
  $("trend-metric").addEventListener("change", () => renderTrends());
  $("map-metric").addEventListener("change", () => load(loadMap));
  load(loadEverything);
}

setUp();
