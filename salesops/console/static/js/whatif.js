// What-if: a drafted promotion or a change of the SKU's capacity, on hand, safety stock or lot size, run through
// POST /v1/scenarios (which commits nothing), its plans beside the current ones week by week with every difference
// marked; a promotion is then announced through the promotion API, an item change kept by editing the item.

import { api, ApiError } from "./api.js";
import { $, el, units, clearFieldErrors, showFieldErrors, numberOrNull, setStatus } from "./dom.js";
import { weekStatus, STATUS_TEXT } from "./plan.js";

const COMPARED = [
  ["forecast", "Forecast"],
  ["mps_quantity", "MPS quantity"],
  ["projected_available", "Projected available"],
  ["capacity_shortfall", "Capacity shortfall"],
];

function isoDay(offsetDays) {
  const day = new Date();
  day.setUTCDate(day.getUTCDate() + offsetDays);
  return day.toISOString().slice(0, 10);
}

// The item fields a capacity what-if may change; an empty capacity means unlimited, any other empty field keeps
// the item's value.
const ITEM_FIELDS = ["weekly_capacity", "on_hand", "safety_stock", "lot_size"];

function prefillItemChange(sku, item) {
  const form = $("whatif-item-form");
  const stamp = `${sku}|${item ? item.revision : ""}`;
  if (form.dataset.stamp === stamp) return;
  form.dataset.stamp = stamp;
  for (const name of ITEM_FIELDS) {
    const value = item ? item[name] : null;
    form.elements.namedItem(name).value = value === null || value === undefined ? "" : String(value);
  }
  clearFieldErrors(form);
}

export function prefillWhatIf(sku, item) {
  prefillItemChange(sku, item);
  const form = $("whatif-form");
  if (form.dataset.sku === sku) return;
  form.dataset.sku = sku;
  const values = {
    promotion_id: `WHATIF-${sku}-${Math.random().toString(36).slice(2, 6).toUpperCase()}`,
    name: `What-if promotion on ${sku}`,
    sku,
    uplift_pct: "50",
    starts_on: isoDay(14),
    ends_on: isoDay(20),
    post_promo_dip_pct: "",
    post_promo_dip_weeks: "",
  };
  for (const [name, value] of Object.entries(values)) form.elements.namedItem(name).value = value;
  clearFieldErrors(form);
  $("whatif-result").replaceChildren();
}

function draftedPromotion(form) {
  const value = (name) => form.elements.namedItem(name).value.trim();
  const promotion = {
    promotion_id: value("promotion_id"),
    name: value("name"),
    starts_on: value("starts_on") || null,
    ends_on: value("ends_on") || null,
    items: [{ sku: value("sku"), uplift_pct: numberOrNull(form.elements.namedItem("uplift_pct")) }],
  };
  const dip = numberOrNull(form.elements.namedItem("post_promo_dip_pct"));
  const dipWeeks = numberOrNull(form.elements.namedItem("post_promo_dip_weeks"));
  if (dip !== null) promotion.post_promo_dip_pct = dip;
  if (dipWeeks !== null) promotion.post_promo_dip_weeks = dipWeeks;
  return promotion;
}

// Only what differs from the item is sent, so the answer names exactly what was tried.
function draftedItemChange(form, sku, item) {
  const change = { sku };
  for (const name of ITEM_FIELDS) {
    const value = numberOrNull(form.elements.namedItem(name));
    if (value === null && name !== "weekly_capacity") continue; // empty: the item's value
    if (!item || value !== item[name]) change[name] = value;
  }
  return change;
}

// `items.0.weekly_capacity` -> the capacity what-if's input; `items.0` (nothing to change) goes to its summary.
function itemInputFor(field) {
  const name = field.split(".")[2] || "";
  return ITEM_FIELDS.includes(name) ? name : "";
}

// `promotions.0.items.0.uplift_pct` (scenario) or `items.0.uplift_pct` (promotion API) -> the form's input.
function inputFor(field) {
  const path = field.replace(/^promotions\.\d+\.?/, "");
  if (path.startsWith("items")) return path.endsWith("uplift_pct") ? "uplift_pct" : "sku";
  return path.split(".")[0];
}

function compareTable(plan, current, safety) {
  const changed = new Set(plan.changes.map((c) => `${c.field}|${c.week_start}`));
  const nowWeeks = new Map((current ? current.weeks : []).map((w) => [w.week_start, w]));
  // Capacity is an input, not a result the scenario diffs: its difference is read off the two plans.
  if ("weekly_capacity" in (plan.item_changes || {})) {
    for (const week of plan.weeks) {
      const now = nowWeeks.get(week.week_start);
      if (!now || now.capacity !== week.capacity) changed.add(`capacity|${week.week_start}`);
    }
  }
  const row = (label, field, weeks, marked) =>
    el(
      "tr",
      { "data-field": field, "data-plan": marked ? "what-if" : "current" },
      el("th", { scope: "row" }, label),
      weeks.map((week, index) => {
        const value = week ? week[field] : null;
        const differs = marked && changed.has(`${field}|${plan.weeks[index].week_start}`);
        return el(
          "td",
          { "data-week": plan.weeks[index].week_start, "data-value": value ?? "", className: differs ? "diff" : null },
          differs ? "Δ " : null,
          field === "capacity" && week && value === null ? "unlimited" : units(value),
          differs ? el("span", { className: "visually-hidden" }, " (differs from the current plan)") : null,
        );
      }),
    );
  const currentWeeks = plan.weeks.map((w) => nowWeeks.get(w.week_start));
  const statusRow = (label, weeks, which, safetyStock = safety) =>
    el(
      "tr",
      { "data-field": "status", "data-plan": which },
      el("th", { scope: "row" }, label),
      weeks.map((week) => {
        const status = week ? weekStatus(week, safetyStock) : "ok";
        return el("td", { className: status === "ok" ? null : status }, week ? STATUS_TEXT[status] || "ok" : "—");
      }),
    );
  const body = [];
  const compared = "weekly_capacity" in (plan.item_changes || {}) ? [["capacity", "Capacity"], ...COMPARED] : COMPARED;
  for (const [field, label] of compared) {
    body.push(row(`${label}: now`, field, currentWeeks, false), row(`${label}: what-if`, field, plan.weeks, true));
  }
  const whatIfSafety = (plan.item_changes || {}).safety_stock ?? safety;
  body.push(statusRow("Stock status: now", currentWeeks, "current"), statusRow("Stock status: what-if", plan.weeks, "what-if", whatIfSafety));
  const title = `whatif-table-${plan.sku}`;
  return el(
    "div",
    { className: "scroll", role: "region", tabindex: "0", "aria-labelledby": title },
    el(
      "table",
      { className: "compare", "data-sku": plan.sku },
      el("caption", { id: title, "data-plan-version": current ? current.plan_version : "" }, `${plan.sku}: the current plan${current ? ` (version ${current.plan_version})` : ""} and the what-if, week by week; Δ marks a difference`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Week of"), plan.weeks.map((w) => el("th", { scope: "col" }, w.week_start.slice(5))))),
      el("tbody", {}, body),
    ),
  );
}

async function currentPlanOf(state, sku) {
  if (sku === state.sku && state.mps) return state.mps;
  try {
    return await api("planning", `/v1/mps/${encodeURIComponent(sku)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

// How many weeks fall short (below zero, or of capacity) in a plan's weeks: the headline of a what-if.
function shortWeeks(weeks, safety) {
  const statuses = weeks.map((w) => weekStatus(w, safety));
  return {
    short: statuses.filter((s) => s === "short").length,
    below: statuses.filter((s) => s === "below-safety").length,
    capacity: weeks.filter((w) => w.capacity_shortfall > 1e-6).length,
  };
}

function shortSummary(counts) {
  return `${counts.short} week(s) of shortfall, ${counts.below} below safety stock, ${counts.capacity} short of capacity`;
}

function changedFields(changes) {
  const shown = Object.entries(changes).map(([name, value]) =>
    `${name.replaceAll("_", " ")} ${value === null ? "unlimited" : units(value)}`);
  return shown.join(", ");
}

// `draft` is what was tried: {promotion} (announced from here) or {change} (an item change, kept by editing the item).
async function renderResult(state, draft, result) {
  const box = $("whatif-result");
  const safetyOf = async (sku) => {
    if (sku === state.sku && state.item) return state.item.safety_stock;
    const item = state.items && state.items.get(sku);
    return item ? item.safety_stock : 0;
  };
  const { promotion, change } = draft;
  const notice = promotion
    ? `What-if only: ${promotion.promotion_id} was not announced and no plan changed.`
    : `What-if only: the item master of ${change.sku} was not changed and no plan changed. To keep the change, edit the item above.`;
  const parts = [el("p", { className: "notice", "data-committed": String(result.committed) }, notice)];
  parts.push(
    result.conflicts.length
      ? el("ul", { className: "conflicts" }, result.conflicts.map((c) =>
          el("li", {}, el("strong", {}, `${c.sku}: capacity conflict`), c.promotion_ids.length ? ` with ${c.promotion_ids.join(", ")}` : "", `: ${units(c.total_shortfall)} units short in ${c.weeks.map((w) => w.week_start).join(", ")}`)))
      : el("p", {}, "No capacity conflict: the plan can absorb it."),
  );
  if (result.skus_without_item.length) parts.push(el("p", { className: "error" }, `No item master for ${result.skus_without_item.join(", ")}: not planned.`));
  for (const plan of result.plans) {
    const current = await currentPlanOf(state, plan.sku);
    const safety = await safetyOf(plan.sku);
    const itemChanges = plan.item_changes || {};
    parts.push(el("h3", {}, plan.sku));
    if (Object.keys(itemChanges).length) parts.push(el("p", { className: "meta" }, `Planned with ${changedFields(itemChanges)}.`));
    parts.push(
      el("p", { className: "meta" }, plan.changes.length ? `${plan.changes.length} change(s) from the current plan.` : "No difference from the current plan."),
      el("p", { className: "meta", "data-summary": plan.sku },
        `Now: ${current ? shortSummary(shortWeeks(current.weeks, safety)) : "no plan"}. What-if: ${shortSummary(shortWeeks(plan.weeks, itemChanges.safety_stock ?? safety))}.`),
      compareTable(plan, current, safety),
    );
  }
  if (promotion) {
    const announce = el("button", { type: "button", id: "announce" }, `Announce ${promotion.promotion_id}`);
    const outcome = el("p", { id: "announce-status", role: "status" });
    announce.addEventListener("click", () => announcePromotion(promotion, outcome));
    parts.push(el("div", { className: "form-actions" }, announce, outcome));
  }
  box.replaceChildren(...parts);
}

async function announcePromotion(promotion, outcome) {
  outcome.className = "";
  outcome.textContent = "Announcing …";
  try {
    const { status } = await api("promotion", "/v1/promotions", { method: "POST", body: promotion, withStatus: true });
    outcome.textContent =
      status === 201
        ? `Announced ${promotion.promotion_id}: planning re-plans as soon as the event arrives.`
        : `${promotion.promotion_id} was already announced exactly like this; nothing changed.`;
    setStatus(outcome.textContent);
  } catch (error) {
    outcome.className = "error";
    if (error instanceof ApiError && error.status === 403) {
      outcome.textContent = `Not announced: this key may not announce promotions (${error.detail}). Nothing was committed; sign in with a key that has promotions:write.`;
    } else if (error instanceof ApiError && error.status === 422) {
      showFieldErrors($("whatif-form"), error, inputFor);
      outcome.textContent = "Not announced: the promotion API refused a field (marked above).";
    } else {
      outcome.textContent = `Not announced: ${error instanceof ApiError ? error.detail : error.message}`;
    }
  }
}

async function runScenario(form, body, fieldFor, render) {
  const box = $("whatif-result");
  box.replaceChildren(el("p", { role: "status" }, "Running the what-if …"));
  try {
    await render(await api("planning", "/v1/scenarios", { method: "POST", body }));
  } catch (error) {
    box.replaceChildren();
    if (error instanceof ApiError && error.status === 422) showFieldErrors(form, error, fieldFor);
    else showFieldErrors(form, error instanceof ApiError ? error : new ApiError(0, error.message), () => "");
  }
}

export function wireWhatIf(state) {
  const form = $("whatif-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const promotion = draftedPromotion(form);
    await runScenario(form, { promotions: [promotion] }, inputFor, (result) => renderResult(state, { promotion }, result));
  });
  const itemForm = $("whatif-item-form");
  itemForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(itemForm);
    const change = draftedItemChange(itemForm, state.sku, state.item);
    if (Object.keys(change).length === 1) {
      showFieldErrors(itemForm, new ApiError(0, "Change at least one field: as it stands the what-if is the current plan."), () => "");
      return;
    }
    await runScenario(itemForm, { items: [change] }, itemInputFor, (result) => renderResult(state, { change }, result));
  });
}
