// The promise check: can this account be promised this quantity of a SKU by a date? Asked of planning
// (POST /v1/promises/check, which promises nothing) and answered with its explanation: the tier's allocation,
// what limits it, the receipt weeks it draws on and the earliest date it can be promised in full.

import { api, ApiError } from "./api.js";
import { $, el, units, clearFieldErrors, showFieldErrors, numberOrNull } from "./dom.js";

const FIELDS = ["account_id", "sku", "quantity", "requested_on"];
const LIMITS = {
  allocation: "allocation: free supply is protected for higher tiers",
  supply: "supply: no tier could have it by then",
  horizon: "the planning horizon: the date lies beyond the plan",
};

function isoDay(offsetDays) {
  const day = new Date();
  day.setUTCDate(day.getUTCDate() + offsetDays);
  return day.toISOString().slice(0, 10);
}

// The SKU follows the one being worked on, unless the person typed another.
export function prefillPromise(sku) {
  const form = $("promise-form");
  const input = form.elements.namedItem("sku");
  if (sku && (input.value === "" || input.value === form.dataset.prefilled)) {
    input.value = sku;
    form.dataset.prefilled = sku;
  }
  const date = form.elements.namedItem("requested_on");
  if (!date.value) date.value = isoDay(14);
}

function request(form) {
  const value = (name) => form.elements.namedItem(name).value.trim();
  return {
    account_id: value("account_id"),
    sku: value("sku"),
    quantity: numberOrNull(form.elements.namedItem("quantity")),
    requested_on: value("requested_on") || null,
  };
}

function fact(term, value, field) {
  return [el("dt", {}, term), el("dd", { "data-field": field }, value)];
}

function answer(check) {
  const verdict = check.can_promise
    ? `Yes: ${units(check.quantity)} units of ${check.sku} can be promised to ${check.account_id} for ${check.requested_on}.`
    : `No: ${units(check.quantity)} units of ${check.sku} cannot be promised to ${check.account_id} for ${check.requested_on}` +
      (check.earliest_full_on ? `; in full from ${check.earliest_full_on}.` : "; not in full within the plan.");
  const tier = check.account_known ? check.tier : `${check.tier} (planning does not know the account yet)`;
  const limited = check.limited_by
    ? LIMITS[check.limited_by] || check.limited_by
    : "nothing: it fits";
  const parts = [
    el("p", { className: `verdict ${check.can_promise ? "yes" : "no"}`, "data-can-promise": String(check.can_promise) }, verdict),
    el(
      "dl",
      { className: "facts" },
      ...fact("Account tier", tier, "tier"),
      ...fact("Available to this tier by then", `${units(check.available)} units`, "available"),
      ...fact("Available to the top tier", `${units(check.available_to_top_tier)} units`, "available_to_top_tier"),
      ...fact("Limited by", limited, "limited_by"),
      ...fact("Protected for higher tiers", `${units(check.protected_for_higher_tiers)} units` +
        (check.protection_lapses_on ? `, until ${check.protection_lapses_on}` : ""), "protected_for_higher_tiers"),
      ...fact("Earliest date in full", check.earliest_full_on || "none within the plan", "earliest_full_on"),
      ...fact("Plan version", String(check.plan_version), "plan_version"),
    ),
  ];
  if (check.draws.length) {
    parts.push(
      el(
        "div",
        { className: "scroll", role: "region", tabindex: "0", "aria-labelledby": "promise-draws-caption" },
        el(
          "table",
          { id: "promise-draws" },
          el("caption", { id: "promise-draws-caption" }, "The receipt weeks it draws on, latest first"),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Receipt week"), el("th", { scope: "col" }, "Units"))),
          el("tbody", {}, check.draws.map((draw) =>
            el("tr", { "data-week": draw.week_start }, el("td", {}, draw.week_start), el("td", { "data-value": draw.quantity }, units(draw.quantity))))),
        ),
      ),
    );
  } else {
    parts.push(el("p", { className: "meta" }, "It draws on no receipt week: nothing is available by then."));
  }
  parts.push(
    el("h3", { id: "promise-why" }, "Why"),
    el("ul", { className: "explanation", "aria-labelledby": "promise-why" }, check.explanation.map((sentence) => el("li", {}, sentence))),
    el("p", { className: "notice", "data-committed": String(check.committed) }, "A check promises nothing: no order was booked and nothing was reserved."),
  );
  return parts;
}

export function wirePromiseForm() {
  const form = $("promise-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const box = $("promise-result");
    box.replaceChildren(el("p", { role: "status" }, "Checking …"));
    const body = request(form);
    try {
      const check = await api("planning", "/v1/promises/check", { method: "POST", body });
      box.replaceChildren(...answer(check));
    } catch (error) {
      box.replaceChildren();
      if (error instanceof ApiError && error.status === 422) {
        showFieldErrors(form, error, (field) => (FIELDS.includes(field) ? field : ""));
      } else if (error instanceof ApiError && error.status === 404) {
        const message = `planning has no plan for ${body.sku}`;
        showFieldErrors(form, new ApiError(404, message, [{ field: "sku", message }]), (field) => field);
      } else {
        showFieldErrors(form, error instanceof ApiError ? error : new ApiError(0, error.message), () => "");
      }
    }
  });
}
