// Live alerts: the recent ones, then Server-Sent Events over fetch (so the key travels in a header), filtered by
// type, account tier and state; acknowledging and resolving through the returns service.

import { api, apiKey, ApiError } from "./api.js";
import { $, el, units, pct, setStatus } from "./dom.js";

const LAST_EVENT_ID = "salesops.alerts.lastEventId";
const MAX_FEED_ITEMS = 200;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const feed = { generation: 0, abort: null, alerts: new Map() };

function setFeedStatus(text) {
  $("feed-status").textContent = text;
}

function describeAlert(alert) {
  const d = alert.details || {};
  if (alert.type === "return-surge" && d.rate !== undefined && d.rate !== null) return `return rate ${pct(d.rate)}`;
  if (alert.type === "capacity-conflict" && d.total_shortfall !== undefined) return `shortfall ${units(d.total_shortfall)} units`;
  if (d.description) return d.description;
  return "";
}

const tiersOf = (alert) => (alert.accounts || []).map((a) => a.segment).filter(Boolean);
// `state` tells acknowledged from open (`status` stays open until resolved); an older service sends only `status`.
const stateOf = (alert) => alert.state || alert.status;

function whoActed(alert) {
  const state = stateOf(alert);
  if (state === "resolved" && alert.resolved_by) return ` by ${alert.resolved_by}`;
  if (state === "acknowledged" && alert.acknowledged_by) return ` by ${alert.acknowledged_by}`;
  return "";
}

function matchesFilters(alert) {
  const type = $("filter-type").value;
  const tier = $("filter-tier").value;
  const state = $("filter-state").value;
  if (type && alert.type !== type) return false;
  if (state && stateOf(alert) !== state) return false;
  if (tier === "none") return tiersOf(alert).length === 0;
  return !tier || tiersOf(alert).includes(tier);
}

function updateCount() {
  const items = [...$("alerts").children];
  const shown = items.filter((li) => !li.hidden).length;
  $("alerts-count").textContent = `${shown} of ${items.length} alert(s) shown`;
}

export function applyFilters() {
  for (const li of $("alerts").children) {
    const alert = feed.alerts.get(li.dataset.alertId);
    li.hidden = !alert || !matchesFilters(alert);
  }
  updateCount();
}

// 404 and 405 mean the returns service does not offer the action (yet): said plainly, nothing breaks.
async function act(alert, action, note) {
  note.className = "alert-note";
  note.textContent = `${action === "acknowledge" ? "Acknowledging" : "Resolving"} …`;
  try {
    const changed = await api("returns", `/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, { method: "POST", body: {} });
    if (changed && changed.id) showAlert(changed, action === "acknowledge" ? "acknowledged" : "resolved", true);
    else note.textContent = `${action === "acknowledge" ? "Acknowledged" : "Resolved"}.`;
  } catch (error) {
    note.className = "alert-note error";
    if (error instanceof ApiError && error.notOffered) {
      note.textContent = `The returns service does not offer to ${action} alerts yet (${error.status}); nothing changed.`;
    } else if (error instanceof ApiError && error.status === 403) {
      note.textContent = `Not allowed with this key: ${error.detail}.`;
    } else {
      note.textContent = `Could not ${action}: ${error instanceof ApiError ? error.detail : error.message}`;
    }
    setStatus(note.textContent, true);
  }
}

function alertItem(alert, change, fresh) {
  const accounts = (alert.accounts || []).map((a) => `${a.name || a.account_id}${a.segment ? ` (${a.segment})` : ""}`);
  const note = el("p", { className: "alert-note" });
  const actions = [];
  if (stateOf(alert) !== "resolved") {
    for (const [action, label] of [["acknowledge", "Acknowledge"], ["resolve", "Resolve"]]) {
      if (action === "acknowledge" && stateOf(alert) === "acknowledged") continue;
      const button = el("button", { type: "button", className: "secondary", "data-action": action }, label);
      button.addEventListener("click", () => act(alert, action, note));
      actions.push(button);
    }
  }
  const when = alert.updated_at || alert.created_at;
  return el(
    "li",
    {
      id: `alert-${alert.id}`,
      className: `${alert.priority === "high" ? "high" : ""} ${fresh ? "fresh" : ""}`.trim() || null,
      "data-alert-id": alert.id,
      "data-type": alert.type,
      "data-sku": alert.sku,
      "data-status": stateOf(alert),
    },
    el("span", { className: `badge ${alert.priority}` }, alert.priority === "high" ? "high priority" : alert.priority || ""),
    " ",
    el("strong", {}, alert.type),
    alert.sku ? [" · ", el("a", { href: `/?sku=${encodeURIComponent(alert.sku)}`, "data-sku": alert.sku }, alert.sku)] : null,
    ` ${change || "raised"}, revision ${alert.revision ?? 1}, `,
    el("span", { className: "alert-state" }, `${stateOf(alert)}${whoActed(alert)}`),
    ". ",
    describeAlert(alert),
    accounts.length ? el("div", {}, `Accounts: ${accounts.join(", ")}`) : null,
    el("div", {}, el("code", {}, when ? new Date(when).toLocaleString() : "")),
    actions.length ? el("div", { className: "alert-actions" }, actions) : null,
    note,
  );
}

export function showAlert(alert, change, fresh) {
  const list = $("alerts");
  alert.id = alert.id || alert.alert_id;
  feed.alerts.set(alert.id, alert);
  const item = alertItem(alert, change, fresh);
  item.hidden = !matchesFilters(alert);
  const existing = document.getElementById(item.id);
  // An update stays where it is, so a screen reader hears only what is new.
  if (existing) existing.replaceWith(item);
  else list.prepend(item);
  while (list.children.length > MAX_FEED_ITEMS) {
    feed.alerts.delete(list.lastElementChild.dataset.alertId);
    list.lastElementChild.remove();
  }
  updateCount();
}

export async function loadRecentAlerts() {
  const since = new Date(Date.now() - 7 * 86400 * 1000).toISOString();
  const body = await api("returns", `/v1/alerts?since=${encodeURIComponent(since)}&limit=100`);
  for (const alert of body.data || []) showAlert(alert, alert.revision > 1 ? "updated" : "raised", false);
  updateCount();
}

async function streamOnce(generation, onRetry) {
  const headers = { Accept: "text/event-stream", Authorization: `Bearer ${apiKey()}` };
  const last = sessionStorage.getItem(LAST_EVENT_ID);
  if (last) headers["Last-Event-ID"] = last;
  const controller = new AbortController();
  feed.abort = controller;
  const response = await fetch("/api/returns/v1/alerts/stream", { headers, signal: controller.signal, cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  setFeedStatus("live: new alerts appear here as they are raised");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  let eventId = null;
  const dispatch = () => {
    if (eventId !== null) sessionStorage.setItem(LAST_EVENT_ID, eventId);
    if (data.length) {
      try {
        const payload = JSON.parse(data.join("\n"));
        if (payload.data) showAlert(payload.data, payload.change, true);
      } catch (error) {
        console.warn("unreadable alert event", error);
      }
    }
    data = [];
    eventId = null;
  };
  for (;;) {
    if (generation !== feed.generation) {
      controller.abort();
      return;
    }
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let match;
    while ((match = /\r\n|\r|\n/.exec(buffer)) !== null) {
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === "") dispatch();
      else if (line.startsWith(":")) continue; // heartbeat comment
      else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "id" && !value.includes("\0")) eventId = value;
        else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
      }
    }
  }
}

export function stopFeed() {
  feed.generation += 1;
  if (feed.abort) feed.abort.abort();
}

export async function runFeed() {
  stopFeed();
  const generation = feed.generation;
  let delay = 1000;
  let serverRetry = 1000;
  while (generation === feed.generation) {
    try {
      await streamOnce(generation, (ms) => (serverRetry = ms));
      delay = serverRetry; // a clean close (the server's connection limit): come back promptly
    } catch (error) {
      if (generation !== feed.generation) return;
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        setFeedStatus(`alerts not available with this key (${error.status})`);
        return;
      }
      delay = Math.min(Math.max(delay * 2, serverRetry), 30000);
    }
    if (generation !== feed.generation) return;
    setFeedStatus(`reconnecting in ${Math.round(delay / 1000)} s …`);
    await sleep(delay);
  }
}

export function wireAlertFilters() {
  for (const id of ["filter-type", "filter-tier", "filter-state"]) $(id).addEventListener("change", applyFilters);
  $("alert-filters").addEventListener("submit", (event) => event.preventDefault());
}
