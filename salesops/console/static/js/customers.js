// Customers: what each account earns after the cost of serving it, from the returns service's cost-to-serve.
// The whale curve (GET /v1/cost-to-serve: accounts ranked by contribution, the running total and its share) as a
// chart and a table with the same numbers, the totals per assigned segment with each account's suggested segment
// beside its own, and one account's ledger month by month (GET /v1/accounts/{id}/cost-to-serve). Both need
// `costs:read`; a key without it is told so here and the rest of the page goes on working.

import { api, ApiError } from "./api.js";
import { $, el } from "./dom.js";

// The cost pools in the order the service lists them, named for a person.
const POOLS = [
  ["order", "Orders"],
  ["order_line", "Order lines"],
  ["unit_picked", "Units picked"],
  ["shipment", "Shipments (drops)"],
  ["backordered_line", "Backordered lines"],
  ["rush_order", "Rush orders"],
  ["return_line", "Return lines"],
  ["complaint", "Complaints"],
  ["returned_goods", "Returned goods written off (units)"],
];
const POOL_NAMES = new Map(POOLS);

const view = { curve: null, account: "", ledger: null, loading: null };
window.salesopsCustomers = view; // inspected by the browser tests

// Money in whole units of the currency: 1234.56 EUR reads "€1,235"; the exact figure stays in data-value.
export function money(value, currency) {
  if (value === null || value === undefined) return "—";
  const whole = Math.round(value) || 0;
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency, maximumFractionDigits: 0, minimumFractionDigits: 0 }).format(whole);
  } catch (_) {
    return `${whole.toLocaleString("en-US")} ${currency}`;
  }
}

const percent = (value, digits = 1) => (value === null || value === undefined ? "—" : `${value.toFixed(digits)} %`);
const share = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(0)} %`);
const count = (value) => (Number.isInteger(value) ? value : Math.round(value * 10) / 10).toLocaleString("en-US");
const monthName = (iso) => new Date(`${iso}T00:00:00Z`).toLocaleDateString("en-GB", { month: "short", year: "numeric", timeZone: "UTC" });

function numberCell(value, text, attrs = {}) {
  const negative = typeof value === "number" && value < 0;
  return el("td", { "data-value": value, className: negative ? "negative" : null, ...attrs }, text);
}

function segmentText(segment) {
  return segment || "unassigned";
}

function suggestionCell(row) {
  const differs = row.suggested_segment && row.suggested_segment !== row.segment;
  return el(
    "td",
    { "data-field": "suggested_segment", "data-value": row.suggested_segment || "", className: differs ? "mismatch" : null },
    row.suggested_segment || "—",
    differs ? el("span", { className: "visually-hidden" }, " (differs from the assigned segment)") : null,
  );
}

function scrollTable(id, caption, head, rows, foot) {
  return el(
    "div",
    { className: "scroll", role: "region", tabindex: "0", "aria-labelledby": `${id}-caption` },
    el(
      "table",
      { id, className: "money" },
      el("caption", { id: `${id}-caption` }, caption),
      el("thead", {}, el("tr", {}, head.map((text) => el("th", { scope: "col" }, text)))),
      el("tbody", {}, rows),
      foot ? el("tfoot", {}, foot) : null,
    ),
  );
}

// ------------------------------------------------------------------ period and filter

function monthInput(name) {
  return $("customers-form").elements.namedItem(name);
}

function query() {
  const params = new URLSearchParams();
  const first = monthInput("from").value;
  const last = monthInput("to").value;
  if (first) params.set("from", `${first}-01`);
  if (last) params.set("to", `${last}-01`);
  const segment = $("customers-segment").value;
  if (segment) params.set("segment", segment);
  return params;
}

function showMessage(text, isError) {
  const box = $("customers-message");
  box.textContent = text;
  box.classList.toggle("error", Boolean(isError));
}

function explain(error) {
  if (error instanceof ApiError && error.status === 403) {
    return "This key may not read cost-to-serve: it needs the costs:read scope (the generated planner and crm keys have it). " +
      "The rest of the console works without it.";
  }
  if (error instanceof ApiError && error.notOffered) return "The returns service does not offer cost-to-serve.";
  if (error instanceof ApiError && error.status === 422) return `The period was refused: ${error.detail}`;
  return `Could not load cost-to-serve: ${error.message}`;
}

// ------------------------------------------------------------------ the whale curve

function renderSegments(curve) {
  const rows = curve.segments.map((s) =>
    el(
      "tr",
      { "data-segment": s.segment || "" },
      el("th", { scope: "row" }, segmentText(s.segment)),
      numberCell(s.accounts, String(s.accounts), { "data-field": "accounts" }),
      numberCell(s.revenue, money(s.revenue, curve.currency), { "data-field": "revenue" }),
      numberCell(s.cost_to_serve, money(s.cost_to_serve, curve.currency), { "data-field": "cost_to_serve" }),
      numberCell(s.contribution, money(s.contribution, curve.currency), { "data-field": "contribution" }),
      numberCell(s.contribution_pct, percent(s.contribution_pct), { "data-field": "contribution_pct" }),
    ),
  );
  const t = curve.totals;
  const foot = el(
    "tr",
    {},
    el("th", { scope: "row" }, "All"),
    numberCell(curve.accounts_total, String(curve.accounts_total)),
    numberCell(t.revenue, money(t.revenue, curve.currency)),
    numberCell(t.cost_to_serve, money(t.cost_to_serve, curve.currency)),
    numberCell(t.contribution, money(t.contribution, curve.currency)),
    numberCell(t.contribution_pct, percent(t.contribution_pct)),
  );
  $("customers-segments").replaceChildren(
    scrollTable(
      "segment-totals",
      `Totals per assigned segment, ${curve.currency}`,
      ["Segment", "Accounts", "Revenue", "Cost-to-serve", "Contribution", "Contribution %"],
      rows,
      foot,
    ),
  );
}

function renderWhaleTable(curve) {
  const rows = curve.accounts.map((a) =>
    el(
      "tr",
      { "data-account": a.account_id, "data-rank": a.rank, className: a.account_id === view.account ? "selected" : null },
      el("td", { "data-field": "rank" }, String(a.rank)),
      el(
        "th",
        { scope: "row" },
        el(
          "button",
          { type: "button", className: "link", "data-account": a.account_id, "aria-pressed": a.account_id === view.account ? "true" : "false" },
          a.account_id,
        ),
        a.name ? el("span", { className: "meta account-name" }, a.name) : null,
      ),
      el("td", { "data-field": "segment", "data-value": a.segment || "" }, segmentText(a.segment)),
      suggestionCell(a),
      numberCell(a.revenue, money(a.revenue, curve.currency), { "data-field": "revenue" }),
      numberCell(a.cost_of_goods, money(a.cost_of_goods, curve.currency), { "data-field": "cost_of_goods" }),
      numberCell(a.cost_to_serve, money(a.cost_to_serve, curve.currency), { "data-field": "cost_to_serve" }),
      numberCell(a.contribution, money(a.contribution, curve.currency), { "data-field": "contribution" }),
      numberCell(a.contribution_pct, percent(a.contribution_pct), { "data-field": "contribution_pct" }),
      numberCell(a.cumulative_contribution, money(a.cumulative_contribution, curve.currency), { "data-field": "cumulative_contribution" }),
      numberCell(a.cumulative_share, share(a.cumulative_share), { "data-field": "cumulative_share" }),
    ),
  );
  const shown = curve.accounts.length < curve.accounts_total ? `the first ${curve.accounts.length} of ${curve.accounts_total}` : `${curve.accounts_total}`;
  $("customers-curve").replaceChildren(
    scrollTable(
      "whale-table",
      `The whale curve: ${shown} account(s) ranked by contribution after cost-to-serve, ${curve.from_month.slice(0, 7)} to ` +
        `${curve.to_month.slice(0, 7)}, ${curve.currency}. Select an account for its ledger.`,
      ["Rank", "Account", "Segment", "Suggested segment", "Revenue", "Cost of goods", "Cost-to-serve", "Contribution", "Contribution %", "Cumulative contribution", "Cumulative share"],
      rows,
    ),
  );
}

function renderWhaleChart(curve) {
  const chart = $("whale-chart");
  if (typeof Plotly === "undefined") return;
  const x = curve.accounts.map((a) => a.account_id);
  const contributions = curve.accounts.map((a) => a.contribution);
  const narrow = chart.clientWidth < 600;
  const traces = [
    {
      type: "bar", name: "Contribution", x, y: contributions,
      marker: { color: contributions.map((v) => (v < 0 ? "#b3261e" : "#3b5b85")) },
    },
    {
      type: "scatter", mode: "lines+markers", name: "Cumulative contribution", x, y: curve.accounts.map((a) => a.cumulative_contribution),
      line: { color: "#1a1a1a", width: 2 },
    },
  ];
  const layout = {
    height: narrow ? 420 : 380, font: { size: narrow ? 11 : 12 },
    margin: { t: 40, r: 10, b: narrow ? 90 : 70, l: narrow ? 60 : 80 }, legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
    xaxis: { type: "category", title: { text: "accounts, by contribution" }, automargin: true, showticklabels: x.length <= 40 },
    yaxis: { title: { text: curve.currency }, tickformat: ",d", zeroline: true },
  };
  // No mode bar: its unlabelled buttons would be controls nested in the figure; the table holds every number.
  Plotly.react(chart, traces, layout, { displaylogo: false, displayModeBar: false, responsive: true });
  const peak = curve.accounts.reduce((best, a) => (best === null || a.cumulative_contribution > best.cumulative_contribution ? a : best), null);
  const losing = curve.accounts.filter((a) => a.contribution < 0).length;
  $("whale-caption").textContent = curve.accounts.length
    ? `The whale curve over ${curve.accounts.length} account(s): bars each account's contribution after cost-to-serve ` +
      `(red below zero), the line the running total. It peaks at ${money(peak.cumulative_contribution, curve.currency)} after ` +
      `${peak.rank} account(s) and ends at ${money(curve.totals.contribution, curve.currency)}; ${losing} account(s) ` +
      "cost more to serve than they earn. The table below holds the same numbers."
    : "No account has activity in this period.";
}

export async function loadCustomers() {
  const params = query();
  const stamp = params.toString();
  showMessage("Loading cost-to-serve …");
  const loading = api("returns", `/v1/cost-to-serve?${stamp}`);
  view.loading = loading;
  let curve;
  try {
    curve = await loading;
  } catch (error) {
    if (view.loading !== loading) return;
    view.curve = null;
    $("customers-results").hidden = true;
    showMessage(explain(error), true);
    return;
  } finally {
    if (view.loading === loading) view.loading = null;
  }
  if (view.loading !== null) return; // a later request is on its way
  view.curve = curve;
  if (!monthInput("from").value) monthInput("from").value = curve.from_month.slice(0, 7);
  if (!monthInput("to").value) monthInput("to").value = curve.to_month.slice(0, 7);
  $("customers-results").hidden = false;
  showMessage(
    `${curve.accounts_total} account(s)${curve.segment ? ` assigned to ${curve.segment}` : ""} from ` +
      `${curve.from_month.slice(0, 7)} to ${curve.to_month.slice(0, 7)}: contribution ` +
      `${money(curve.totals.contribution, curve.currency)} on revenue ${money(curve.totals.revenue, curve.currency)}.`,
  );
  renderSegments(curve);
  renderWhaleTable(curve);
  renderWhaleChart(curve);
  if (view.account) await loadLedger(view.account);
}

// ------------------------------------------------------------------ one account's ledger

function poolCell(pool, currency) {
  if (!pool) return el("td", { "data-count": 0, "data-value": 0 }, "—");
  const unit = pool.pool === "returned_goods" ? "unit(s)" : "×";
  return el(
    "td",
    { "data-pool": pool.pool, "data-count": pool.count, "data-value": pool.amount },
    money(pool.amount, currency),
    el("span", { className: "driver" }, ` (${count(pool.count)} ${unit})`),
  );
}

function ledgerRow(label, row, pools, currency, attrs) {
  const byName = new Map(row.pools.map((p) => [p.pool, p]));
  return el(
    "tr",
    attrs,
    el("th", { scope: "row" }, label),
    numberCell(row.revenue, money(row.revenue, currency), { "data-field": "revenue" }),
    numberCell(row.cost_of_goods, money(row.cost_of_goods, currency), { "data-field": "cost_of_goods" }),
    pools.map((name) => poolCell(byName.get(name), currency)),
    numberCell(row.cost_to_serve, money(row.cost_to_serve, currency), { "data-field": "cost_to_serve" }),
    numberCell(row.contribution, money(row.contribution, currency), { "data-field": "contribution" }),
    numberCell(row.contribution_pct, percent(row.contribution_pct), { "data-field": "contribution_pct" }),
  );
}

function renderLedger(ledger) {
  const currency = ledger.currency;
  // Every pool the service lists, in its order; pools it adds later go last under their own name.
  const listed = new Set([...ledger.totals.pools, ...ledger.months.flatMap((m) => m.pools)].map((p) => p.pool));
  const pools = [...POOLS.map(([name]) => name).filter((name) => listed.has(name)), ...[...listed].filter((name) => !POOL_NAMES.has(name))];
  const head = ["Month", "Revenue", "Cost of goods", ...pools.map((name) => `${POOL_NAMES.get(name) || name}: amount (count)`), "Cost-to-serve", "Contribution", "Contribution %"];
  const rows = ledger.months.map((m) => ledgerRow(monthName(m.month), m, pools, currency, { "data-month": m.month }));
  const suggested = ledger.suggested_segment && ledger.suggested_segment !== ledger.segment
    ? `its behaviour suggests ${ledger.suggested_segment}`
    : `its behaviour suggests the same${ledger.suggested_segment ? "" : " (not enough orders to judge)"}`;
  $("ledger").replaceChildren(
    el("h3", { id: "ledger-title", tabindex: "-1" }, `Ledger of ${ledger.account_id}${ledger.name ? ` · ${ledger.name}` : ""}`),
    el(
      "p",
      { className: "meta", id: "ledger-segment" },
      `Assigned segment: ${segmentText(ledger.segment)}; ${suggested}. ` +
        `Contribution ${money(ledger.totals.contribution, currency)} (${percent(ledger.totals.contribution_pct)}) from ` +
        `${ledger.from_month.slice(0, 7)} to ${ledger.to_month.slice(0, 7)}.`,
    ),
    ledger.months.length
      ? scrollTable(
        "ledger-table",
        `${ledger.account_id} month by month, ${currency}: each cost pool's amount with its driver count.`,
        head,
        rows,
        ledgerRow("Total", ledger.totals, pools, currency, { "data-month": "total" }),
      )
      : el("p", { className: "help" }, "No activity in this period."),
  );
}

export async function loadLedger(accountId) {
  view.account = accountId;
  for (const button of document.querySelectorAll("#whale-table button[data-account]")) {
    button.setAttribute("aria-pressed", button.dataset.account === accountId ? "true" : "false");
    button.closest("tr").classList.toggle("selected", button.dataset.account === accountId);
  }
  const params = query();
  params.delete("segment");
  $("ledger").replaceChildren(el("p", { role: "status" }, `Loading the ledger of ${accountId} …`));
  try {
    const ledger = await api("returns", `/v1/accounts/${encodeURIComponent(accountId)}/cost-to-serve?${params}`);
    if (view.account !== accountId) return;
    view.ledger = ledger;
    renderLedger(ledger);
  } catch (error) {
    if (view.account !== accountId) return;
    view.ledger = null;
    const text = error instanceof ApiError && error.status === 404
      ? `The returns service knows nothing of ${accountId}.`
      : explain(error);
    $("ledger").replaceChildren(el("p", { className: "error", role: "alert" }, text));
  }
}

// Signed out: nothing of the last key's figures stays on the page.
export function clearCustomers() {
  Object.assign(view, { curve: null, account: "", ledger: null, loading: null });
  $("customers-results").hidden = true;
  for (const id of ["customers-curve", "customers-segments", "ledger"]) $(id).replaceChildren();
  showMessage("");
}

export function wireCustomers() {
  $("customers-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadCustomers();
  });
  $("customers-curve").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-account]");
    if (!button) return;
    await loadLedger(button.dataset.account);
    const title = $("ledger-title");
    if (title) title.focus();
  });
}
