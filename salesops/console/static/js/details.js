// What surrounds a plan: the events behind it, why a week changed, forecast accuracy and the promotion calendar.

import { optional } from "./api.js";
import { $, el, units, pct, plainNumber } from "./dom.js";

function driverItem(driver) {
  return el("li", {}, el("strong", {}, driver.summary || "(no summary)"), " ", el("code", {}, driver.type || driver.event_type || ""));
}

export function renderDrivers(mps) {
  const shown = 8; // the newest few; the full audit trail folds away
  const list = $("drivers");
  list.replaceChildren(...mps.drivers.slice(0, shown).map(driverItem));
  if (!mps.drivers.length) list.append(el("li", {}, "No events recorded for this plan."));
  $("drivers-rest").replaceChildren(...mps.drivers.slice(shown).map(driverItem));
  $("drivers-rest").setAttribute("start", String(shown + 1));
  $("older-drivers").hidden = mps.drivers.length <= shown;
}

export async function loadRecentDrivers(sku) {
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

export async function explainWeek(state, weekStart) {
  state.week = weekStart;
  for (const button of document.querySelectorAll("#mps-grid button.week")) {
    button.setAttribute("aria-pressed", button.dataset.week === weekStart ? "true" : "false");
  }
  const box = $("week-why");
  const body = await optional("planning", `/v1/mps/${encodeURIComponent(state.sku)}/weeks/${weekStart}?limit=10`);
  const heading = el("h3", {}, `Week of ${weekStart}`);
  if (!body) {
    box.replaceChildren(heading, el("p", {}, "Per-week change history: not available."));
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
            revision.changes.map((c) => el("li", {}, `${c.field.replaceAll("_", " ")}: ${units(c.before)} → ${units(c.after)}`)),
          ),
        ),
      ),
    ),
  );
}

function nextMonday() {
  const today = new Date();
  const days = (8 - today.getUTCDay()) % 7 || 7;
  return new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + days)).toISOString().slice(0, 10);
}

export async function loadAccuracy(sku) {
  const list = $("accuracy");
  const row = (term, value) => [el("dt", {}, term), el("dd", {}, value)];
  const body = await optional("planning", `/v1/accuracy?sku=${encodeURIComponent(sku)}`);
  const found = body && (body.data || []).find((a) => a.sku === sku);
  if (!body) {
    list.replaceChildren(...row("Accuracy", "not available from this planning service"));
    return;
  }
  const replayed = found && found.backtest;
  if ((!found || !found.weeks_compared) && replayed && replayed.weeks_compared && replayed.wmape !== null) {
    // No week has been forecast live yet, but the history is there: planning replays it with a rolling
    // origin and shows how the forecast would have done, next to the standard models.
    const standard = Object.entries(replayed.standard || {})
      .filter(([, e]) => e.wmape !== null && e.wmape !== undefined)
      .map(([name, e]) => `${name} ${pct(e.wmape)}`)
      .join(", ");
    list.replaceChildren(
      ...row("wMAPE (replayed history)", pct(replayed.wmape)),
      ...row(
        "Bias",
        `${pct(replayed.bias)} ${replayed.bias > 0 ? "(over-forecast)" : replayed.bias < 0 ? "(under-forecast)" : ""}`,
      ),
      ...row("Standard models", standard || "—"),
      ...row("Demand class", replayed.demand_class),
      ...row("Baseline model", replayed.model || "smoothing (history too short for a fitted model)"),
      ...row(
        "How",
        `${replayed.weeks_compared} week(s) forecast ${replayed.lead_weeks} weeks ahead from ${replayed.origins} ` +
          "points in the stored history, each seeing only the weeks before it. Live accuracy starts once a " +
          `forecast week is complete (from ${nextMonday()}).`,
      ),
    );
    return;
  }
  if (!found || !found.weeks_compared) {
    // Planning measures a week against the forecast it made for that week before the week began. Order
    // history loaded in one go has no such forecast, however many weeks it covers.
    list.replaceChildren(
      ...row("Accuracy", "not measured yet"),
      ...row(
        "Why",
        "Accuracy compares each complete week's orders with the forecast planning made before that week began. " +
          "Orders loaded for past weeks had no such forecast, so the first week to count is the current one, " +
          `once it is complete (from ${nextMonday()}).`,
      ),
    );
    return;
  }
  if (found.wmape === null || found.wmape === undefined) {
    list.replaceChildren(
      ...row("Accuracy", `no orders in the ${found.weeks_compared} week(s) compared, so no percentage error`),
      ...row("Mean absolute error", `${units(found.mae)} units a week`),
    );
    return;
  }
  const versus =
    replayed && replayed.wmape !== null && replayed.wmape !== undefined
      ? [...row("Replayed history", `wMAPE ${pct(replayed.wmape)} over ${replayed.weeks_compared} week(s)`)]
      : [];
  list.replaceChildren(
    ...row("wMAPE", pct(found.wmape)),
    ...row("Bias", `${pct(found.bias)} ${found.bias > 0 ? "(over-forecast)" : found.bias < 0 ? "(under-forecast)" : ""}`),
    ...row("Mean absolute error", `${units(found.mae)} units a week`),
    ...row("Weeks compared", String(found.weeks_compared)),
    ...versus,
  );
}

export function renderPromotions(state) {
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
        el("td", {}, p.items.map((i) => `${i.sku} ${i.uplift_pct >= 0 ? "+" : ""}${plainNumber(i.uplift_pct)} %`).join(", ")),
        el("td", {}, el("span", { className: `badge ${p.status}` }, p.status.replace("_", " "))),
        el("td", {}, shortfall ? `⚠ ${units(shortfall)} units` : "—"),
      );
    });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7 }, "No promotions.")));
  document.querySelector("#promotions tbody").replaceChildren(...rows);
}
