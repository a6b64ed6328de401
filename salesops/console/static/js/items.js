// The item master of the selected SKU: what it says, and editing it (PUT /v1/items/{sku}) with the service's
// field errors shown at each field; a saved change is followed until the re-planned plan is on the page.

import { api, ApiError } from "./api.js";
import { $, el, units, clearFieldErrors, showFieldErrors, numberOrNull, setStatus } from "./dom.js";

const FIELDS = ["name", "on_hand", "safety_stock", "lot_size", "weekly_capacity", "frozen_weeks", "baseline_weekly_demand"];
const NULLABLE = new Set(["weekly_capacity", "baseline_weekly_demand"]);
const PLAN_WAIT_MS = 15000;
const PLAN_POLL_MS = 500;

export function renderItem(item) {
  const facts = $("item-summary");
  if (!item) {
    facts.replaceChildren(el("dt", {}, "Item"), el("dd", {}, "not in the item master"));
    return;
  }
  const fact = (term, value) => [el("dt", {}, term), el("dd", { "data-field": term.toLowerCase().replaceAll(" ", "_") }, value)];
  facts.replaceChildren(
    ...fact("Name", item.name),
    ...fact("On hand", `${units(item.on_hand)} units`),
    ...fact("Safety stock", `${units(item.safety_stock)} units`),
    ...fact("Lot size", `${units(item.lot_size)} units`),
    ...fact("Weekly capacity", item.weekly_capacity === null ? "unlimited" : `${units(item.weekly_capacity)} units`),
    ...fact("Frozen weeks", String(item.frozen_weeks)),
    ...fact("Baseline weekly demand", item.baseline_weekly_demand === null ? "none" : `${units(item.baseline_weekly_demand)} units`),
    ...fact("Revision", String(item.revision)),
  );
}

// The editor follows the stored item, except while the planner is typing in it.
export function fillItemForm(item, force) {
  const form = $("item-form");
  if (!item || (!force && form.contains(document.activeElement))) return;
  if (!force && form.dataset.sku === item.sku && form.dataset.revision === String(item.revision)) return;
  for (const field of FIELDS) {
    const value = item[field];
    form.elements.namedItem(field).value = value === null || value === undefined ? "" : String(value);
  }
  form.dataset.sku = item.sku;
  form.dataset.revision = String(item.revision);
}

function formBody(form) {
  const body = {};
  for (const field of FIELDS) {
    const input = form.elements.namedItem(field);
    if (field === "name") body.name = input.value;
    else {
      const value = numberOrNull(input);
      if (value !== null || NULLABLE.has(field)) body[field] = value;
      else body[field] = null; // the service names the missing field
    }
  }
  return body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A change to the item re-plans the SKU (driver item:<sku>:<revision>); the plan is polled until it shows.
async function waitForReplan(sku, revision, versionBefore) {
  const driver = `item:${sku}:${revision}`;
  const deadline = Date.now() + PLAN_WAIT_MS;
  while (Date.now() < deadline) {
    const mps = await api("planning", `/v1/mps/${encodeURIComponent(sku)}`);
    if (mps.plan_version !== versionBefore || mps.drivers.some((d) => d.event_id === driver)) return mps;
    await sleep(PLAN_POLL_MS);
  }
  return null;
}

export function wireItemForm(state, onSaved) {
  const form = $("item-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const sku = state.sku;
    const status = $("item-form-status");
    clearFieldErrors(form);
    status.textContent = "Saving …";
    const versionBefore = state.mps ? state.mps.plan_version : null;
    let saved;
    try {
      saved = await api("planning", `/v1/items/${encodeURIComponent(sku)}`, { method: "PUT", body: formBody(form) });
    } catch (error) {
      status.textContent = "";
      if (error instanceof ApiError && error.status === 422) {
        showFieldErrors(form, error, (field) => field.split(".")[0]);
        status.textContent = "Not saved: correct the fields marked.";
      } else if (error instanceof ApiError && error.status === 403) {
        showFieldErrors(form, new ApiError(403, `Not saved: ${error.detail}. Editing items needs planning:write.`), () => "");
      } else {
        showFieldErrors(form, error instanceof ApiError ? error : new ApiError(0, error.message), () => "");
      }
      return;
    }
    state.item = saved;
    renderItem(saved);
    fillItemForm(saved, true);
    status.textContent = `Saved as revision ${saved.revision}; re-planning …`;
    const mps = await waitForReplan(sku, saved.revision, versionBefore);
    if (sku !== state.sku) return;
    if (mps && mps.plan_version !== versionBefore) {
      status.textContent = `Saved as revision ${saved.revision}; the plan is now version ${mps.plan_version}.`;
    } else {
      status.textContent = `Saved as revision ${saved.revision}; no week of the plan changed.`;
    }
    setStatus(status.textContent);
    await onSaved(mps);
  });
}
