// The planner's console: reads the services through the console's same-origin proxy (/api/<service>/...).
"use strict";
(() => {
  const KEY_NAME = "salesops.apiKey";
  const LAST_EVENT_ID = "salesops.alerts.lastEventId";
  const REFRESH_MS = Number(document.body.dataset.refreshMs) || 5000;
  const MAX_FEED_ITEMS = 50;
  const MAX_PAGES = 20;
  const ROWS = [
    ["baseline", "Baseline"],
    ["promotion_uplift", "Promotion uplift"],
    ["sensing_adjustment", "Demand sensing"],
    ["forecast", "Forecast"],
    ["gross_requirements", "Gross requirements"],
    ["returns_receipts", "Returns receipts"],
    ["mps_quantity", "MPS quantity"],
    ["projected_available", "Projected available"],
    ["capacity", "Capacity"],
    ["capacity_shortfall", "Capacity shortfall"],
  ];
  const KEY_ROWS = new Set(["forecast", "mps_quantity"]);

  const $ = (id) => document.getElementById(id);
  const state = { sku: "", mps: null, planStamp: "", promotions: [], promotionsStamp: "", week: "", feedGeneration: 0 };
  window.salesopsConsole = state; // inspected by the browser tests

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "—";
    return (Math.round(value * 10) / 10).toLocaleString("en-US", { maximumFractionDigits: 1 });
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function apiKey() {
    return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(service, path, options) {
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(`/api/${service}${path}`, { cache: "no-store", ...options, headers });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = body.detail || body.title || detail;
      } catch (_) {
        // not a JSON problem document: keep the status text
      }
      throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return response.json();
  }

  // An optional endpoint may be missing on an older service: 404/405 read as "not available".
  async function optional(service, path) {
    try {
      return await api(service, path);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
      throw error;
    }
  }

  async function allPages(service, path, cursorField, cursorParam) {
    const rows = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const separator = path.includes("?") ? "&" : "?";
      const url = cursor ? `${path}${separator}${cursorParam}=${encodeURIComponent(cursor)}` : path;
      const body = await api(service, url);
      rows.push(...(body.data || []));
      cursor = body[cursorField];
      if (!cursor) break;
    }
    return rows;
  }

  function reportError(error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      setStatus(`The API key was refused (${error.status}): ${error.detail}`, true);
    } else {
      setStatus(`Could not load: ${error.message}`, true);
    }
  }

  // ------------------------------------------------------------------ SKU list and plan

  async function loadSkus() {
    const items = await allPages("planning", "/v1/items?limit=500", "next_after", "after");
    const select = $("sku");
    const wanted = new URLSearchParams(location.search).get("sku") || state.sku;
    select.replaceChildren(...items.map((item) => el("option", { value: item.sku }, `${item.sku} · ${item.name}`)));
    if (!items.length) select.append(el("option", { value: "" }, "no items in the item master yet"));
    select.disabled = !items.length;
    if (wanted && !items.some((item) => item.sku === wanted)) {
      select.prepend(el("option", { value: wanted }, wanted));
    }
    if (wanted) select.value = wanted;
    state.sku = select.value;
  }

  async function refreshPlan() {
    if (!state.sku) return;
    const sku = state.sku;
    let mps;
    try {
      mps = await api("planning", `/v1/mps/${encodeURIComponent(sku)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        $("grid-caption").textContent = `No plan for ${sku} yet.`;
        return;
      }
      throw error;
    }
    if (sku !== state.sku) return; // the selection changed while loading
    const stamp = `${sku}|${mps.plan_version}|${mps.generated_at}`;
    $("plan-meta").textContent = `plan version ${mps.plan_version}, generated ${new Date(mps.generated_at).toLocaleString()}`;
    if (stamp === state.planStamp) return;
    state.mps = mps;
    state.planStamp = stamp;
    renderGrid(mps);
    renderChart();
    renderDrivers(mps);
    if (state.week) await explainWeek(state.week);
    await Promise.all([loadRecentDrivers(sku), loadAccuracy(sku)]);
  }

  function renderGrid(mps) {
    const table = $("mps-grid");
    const shortWeeks = mps.weeks.filter((w) => w.capacity_shortfall > 0).length;
    const caption = el(
      "caption",
      { id: "grid-caption" },
      `${mps.sku}: ${mps.weeks.length} weeks, plan version ${mps.plan_version}` +
        (shortWeeks ? `, ${shortWeeks} week(s) short of capacity` : ", within capacity"),
    );
    const head = el(
      "tr",
      {},
      el("th", { scope: "col" }, "Week of"),
      mps.weeks.map((week) => {
        const changed = (week.changed_by || []).length;
        const button = el(
          "button",
          {
            type: "button",
            className: "week",
            "data-week": week.week_start,
            "aria-pressed": state.week === week.week_start ? "true" : "false",
            title: changed ? `changed by ${changed} event(s); select to see why` : "select to see why it changed",
          },
          week.week_start.slice(5),
          changed ? el("span", { className: "changed", "aria-label": ` changed by ${changed} event(s)` }, " •") : null,
        );
        button.addEventListener("click", () => explainWeek(week.week_start));
        return el("th", { scope: "col", "data-week": week.week_start }, button);
      }),
    );
    const body = ROWS.map(([field, label]) =>
      el(
        "tr",
        { className: KEY_ROWS.has(field) ? "key-row" : null, "data-field": field },
        el("th", { scope: "row" }, label),
        mps.weeks.map((week) => {
          const value = week[field];
          const short = field === "capacity_shortfall" && value > 0;
          const below = field === "projected_available" && value < 0;
          return el(
            "td",
            {
              "data-field": field,
              "data-week": week.week_start,
              "data-value": value === null ? "" : value,
              className: short ? "short" : below ? "below" : null,
            },
            short ? "⚠ " : null,
            field === "capacity" && value === null ? "unlimited" : fmt(value),
          );
        }),
      ),
    );
    table.replaceChildren(caption, el("thead", {}, head), el("tbody", {}, body));
  }

  function renderChart() {
    const chart = $("chart");
    const mps = state.mps;
    if (!mps || typeof Plotly === "undefined") return;
    const x = mps.weeks.map((w) => w.week_start);
    const series = (field) => mps.weeks.map((w) => w[field]);
    const traces = [
      { type: "bar", name: "Baseline", x, y: series("baseline"), marker: { color: "#3b5b85" } },
      { type: "bar", name: "Promotion uplift", x, y: series("promotion_uplift"), marker: { color: "#d9730d" } },
      { type: "bar", name: "Demand sensing", x, y: series("sensing_adjustment"), marker: { color: "#7b4fa6" } },
      { type: "scatter", mode: "lines+markers", name: "Forecast", x, y: series("forecast"), line: { color: "#1a1a1a" } },
      { type: "scatter", mode: "markers", name: "MPS quantity", x, y: series("mps_quantity"), marker: { color: "#1d7a4a", symbol: "diamond", size: 8 } },
      { type: "scatter", mode: "lines", name: "Capacity", x, y: series("capacity"), line: { color: "#b3261e", dash: "dash", width: 2 }, connectgaps: false },
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
    const layout = {
      barmode: "relative", margin: { t: 30, r: 10, b: 40, l: 50 }, legend: { orientation: "h", y: -0.15 },
      xaxis: { type: "date", title: { text: "week" } }, yaxis: { title: { text: "units" }, rangemode: "tozero" },
      shapes, annotations,
    };
    Plotly.react(chart, traces, layout, { displaylogo: false, responsive: true });
    const short = mps.weeks.filter((w) => w.capacity_shortfall > 0).length;
    chart.setAttribute(
      "aria-label",
      `Forecast components and capacity of ${mps.sku} over ${mps.weeks.length} weeks; ` +
        `${short} week(s) short of capacity; promotions: ${mine.map((p) => p.promotion_id).join(", ") || "none"}.`,
    );
  }

  function driverItem(driver) {
    return el("li", {}, el("strong", {}, driver.summary || "(no summary)"), " ", el("code", {}, driver.type || driver.event_type || ""));
  }

  function renderDrivers(mps) {
    const shown = 8; // the newest few; the full audit trail folds away
    const list = $("drivers");
    list.replaceChildren(...mps.drivers.slice(0, shown).map(driverItem));
    if (!mps.drivers.length) list.append(el("li", {}, "No events recorded for this plan."));
    $("drivers-rest").replaceChildren(...mps.drivers.slice(shown).map(driverItem));
    $("drivers-rest").setAttribute("start", String(shown + 1));
    $("older-drivers").hidden = mps.drivers.length <= shown;
  }

  async function loadRecentDrivers(sku) {
    const list = $("recent-drivers");
    const body = await optional("planning", `/v1/drivers?sku=${encodeURIComponent(sku)}&limit=10`);
    if (!body) {
      list.replaceChildren(el("li", {}, "not available"));
      return;
    }
    list.replaceChildren(
      ...body.data.map((d) =>
        el("li", {}, d.occurred_at ? `${new Date(d.occurred_at).toLocaleString()}: ` : "", el("strong", {}, d.summary), " ", el("code", {}, d.event_type)),
      ),
    );
    if (!body.data.length) list.append(el("li", {}, "No events yet."));
  }

  async function explainWeek(weekStart) {
    state.week = weekStart;
    for (const button of document.querySelectorAll("#mps-grid button.week")) {
      button.setAttribute("aria-pressed", button.dataset.week === weekStart ? "true" : "false");
    }
    const box = $("week-why");
    const sku = state.sku;
    const body = await optional("planning", `/v1/mps/${encodeURIComponent(sku)}/weeks/${weekStart}?limit=10`);
    const heading = el("h3", {}, `Week of ${weekStart}`);
    if (!body) {
      // Older planning services have no per-week history: fall back to the week's own driver ids.
      const week = state.mps && state.mps.weeks.find((w) => w.week_start === weekStart);
      const ids = (week && week.changed_by) || [];
      const known = new Map((state.mps ? state.mps.drivers : []).map((d) => [d.event_id, d]));
      box.replaceChildren(
        heading,
        el("p", {}, "Per-week change history: not available."),
        ids.length ? el("ul", {}, ids.map((id) => (known.has(id) ? driverItem(known.get(id)) : el("li", {}, el("code", {}, id))))) : null,
      );
      return;
    }
    if (!body.data.length) {
      box.replaceChildren(heading, el("p", {}, "This week has not changed since the plan was first made."));
      return;
    }
    box.replaceChildren(
      heading,
      el(
        "ol",
        { className: "drivers" },
        body.data.map((revision) =>
          el(
            "li",
            {},
            el("strong", {}, `Plan version ${revision.plan_version}`),
            ` (${new Date(revision.generated_at).toLocaleString()}): `,
            revision.drivers.map((d) => d.summary).join("; ") || "no recorded event",
            el(
              "ul",
              {},
              revision.changes.map((c) => el("li", {}, `${c.field.replaceAll("_", " ")}: ${fmt(c.before)} → ${fmt(c.after)}`)),
            ),
          ),
        ),
      ),
    );
  }

  async function loadAccuracy(sku) {
    const list = $("accuracy");
    const row = (term, value) => [el("dt", {}, term), el("dd", {}, value)];
    const body = await optional("planning", `/v1/accuracy?sku=${encodeURIComponent(sku)}`);
    const found = body && (body.data || []).find((a) => a.sku === sku);
    if (!found) {
      list.replaceChildren(...row("Accuracy", "not available"));
      return;
    }
    if (found.wmape === null || found.wmape === undefined) {
      list.replaceChildren(...row("Accuracy", `not enough history yet (${found.weeks_compared} week(s) compared)`));
      return;
    }
    list.replaceChildren(
      ...row("wMAPE", pct(found.wmape)),
      ...row("Bias", `${pct(found.bias)} ${found.bias > 0 ? "(over-forecast)" : found.bias < 0 ? "(under-forecast)" : ""}`),
      ...row("Mean absolute error", `${fmt(found.mae)} units a week`),
      ...row("Weeks compared", String(found.weeks_compared)),
    );
  }

  // ------------------------------------------------------------------ promotions

  async function refreshPromotions() {
    const promotions = await allPages("promotion", "/v1/promotions?limit=500", "next_after", "after");
    promotions.sort((a, b) => a.starts_on.localeCompare(b.starts_on) || a.promotion_id.localeCompare(b.promotion_id));
    const stamp = JSON.stringify(promotions.map((p) => [p.promotion_id, p.version, p.status, p.conflict]));
    if (stamp === state.promotionsStamp) return;
    state.promotions = promotions;
    state.promotionsStamp = stamp;
    renderPromotions();
    renderChart();
  }

  function renderPromotions() {
    const only = $("only-sku").checked;
    const rows = state.promotions
      .filter((p) => !only || p.items.some((i) => i.sku === state.sku))
      .map((p) => {
        const mine = p.items.some((i) => i.sku === state.sku);
        const shortfall = p.conflict && (p.conflict.shortfall ?? p.conflict.total_shortfall);
        return el(
          "tr",
          { className: mine ? "this-sku" : null, "data-promotion": p.promotion_id },
          el("th", { scope: "row" }, p.promotion_id),
          el("td", {}, p.name),
          el("td", {}, p.starts_on),
          el("td", {}, p.ends_on),
          el("td", {}, p.items.map((i) => `${i.sku} ${i.uplift_pct >= 0 ? "+" : ""}${fmt(i.uplift_pct)} %`).join(", ")),
          el("td", {}, el("span", { className: `badge ${p.status}` }, p.status.replace("_", " "))),
          el("td", {}, shortfall ? `⚠ ${fmt(shortfall)} units` : "—"),
        );
      });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7 }, "No promotions.")));
    document.querySelector("#promotions tbody").replaceChildren(...rows);
  }

  // ------------------------------------------------------------------ live alerts (SSE over fetch)

  function setFeedStatus(text) {
    $("feed-status").textContent = text;
  }

  function describeAlert(alert) {
    const d = alert.details || {};
    if (alert.type === "return-surge" && d.rate !== undefined && d.rate !== null) return `return rate ${pct(d.rate)}`;
    if (alert.type === "capacity-conflict" && d.total_shortfall !== undefined) return `shortfall ${fmt(d.total_shortfall)} units`;
    if (d.description) return d.description;
    return "";
  }

  function showAlert(alert, change, fresh) {
    const list = $("alerts");
    const id = `alert-${alert.id || alert.alert_id}`;
    const existing = document.getElementById(id);
    if (existing) existing.remove();
    const accounts = (alert.accounts || []).map((a) => `${a.name || a.account_id}${a.segment ? ` (${a.segment})` : ""}`);
    const item = el(
      "li",
      { id, className: `${alert.priority === "high" ? "high" : ""} ${fresh ? "fresh" : ""}`, "data-type": alert.type, "data-sku": alert.sku },
      el("span", { className: `badge ${alert.priority}` }, alert.priority === "high" ? "high priority" : alert.priority || ""),
      " ",
      el("strong", {}, `${alert.type}${alert.sku ? ` · ${alert.sku}` : ""}`),
      ` ${change || "raised"}, revision ${alert.revision ?? 1}, ${alert.status}. `,
      describeAlert(alert),
      accounts.length ? el("div", {}, `Accounts: ${accounts.join(", ")}`) : null,
      el("div", {}, el("code", {}, new Date(alert.updated_at || alert.created_at || Date.now()).toLocaleString())),
    );
    list.prepend(item);
    while (list.children.length > MAX_FEED_ITEMS) list.lastElementChild.remove();
  }

  async function loadRecentAlerts() {
    const since = new Date(Date.now() - 7 * 86400 * 1000).toISOString();
    const body = await api("returns", `/v1/alerts?since=${encodeURIComponent(since)}&limit=100`);
    for (const alert of body.data || []) showAlert(alert, alert.revision > 1 ? "updated" : "raised", false);
  }

  async function streamOnce(generation, onRetry) {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${apiKey()}` };
    const last = sessionStorage.getItem(LAST_EVENT_ID);
    if (last) headers["Last-Event-ID"] = last;
    const controller = new AbortController();
    state.feedAbort = controller;
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
      if (generation !== state.feedGeneration) {
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

  async function runFeed() {
    state.feedGeneration += 1;
    const generation = state.feedGeneration;
    if (state.feedAbort) state.feedAbort.abort();
    let delay = 1000;
    let serverRetry = 1000;
    while (generation === state.feedGeneration) {
      try {
        await streamOnce(generation, (ms) => (serverRetry = ms));
        delay = serverRetry; // a clean close (the server's connection limit): come back promptly
      } catch (error) {
        if (generation !== state.feedGeneration) return;
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          setFeedStatus(`alerts not available with this key (${error.status})`);
          return;
        }
        delay = Math.min(Math.max(delay * 2, serverRetry), 30000);
      }
      if (generation !== state.feedGeneration) return;
      setFeedStatus(`reconnecting in ${Math.round(delay / 1000)} s …`);
      await sleep(delay);
    }
  }

  // ------------------------------------------------------------------ wiring

  async function refreshAll() {
    if (!apiKey() || document.hidden) return;
    try {
      await refreshPromotions();
      await refreshPlan();
      if (!$("status").classList.contains("error")) return;
      setStatus("");
    } catch (error) {
      reportError(error);
    }
  }

  async function start() {
    if (!apiKey()) {
      setStatus("Enter an API key to start.");
      $("api-key").focus();
      return;
    }
    setStatus("Loading …");
    try {
      await loadSkus();
      setStatus("");
    } catch (error) {
      reportError(error);
      return;
    }
    state.planStamp = "";
    await refreshAll();
    try {
      await loadRecentAlerts();
    } catch (error) {
      setFeedStatus(`recent alerts not available (${error.message})`);
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
      sessionStorage.setItem(KEY_NAME, key);
      if ($("remember").checked) localStorage.setItem(KEY_NAME, key);
      else localStorage.removeItem(KEY_NAME);
      $("api-key").value = "";
      start();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_NAME);
      localStorage.removeItem(KEY_NAME);
      state.feedGeneration += 1;
      if (state.feedAbort) state.feedAbort.abort();
      setStatus("Key forgotten.");
    });
    $("sku").addEventListener("change", () => {
      state.sku = $("sku").value;
      state.week = "";
      state.planStamp = "";
      const url = new URL(location.href);
      url.searchParams.set("sku", state.sku);
      history.replaceState(null, "", url);
      $("week-why").replaceChildren(el("p", { className: "help" }, "Select a week in the grid."));
      renderPromotions();
      refreshAll();
    });
    $("refresh").addEventListener("click", () => {
      state.planStamp = "";
      state.promotionsStamp = "";
      refreshAll();
    });
    $("only-sku").addEventListener("change", renderPromotions);
    start();
    autoRefresh();
  }

  init();
})();
