// What-if: a drafted promotion run through POST /v1/scenarios (which commits nothing), its plans beside the
// current ones week by week with every difference marked, and announcing it through the promotion API.

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

export function prefillWhatIf(sku) {
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

// `promotions.0.items.0.uplift_pct` (scenario) or `items.0.uplift_pct` (promotion API) -> the form's input.
function inputFor(field) {
  const path = field.replace(/^promotions\.\d+\.?/, "");
  if (path.startsWith("items")) return path.endsWith("uplift_pct") ? "uplift_pct" : "sku";
  return path.split(".")[0];
}

function compareTable(plan, current, safety) {
  const changed = new Set(plan.changes.map((c) => `${c.field}|${c.week_start}`));
  const nowWeeks = new Map((current ? current.weeks : []).map((w) => [w.week_start, w]));
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
          units(value),
          differs ? el("span", { className: "visually-hidden" }, " (differs from the current plan)") : null,
        );
      }),
    );
  const currentWeeks = plan.weeks.map((w) => nowWeeks.get(w.week_start));
  const statusRow = (label, weeks, which) =>
    el(
      "tr",
      { "data-field": "status", "data-plan": which },
      el("th", { scope: "row" }, label),
      weeks.map((week) => {
        const status = week ? weekStatus(week, safety) : "ok";
        return el("td", { className: status === "ok" ? null : status }, week ? STATUS_TEXT[status] || "ok" : "—");
      }),
    );
  const body = [];
  for (const [field, label] of COMPARED) {
    body.push(row(`${label}: now`, field, currentWeeks, false), row(`${label}: what-if`, field, plan.weeks, true));
  }
  body.push(statusRow("Stock status: now", currentWeeks, "current"), statusRow("Stock status: what-if", plan.weeks, "what-if"));
  const title = `whatif-table-${plan.sku}`;
  return el(
    "div",
    { className: "scroll", role: "region", tabindex: "0", "aria-labelledby": title },
    el(
      "table",
      { className: "compare", "data-sku": plan.sku },
      el("caption", { id: title }, `${plan.sku}: the current plan${current ? ` (version ${current.plan_version})` : ""} and the what-if, week by week; Δ marks a difference`),
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

async function renderResult(state, promotion, result) {
  const box = $("whatif-result");
  const safetyOf = async (sku) => {
    if (sku === state.sku && state.item) return state.item.safety_stock;
    const item = state.items && state.items.get(sku);
    return item ? item.safety_stock : 0;
  };
  const parts = [
    el("p", { className: "notice", "data-committed": String(result.committed) }, `What-if only: ${promotion.promotion_id} was not announced and no plan changed.`),
  ];
  parts.push(
    result.conflicts.length
      ? el("ul", { className: "conflicts" }, result.conflicts.map((c) =>
          el("li", {}, el("strong", {}, `${c.sku}: capacity conflict`), ` with ${c.promotion_ids.join(", ")}: ${units(c.total_shortfall)} units short in ${c.weeks.map((w) => w.week_start).join(", ")}`)))
      : el("p", {}, "No capacity conflict: the plan can absorb it."),
  );
  if (result.skus_without_item.length) parts.push(el("p", { className: "error" }, `No item master for ${result.skus_without_item.join(", ")}: not planned.`));
  for (const plan of result.plans) {
    const current = await currentPlanOf(state, plan.sku);
    parts.push(
      el("h3", {}, plan.sku),
      el("p", { className: "meta" }, plan.changes.length ? `${plan.changes.length} change(s) from the current plan.` : "No difference from the current plan."),
      compareTable(plan, current, await safetyOf(plan.sku)),
    );
  }
  const announce = el("button", { type: "button", id: "announce" }, `Announce ${promotion.promotion_id}`);
  const outcome = el("p", { id: "announce-status", role: "status" });
  announce.addEventListener("click", () => announcePromotion(promotion, outcome));
  parts.push(el("div", { className: "form-actions" }, announce, outcome));
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

export function wireWhatIf(state) {
  const form = $("whatif-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const promotion = draftedPromotion(form);
    const box = $("whatif-result");
    box.replaceChildren(el("p", { role: "status" }, "Running the what-if …"));
    try {
      const result = await api("planning", "/v1/scenarios", { method: "POST", body: { promotions: [promotion] } });
      await renderResult(state, promotion, result);
    } catch (error) {
      box.replaceChildren();
      if (error instanceof ApiError && error.status === 422) showFieldErrors(form, error, inputFor);
      else showFieldErrors(form, error instanceof ApiError ? error : new ApiError(0, error.message), () => "");
    }
  });
}
