// One SKU's plan: the MPS grid, its CSV export and the chart, with every week's stock status marked the same way.

import { $, el, units, toCsv, download } from "./dom.js";

const ROWS = [
  ["baseline", "Baseline"],
  ["promotion_uplift", "Promotion uplift"],
  ["sensing_adjustment", "Demand sensing"],
  ["forecast", "Forecast"],
  ["booked_orders", "Booked orders"],
  ["gross_requirements", "Gross requirements"],
  ["returns_receipts", "Returns receipts"],
  ["mps_quantity", "MPS quantity"],
  ["projected_available", "Projected available"],
  ["safety_stock", "Safety stock"],
  ["atp", "Available to promise"],
  ["cumulative_atp", "Cumulative ATP"],
  ["capacity", "Capacity"],
  ["capacity_shortfall", "Capacity shortfall"],
];
// Rows planning adds once sales orders exist; shown only when the plan carries them.
const OPTIONAL_ROWS = new Set(["booked_orders", "atp", "cumulative_atp"]);
const KEY_ROWS = new Set(["forecast", "mps_quantity", "projected_available"]);
// Float noise below this is not a real shortage (the planning core uses the same threshold).
const EPSILON = 1e-6;

export const STATUS_TEXT = { short: "shortfall", "below-safety": "below safety stock", ok: "" };

// "short" when projected available falls below zero, "below-safety" when it stays at or above zero but below
// safety stock, else "ok". The grid, the chart, the what-if and the exceptions inbox all use this one rule.
export function weekStatus(week, safetyStock) {
  if (week.projected_available < -EPSILON) return "short";
  if (safetyStock > 0 && week.projected_available < safetyStock - EPSILON) return "below-safety";
  return "ok";
}

function rowsOf(mps) {
  const first = mps.weeks[0] || {};
  return ROWS.filter(([field]) => !OPTIONAL_ROWS.has(field) || field in first);
}

function cellValue(week, field, item) {
  return field === "safety_stock" ? (item ? item.safety_stock : null) : week[field];
}

function caption(mps, statuses) {
  const short = statuses.filter((s) => s === "short").length;
  const below = statuses.filter((s) => s === "below-safety").length;
  const capacity = mps.weeks.filter((w) => w.capacity_shortfall > EPSILON).length;
  const parts = [
    short ? `${short} week(s) of shortfall` : "no shortfall",
    below ? `${below} week(s) below safety stock` : null,
    capacity ? `${capacity} week(s) short of capacity` : null,
  ].filter(Boolean);
  return `${mps.sku}: ${mps.weeks.length} weeks, plan version ${mps.plan_version}; ${parts.join(", ")}.`;
}

export function renderGrid(state, onSelectWeek) {
  const { mps, item } = state;
  const table = $("mps-grid");
  const safety = item ? item.safety_stock : 0;
  const statuses = mps.weeks.map((w) => weekStatus(w, safety));
  const head = el(
    "tr",
    {},
    el("th", { scope: "col" }, "Week of"),
    mps.weeks.map((week, index) => {
      const changed = (week.changed_by || []).length;
      const button = el(
        "button",
        {
          type: "button",
          className: "week",
          "data-week": week.week_start,
          "aria-pressed": state.week === week.week_start ? "true" : "false",
        },
        week.week_start.slice(5),
        changed ? el("span", { className: "changed", title: `changed by ${changed} event(s)` }, " •") : null,
        changed ? el("span", { className: "visually-hidden" }, `, changed by ${changed} event(s)`) : null,
      );
      button.addEventListener("click", () => onSelectWeek(week.week_start));
      return el("th", { scope: "col", "data-week": week.week_start, "data-status": statuses[index] }, button);
    }),
  );
  const body = rowsOf(mps).map(([field, label]) =>
    el(
      "tr",
      { className: KEY_ROWS.has(field) ? "key-row" : null, "data-field": field },
      el("th", { scope: "row" }, label),
      mps.weeks.map((week, index) => {
        const value = cellValue(week, field, item);
        const status = field === "projected_available" ? statuses[index] : "ok";
        const capacityShort = field === "capacity_shortfall" && value > EPSILON;
        const className = status !== "ok" ? status : capacityShort ? "capacity-short" : null;
        return el(
          "td",
          {
            "data-field": field,
            "data-week": week.week_start,
            "data-value": value === null || value === undefined ? "" : value,
            className,
          },
          status === "short" ? "⚠ " : status === "below-safety" ? "▽ " : capacityShort ? "⚠ " : null,
          field === "capacity" && value === null ? "unlimited" : units(value),
          status !== "ok" ? el("span", { className: "visually-hidden" }, ` (${STATUS_TEXT[status]})`) : null,
          capacityShort ? el("span", { className: "visually-hidden" }, " (capacity short)") : null,
        );
      }),
    ),
  );
  const statusRow = el(
    "tr",
    { "data-field": "status", className: "status-row" },
    el("th", { scope: "row" }, "Stock status"),
    mps.weeks.map((week, index) =>
      el(
        "td",
        { "data-field": "status", "data-week": week.week_start, "data-value": statuses[index], className: statuses[index] === "ok" ? null : statuses[index] },
        STATUS_TEXT[statuses[index]] || "ok",
      ),
    ),
  );
  table.replaceChildren(
    el("caption", { id: "grid-caption" }, caption(mps, statuses)),
    el("thead", {}, head),
    el("tbody", {}, body, statusRow),
  );
}

export function exportGrid(state) {
  const { mps, item } = state;
  if (!mps) return;
  const safety = item ? item.safety_stock : 0;
  const rows = [["row", ...mps.weeks.map((w) => w.week_start)]];
  for (const [field, label] of rowsOf(mps)) {
    rows.push([label, ...mps.weeks.map((w) => cellValue(w, field, item))]);
  }
  rows.push(["Stock status", ...mps.weeks.map((w) => weekStatus(w, safety))]);
  download(`mps-${mps.sku}-v${mps.plan_version}.csv`, toCsv(rows));
}

export function renderChart(state) {
  const chart = $("chart");
  const { mps, item } = state;
  if (!mps || typeof Plotly === "undefined") return;
  const safety = item ? item.safety_stock : 0;
  const x = mps.weeks.map((w) => w.week_start);
  const series = (field) => mps.weeks.map((w) => w[field]);
  const statuses = mps.weeks.map((w) => weekStatus(w, safety));
  const flagged = (status) => mps.weeks.map((w, i) => (statuses[i] === status ? w.projected_available : null));
  const traces = [
    { type: "bar", name: "Baseline", x, y: series("baseline"), marker: { color: "#3b5b85" } },
    { type: "bar", name: "Promotion uplift", x, y: series("promotion_uplift"), marker: { color: "#d9730d" } },
    { type: "bar", name: "Demand sensing", x, y: series("sensing_adjustment"), marker: { color: "#7b4fa6" } },
    { type: "scatter", mode: "lines+markers", name: "Forecast", x, y: series("forecast"), line: { color: "#1a1a1a" } },
    { type: "scatter", mode: "markers", name: "MPS quantity", x, y: series("mps_quantity"), marker: { color: "#1d7a4a", symbol: "diamond", size: 8 } },
    { type: "scatter", mode: "lines", name: "Projected available", x, y: series("projected_available"), line: { color: "#0b4f8a", width: 2 } },
    { type: "scatter", mode: "lines", name: "Safety stock", x, y: x.map(() => safety), line: { color: "#6b4200", dash: "dot", width: 2 } },
    { type: "scatter", mode: "lines", name: "Capacity", x, y: series("capacity"), line: { color: "#b3261e", dash: "dash", width: 2 }, connectgaps: false },
    { type: "scatter", mode: "markers", name: "Shortfall", x, y: flagged("short"), marker: { color: "#8a1010", symbol: "x", size: 11 } },
    { type: "scatter", mode: "markers", name: "Below safety stock", x, y: flagged("below-safety"), marker: { color: "#6b4200", symbol: "triangle-down", size: 10 } },
  ];
  const mine = state.promotions.filter((p) => p.status !== "cancelled" && p.items.some((i) => i.sku === mps.sku));
  const shapes = mine.map((p) => ({
    type: "rect", xref: "x", yref: "paper", x0: p.starts_on, x1: p.ends_on, y0: 0, y1: 1,
    fillcolor: p.status === "at_risk" ? "rgba(179,38,30,0.12)" : "rgba(217,115,13,0.12)", line: { width: 0 },
  }));
  const annotations = mine.map((p) => ({
    xref: "x", yref: "paper", x: p.starts_on, y: 1, yanchor: "bottom", xanchor: "left", showarrow: false,
    text: `${p.promotion_id}${p.status === "at_risk" ? " (at risk)" : ""}`, font: { size: 11 },
  }));
  // On a phone the legend wraps onto several rows under the plot: the figure grows to keep the plot readable.
  const narrow = chart.clientWidth < 600;
  const layout = {
    height: narrow ? 520 : 400, font: { size: narrow ? 11 : 12 },
    barmode: "relative", margin: { t: 30, r: 10, b: 40, l: 50 }, legend: { orientation: "h", y: narrow ? -0.3 : -0.15 },
    xaxis: { type: "date", title: { text: "week" } }, yaxis: { title: { text: "units" }, tickformat: ",d" },
    shapes, annotations,
  };
  // No mode bar: its unlabelled buttons would be controls nested in the figure; the grid holds every number.
  Plotly.react(chart, traces, layout, { displaylogo: false, displayModeBar: false, responsive: true });
  const count = (status) => statuses.filter((s) => s === status).length;
  $("chart-caption").textContent =
    `${mps.sku} over ${mps.weeks.length} weeks: stacked bars baseline, promotion uplift and demand sensing; lines ` +
    `forecast, projected available, safety stock (${units(safety)}) and capacity; ${count("short")} week(s) of ` +
    `shortfall (crosses), ${count("below-safety")} below safety stock (triangles); shaded bands: promotions ` +
    `(${mine.map((p) => p.promotion_id).join(", ") || "none"}). The grid above holds the same numbers.`;
}
