// The planner's console: the exceptions inbox, one SKU's plan with its item, what-if and history, the promise check,
// the customers' cost-to-serve, the promotion calendar and live alerts, all read through the console's same-origin
// proxy (/api/<service>/...).

import { apiKey, allPages, ApiError, forgetKey, optional, rememberKey } from "./js/api.js";
import { $, el, setStatus } from "./js/dom.js";
import { exportGrid, renderChart, renderGrid } from "./js/plan.js";
import { explainWeek, loadAccuracy, loadRecentDrivers, renderDrivers, renderPromotions } from "./js/details.js";
import { exportExceptions, loadExceptions, renderExceptions } from "./js/exceptions.js";
import { fillItemForm, renderItem, wireItemForm } from "./js/items.js";
import { prefillWhatIf, wireWhatIf } from "./js/whatif.js";
import { loadRecentAlerts, runFeed, stopFeed, wireAlertFilters } from "./js/alerts.js";
import { prefillPromise, wirePromiseForm } from "./js/promise.js";
import { clearCustomers, loadCustomers, wireCustomers } from "./js/customers.js";

const REFRESH_MS = Number(document.body.dataset.refreshMs) || 5000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const state = {
  sku: new URLSearchParams(location.search).get("sku") || "",
  mps: null,
  item: null,
  items: new Map(),
  planStamp: "",
  promotions: [],
  promotionsStamp: "",
  week: "",
  planCache: new Map(),
  exceptions: [],
  identity: null,
};
window.salesopsConsole = state; // inspected by the browser tests

function reportError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    setStatus(`The API key was refused (${error.status}): ${error.detail}`, true);
  } else {
    setStatus(`Could not load: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------ who is signed in

async function loadIdentity() {
  let identity = null;
  try {
    identity = await optional("planning", "/v1/whoami");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    throw new ApiError(401, "the key is unknown or revoked");
  }
  state.identity = identity;
  $("whoami").textContent = identity
    ? `Signed in as ${identity.name}`
    : "Signed in (this planning service does not tell the key's name)";
  if (identity) $("whoami").title = `scopes: ${identity.scopes.join(", ")}`;
  $("signed-in").hidden = false;
  $("key-form").hidden = true;
}

// ------------------------------------------------------------------ views

function showView() {
  const onSku = Boolean(state.sku);
  $("exceptions-view").hidden = onSku;
  $("sku-view").hidden = !onSku;
  if ($("nav-exceptions")) {
    if (onSku) $("nav-exceptions").removeAttribute("aria-current");
    else $("nav-exceptions").setAttribute("aria-current", "page");
  }
}

function openSku(sku, push) {
  state.sku = sku;
  state.week = "";
  state.planStamp = "";
  state.mps = null;
  state.item = null;
  if (push) {
    const url = new URL(location.href);
    if (sku) url.searchParams.set("sku", sku);
    else url.searchParams.delete("sku");
    history.pushState(null, "", url);
  }
  if (sku && [...$("sku").options].some((o) => o.value === sku)) $("sku").value = sku;
  if (!sku) $("sku").value = "";
  $("week-why").replaceChildren(el("p", { className: "help" }, "Select a week in the grid."));
  $("plan-meta").textContent = "";
  showView();
  prefillPromise(sku);
  renderPromotions(state);
  refreshAll();
}

// Links to a SKU (the inbox, alerts) open its plan in place; a modified click still opens a new tab.
function followSkuLinks(event) {
  const link = event.target.closest("a[data-sku], a#nav-exceptions, a#back-to-exceptions");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  openSku(link.dataset.sku || "", true);
  (link.dataset.sku ? $("grid-title") : $("exceptions-title")).scrollIntoView({ block: "start" });
}

// ------------------------------------------------------------------ SKU list and plan

async function loadSkus() {
  const items = await allPages("planning", "/v1/items?limit=500", "next_after", "after");
  state.items = new Map(items.map((i) => [i.sku, i]));
  const select = $("sku");
  const options = [el("option", { value: "" }, items.length ? "— all exceptions —" : "no items in the item master yet")];
  options.push(...items.map((item) => el("option", { value: item.sku }, `${item.sku} · ${item.name}`)));
  if (state.sku && !state.items.has(state.sku)) options.push(el("option", { value: state.sku }, state.sku));
  select.replaceChildren(...options);
  select.disabled = false;
  select.value = state.sku;
}

async function refreshPlan() {
  const sku = state.sku;
  const [mps, item] = await Promise.all([
    optional("planning", `/v1/mps/${encodeURIComponent(sku)}`),
    optional("planning", `/v1/items/${encodeURIComponent(sku)}`),
  ]);
  if (sku !== state.sku) return; // the selection changed while loading
  state.item = item;
  renderItem(item);
  fillItemForm(item, false);
  prefillWhatIf(sku, item);
  if (!mps) {
    $("grid-caption").textContent = `No plan for ${sku} yet.`;
    return;
  }
  const stamp = `${sku}|${mps.plan_version}|${mps.generated_at}|${item ? item.revision : ""}`;
  $("plan-meta").textContent = `plan version ${mps.plan_version}, generated ${new Date(mps.generated_at).toLocaleString()}`;
  if (stamp === state.planStamp) return;
  state.mps = mps;
  state.planStamp = stamp;
  renderGrid(state, (week) => explainWeek(state, week));
  renderChart(state);
  renderDrivers(mps);
  if (state.week) await explainWeek(state, state.week);
  await Promise.all([loadRecentDrivers(sku), loadAccuracy(sku)]);
}

async function refreshExceptions() {
  const planCount = await loadExceptions(state);
  if (!state.sku) renderExceptions(state, planCount);
}

async function refreshPromotions() {
  const promotions = await allPages("promotion", "/v1/promotions?limit=500", "next_after", "after");
  promotions.sort((a, b) => a.starts_on.localeCompare(b.starts_on) || a.promotion_id.localeCompare(b.promotion_id));
  const stamp = JSON.stringify(promotions.map((p) => [p.promotion_id, p.version, p.status, p.conflict]));
  if (stamp === state.promotionsStamp) return;
  state.promotions = promotions;
  state.promotionsStamp = stamp;
  renderPromotions(state);
  if (state.mps) renderChart(state);
}

// ------------------------------------------------------------------ wiring

let refreshing = null;

async function refreshOnce() {
  try {
    await refreshPromotions();
    if (state.sku) await refreshPlan();
    else await refreshExceptions();
    if ($("status").classList.contains("error")) setStatus("");
  } catch (error) {
    reportError(error);
  }
}

// One refresh at a time: a click during the periodic one waits for it instead of racing it.
async function refreshAll() {
  if (!apiKey() || document.hidden) return;
  while (refreshing) await refreshing;
  refreshing = refreshOnce();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
}

async function start() {
  showView();
  if (!apiKey()) {
    $("key-form").hidden = false;
    $("signed-in").hidden = true;
    setStatus("Enter an API key to start.");
    $("api-key").focus();
    return;
  }
  setStatus("Loading …");
  try {
    await loadIdentity();
    loadCustomers(); // on its own: a key without costs:read is told so in that section, and nothing else stops
    await loadSkus();
    setStatus("");
  } catch (error) {
    reportError(error);
    $("key-form").hidden = false;
    return;
  }
  state.planStamp = "";
  await refreshAll();
  try {
    await loadRecentAlerts();
  } catch (error) {
    $("feed-status").textContent = `recent alerts not available (${error.message})`;
  }
  runFeed();
}

async function autoRefresh() {
  for (;;) {
    await sleep(REFRESH_MS);
    await refreshAll();
  }
}

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    rememberKey(key, $("remember").checked);
    $("api-key").value = "";
    start();
  });
  $("forget-key").addEventListener("click", () => {
    forgetKey();
    stopFeed();
    clearCustomers();
    state.identity = null;
    $("signed-in").hidden = true;
    $("key-form").hidden = false;
    setStatus("Signed out: the key is forgotten on this device.");
    $("api-key").focus();
  });
  $("sku").addEventListener("change", () => openSku($("sku").value, true));
  $("refresh").addEventListener("click", () => {
    state.planStamp = "";
    state.promotionsStamp = "";
    refreshAll();
  });
  $("only-sku").addEventListener("change", () => renderPromotions(state));
  $("export-grid").addEventListener("click", () => exportGrid(state));
  $("export-exceptions").addEventListener("click", () => exportExceptions(state));
  document.addEventListener("click", followSkuLinks);
  window.addEventListener("popstate", () => openSku(new URLSearchParams(location.search).get("sku") || "", false));
  wireItemForm(state, async () => {
    state.planStamp = "";
    await refreshAll();
  });
  wireWhatIf(state);
  wirePromiseForm();
  prefillPromise(state.sku);
  wireCustomers();
  wireAlertFilters();
  start();
  autoRefresh();
}

init();
