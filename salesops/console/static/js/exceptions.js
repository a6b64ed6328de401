// The exceptions inbox: every SKU whose plan needs a planner, most severe first, each one click from its plan.

import { allPages, api, inPool } from "./api.js";
import { $, el, units, toCsv, download } from "./dom.js";
import { weekStatus } from "./plan.js";

const PLAN_FETCH_WIDTH = 4;
export const SEVERITY = { 4: "critical", 3: "high", 2: "medium", 1: "low" };
const KIND_TEXT = {
  shortfall: "shortfall",
  "promotion-at-risk": "promotion at risk",
  "frozen-fence": "frozen-fence exception",
  "frozen-fence-infeasible": "frozen fence cannot be met",
  "launch-reference-missing": "launch reference missing",
  "below-safety": "below safety stock",
};
// Service tiers, most demanding first: an exception touching a strategic account comes before the same one
// touching only stable accounts.
const TIERS = ["strategic", "integrated", "emerging", "stable"];

const tierRank = (tiers) => Math.min(TIERS.length, ...tiers.map((t) => TIERS.indexOf(t)).filter((i) => i >= 0));

function stockExceptions(plan, item) {
  const safety = item ? item.safety_stock : 0;
  const found = [];
  for (const [status, kind, severity] of [["short", "shortfall", 4], ["below-safety", "below-safety", 1]]) {
    const weeks = plan.weeks.filter((w) => weekStatus(w, safety) === status);
    if (!weeks.length) continue;
    const lowest = Math.min(...weeks.map((w) => w.projected_available));
    found.push({
      kind,
      severity,
      first_week: weeks[0].week_start,
      weeks: weeks.length,
      tiers: [],
      detail:
        kind === "shortfall"
          ? `projected available below zero in ${weeks.length} week(s), down to ${units(lowest)} units`
          : `projected available below safety stock (${units(safety)}) in ${weeks.length} week(s), down to ${units(lowest)} units`,
    });
  }
  return found;
}

function planExceptions(plan) {
  const byKind = new Map();
  for (const exception of plan.exceptions || []) {
    if (!byKind.has(exception.kind)) byKind.set(exception.kind, []);
    byKind.get(exception.kind).push(exception);
  }
  return [...byKind].map(([kind, list]) => ({
    kind,
    severity: 2,
    first_week: list[0].week_start,
    weeks: list.length,
    tiers: [],
    detail: list[0].message + (list.length > 1 ? ` (and ${list.length - 1} more)` : ""),
  }));
}

function promotionExceptions(conflict, promotions) {
  if (!conflict || !conflict.weeks || !conflict.weeks.length) return [];
  return conflict.promotion_ids.map((id) => {
    const promotion = promotions.get(id);
    return {
      kind: "promotion-at-risk",
      severity: 3,
      first_week: conflict.weeks[0].week_start,
      weeks: conflict.weeks.length,
      tiers: promotion ? promotion.account_segments || [] : [],
      detail: `${id}${promotion ? ` (${promotion.name})` : ""} needs ${units(conflict.total_shortfall)} units more than capacity allows`,
    };
  });
}

export function collectExceptions(summaries, plans, items, promotionList) {
  const promotions = new Map(promotionList.map((p) => [p.promotion_id, p]));
  const found = [];
  for (const summary of summaries) {
    const plan = plans.get(summary.sku);
    if (!plan) continue;
    const item = items.get(summary.sku);
    const rows = [
      ...stockExceptions(plan, item),
      ...promotionExceptions(plan.conflict || summary.open_conflict, promotions),
      ...planExceptions(plan),
    ];
    for (const row of rows) found.push({ sku: summary.sku, name: item ? item.name : "", ...row });
  }
  found.sort(
    (a, b) =>
      b.severity - a.severity ||
      tierRank(a.tiers) - tierRank(b.tiers) ||
      a.first_week.localeCompare(b.first_week) ||
      a.sku.localeCompare(b.sku),
  );
  return found;
}

// Plans are re-read only when their version moved since the last look.
export async function loadExceptions(state) {
  const [summaries, items] = await Promise.all([
    allPages("planning", "/v1/mps?limit=500", "next_after", "after"),
    allPages("planning", "/v1/items?limit=500", "next_after", "after"),
  ]);
  const cache = state.planCache;
  const stale = summaries.filter((s) => {
    const cached = cache.get(s.sku);
    return !cached || cached.plan_version !== s.plan_version || cached.generated_at !== s.generated_at;
  });
  await inPool(stale, PLAN_FETCH_WIDTH, async (summary) => {
    try {
      cache.set(summary.sku, await api("planning", `/v1/mps/${encodeURIComponent(summary.sku)}`));
    } catch (error) {
      if (error.status !== 404) throw error; // removed meanwhile
    }
  });
  const known = new Set(summaries.map((s) => s.sku));
  for (const sku of [...cache.keys()]) if (!known.has(sku)) cache.delete(sku);
  state.items = new Map(items.map((i) => [i.sku, i]));
  state.exceptions = collectExceptions(summaries, cache, state.items, state.promotions);
  state.exceptionsCheckedAt = new Date();
  return summaries.length;
}

export function renderExceptions(state, planCount) {
  const rows = state.exceptions.map((e) =>
    el(
      "tr",
      { "data-sku": e.sku, "data-kind": e.kind, "data-severity": SEVERITY[e.severity] },
      el("td", {}, el("span", { className: `badge severity-${SEVERITY[e.severity]}` }, SEVERITY[e.severity])),
      el("th", { scope: "row" }, el("a", { href: `/?sku=${encodeURIComponent(e.sku)}`, "data-sku": e.sku }, e.sku), e.name ? el("span", { className: "meta" }, ` ${e.name}`) : null),
      el("td", {}, KIND_TEXT[e.kind] || e.kind.replaceAll("-", " ")),
      el("td", {}, e.first_week),
      el("td", {}, String(e.weeks)),
      el("td", {}, e.tiers.length ? e.tiers.join(", ") : "—"),
      el("td", { className: "wrap" }, e.detail),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7 }, "No exceptions: every plan is covered.")));
  document.querySelector("#exceptions tbody").replaceChildren(...rows);
  const skus = new Set(state.exceptions.map((e) => e.sku)).size;
  $("exceptions-caption").textContent =
    `${state.exceptions.length} exception(s) on ${skus} of ${planCount} SKU(s), most severe first.`;
  $("exceptions-meta").textContent = `checked ${state.exceptionsCheckedAt.toLocaleTimeString()}`;
}

export function exportExceptions(state) {
  const rows = [["severity", "sku", "name", "exception", "from_week", "weeks", "account_tiers", "details"]];
  for (const e of state.exceptions) {
    rows.push([SEVERITY[e.severity], e.sku, e.name, KIND_TEXT[e.kind] || e.kind, e.first_week, e.weeks, e.tiers.join(" "), e.detail]);
  }
  download("exceptions.csv", toCsv(rows));
}
