"""Playing the demo scenario through a running system: send its requests with the client roles' keys, wait
for the events to flow, and report what changed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from salesops.demo.scenario import (
    CONSOLE_OFFSET,
    HISTORY_DAYS,
    SERVICE_OFFSETS,
    Scenario,
    build_scenario,
    cost_accounts,
)
from shared.retry import Backoff, retrying_sync


class DemoError(Exception):
    pass


BUSY_STATUSES = frozenset({429, 502, 503, 504})
CALL_RETRY = Backoff(initial_s=0.5, max_s=8.0)


class _Busy(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def load_keys(keys_file: Path | None) -> list[dict[str, Any]]:
    path = keys_file or Path(os.environ.get("SALESOPS_API_KEYS_FILE") or ".salesops/api-keys.json")
    try:
        keys: list[dict[str, Any]] = json.loads(path.read_text())["keys"]
    except (OSError, ValueError, KeyError) as exc:
        raise DemoError(f"cannot read API keys from {path} ({exc}); pass --keys-file") from exc
    return [k for k in keys if not k.get("revoked")]


def key_for(keys: list[dict[str, Any]], scope: str) -> str:
    # The narrowest key that carries the scope: the demo acts as each client role would.
    fitting = sorted((k for k in keys if scope in k.get("scopes", [])), key=lambda k: len(k["scopes"]))
    if not fitting:
        raise DemoError(f"no API key with the scope {scope}")
    return str(fitting[0]["key"])


class Api:
    def __init__(self, client: httpx.Client, port_base: int, keys: list[dict[str, Any]]) -> None:
        self.client = client
        self.urls = {name: f"http://127.0.0.1:{port_base + offset}" for name, offset in SERVICE_OFFSETS.items()}
        self.keys = keys
        self.conflicts: list[str] = []

    def call(self, service: str, method: str, path: str, scope: str, body: Any = None, params: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {key_for(self.keys, scope)}"}
        response: httpx.Response | None = None
        try:
            # Transient: the service asked to retry, or is restarting.
            for attempt in retrying_sync(
                CALL_RETRY, retry_on=lambda e: isinstance(e, httpx.TransportError | _Busy), give_up_after=6
            ):
                with attempt:
                    response = self.client.request(
                        method, self.urls[service] + path, json=body, params=params, headers=headers
                    )
                    if response.status_code in BUSY_STATUSES:
                        raise _Busy(response)
        except httpx.TransportError:
            response = None
        except _Busy as busy:
            response = busy.response
        if response is None:
            raise DemoError(
                f"the {service} service is not reachable at {self.urls[service]}; is `salesops up` running?"
            )
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code == 409:
            # An earlier run with this seed on another day sent different figures under the same id.
            self.conflicts.append(f"{method} {path}")
            return None
        if response.status_code >= 400:
            raise DemoError(f"{method} {service}{path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def get(self, service: str, path: str, scope: str, **params: Any) -> Any:
        return self.call(service, "GET", path, scope, params={k: v for k, v in params.items() if v is not None})


def outcome_checks(s: Scenario, api: Api) -> dict[str, Callable[[], bool]]:
    def data(body: Any) -> list[dict[str, Any]]:
        return list(body["data"]) if body else []

    def spike() -> bool:
        rows = data(api.get("fulfillment", "/v1/spikes", "volumes:read", sku=s.spike_sku, since=s.spike_day))
        return any(r["day"] == s.spike_day.isoformat() and not r.get("explained_by_promotion_id") for r in rows)

    def alert(kind: str, **params: Any) -> Callable[[], bool]:
        return lambda: bool(data(api.get("returns", "/v1/alerts", "alerts:read", type=kind, **params)))

    def plan_has(sku: str, field_name: str) -> Callable[[], bool]:
        def check() -> bool:
            plan = api.get("planning", f"/v1/mps/{sku}", "planning:read")
            return bool(plan) and any(w[field_name] > 0 for w in plan["weeks"])

        return check

    def at_risk() -> bool:
        promotion = api.get("promotion", f"/v1/promotions/{s.overload_id}", "promotions:read")
        return bool(promotion) and promotion["status"] == "at_risk"

    def promises_by_tier() -> bool:
        broken = {order for order, _ in broken_promises(s, api)}
        stable = {order for order, account in s.promise_orders.items() if account == s.stable_account}
        return bool(broken) and broken == stable

    return {
        f"order spikes on {s.spike_sku} from {s.spike_day}, no promotion explains them": spike,
        f"demand sensing raised the near-term forecast of {s.spike_sku}": plan_has(s.spike_sku, "sensing_adjustment"),
        f"return-surge alert on {s.surge_sku}": alert("return-surge", sku=s.surge_sku),
        f"critical-complaint alert for the strategic account {s.strategic_account}": alert(
            "critical-complaint", account_id=s.strategic_account
        ),
        f"campaign {s.campaign_id} is in the forecast of {s.campaign_skus[0]}": plan_has(
            s.campaign_skus[0], "promotion_uplift"
        ),
        f"{s.overload_id} overloads capacity: {s.overload_sku} short": plan_has(s.overload_sku, "capacity_shortfall"),
        f"promotion {s.overload_id} is at risk": at_risk,
        f"capacity-conflict alert on {s.overload_sku}": alert("capacity-conflict", sku=s.overload_sku),
        f"capacity cut on {s.promise_sku}: the stable account's promise breaks, the strategic one's is kept": (
            promises_by_tier
        ),
        **cost_outcomes(s, api),
    }


def broken_promises(s: Scenario, api: Api) -> list[tuple[str, dict[str, Any]]]:
    """The scenario's orders whose promise-at-risk alert is open, with the alert's details."""
    found = api.get("returns", "/v1/alerts", "alerts:read", type="promise-at-risk", sku=s.promise_sku, status="open")
    details = [a["details"] for a in (found or {"data": []})["data"]]
    return [(d["order_id"], d) for d in details if d.get("order_id") in s.promise_orders]


def cost_outcomes(s: Scenario, api: Api) -> dict[str, Callable[[], bool]]:
    """The stable account's behaviour costs more than it earns; the strategic account stays profitable."""
    strategic, stable = cost_accounts(s)

    def contribution(account_id: str) -> float | None:
        ledger = api.get("returns", f"/v1/accounts/{account_id}/cost-to-serve", "costs:read")
        return None if not ledger or not ledger["months"] else float(ledger["totals"]["contribution"])

    def unprofitable() -> bool:
        found = api.get("returns", "/v1/alerts", "alerts:read", type="account-unprofitable", account_id=stable)
        return bool(found and found["data"])

    def profitable() -> bool:
        value = contribution(strategic)
        return value is not None and value > 0

    return {
        f"account-unprofitable alert for the stable account {stable}": unprofitable,
        f"the strategic account {strategic} is profitable after cost-to-serve": profitable,
    }


def report_cost_to_serve(s: Scenario, api: Api, console: Console) -> None:
    """The whale curve of the demo's accounts and the pools that sink the unprofitable one."""
    curve = api.get("returns", "/v1/cost-to-serve", "costs:read")
    if not curve:
        return
    table = Table(title=f"Whale curve (contribution after cost-to-serve, {curve['currency']})")
    for column in ("rank", "account", "segment", "suggested", "revenue", "cost-to-serve", "contribution", "cumulative"):
        table.add_column(column)
    for row in curve["accounts"]:
        if not row["account_id"].startswith(s.prefix + "-"):
            continue
        share = row["cumulative_share"]
        table.add_row(
            str(row["rank"]),
            row["account_id"],
            row["segment"] or "-",
            row["suggested_segment"] or "-",
            f"{row['revenue']:,.0f}",
            f"{row['cost_to_serve']:,.0f}",
            f"{row['contribution']:,.0f}",
            f"{share:.0%}" if share is not None else "-",
        )
    console.print(table)
    _, stable = cost_accounts(s)
    ledger = api.get("returns", f"/v1/accounts/{stable}/cost-to-serve", "costs:read")
    if ledger and ledger["months"]:
        costly = sorted(ledger["totals"]["pools"], key=lambda p: -p["amount"])[:4]
        pools = ", ".join(f"{p['pool']} ({p['count']:g}) {p['amount']:,.0f}" for p in costly)
        console.print(f"[bold]{stable}[/] costs most in: {pools}")


PLAN_FIELDS = ("forecast", "mps_quantity", "capacity_shortfall")


def plan_changes(before: dict[str, Any] | None, after: dict[str, Any] | None, top: int | None = None) -> list[str]:
    """Week by week, what moved between two plans of a SKU (the `top` largest moves, in week order)."""
    if not after:
        return []
    earlier = {w["week_start"]: w for w in (before or {}).get("weeks", [])}
    moves: list[tuple[float, str]] = []
    for week in after["weeks"]:
        old = earlier.get(week["week_start"])
        moved = [name for name in PLAN_FIELDS if old is None or round(old[name], 1) != round(week[name], 1)]
        if not moved or (old is None and not any(week[n] for n in PLAN_FIELDS)):
            continue
        size = sum(abs(week[n] - (old[n] if old else 0)) for n in moved)
        described = ", ".join(
            f"{n.replace('_', ' ')} {round(old[n]) if old else '-'} -> {round(week[n])}" for n in moved
        )
        moves.append((size, f"{week['week_start']}: {described}"))
    chosen = sorted(moves, key=lambda m: -m[0])[:top] if top else moves
    return sorted(line for _, line in chosen)


def run_demo(*, seed: int, port_base: int, keys_file: Path | None, wait_s: float, console: Console) -> int:
    try:
        return _run(seed=seed, port_base=port_base, keys_file=keys_file, wait_s=wait_s, console=console)
    except DemoError as exc:
        console.print(f"[red]demo stopped:[/] {exc}")
        return 2


def _run(*, seed: int, port_base: int, keys_file: Path | None, wait_s: float, console: Console) -> int:
    keys = load_keys(keys_file)
    s = build_scenario(seed, datetime.now(UTC).date())
    started_at = datetime.now(UTC)
    watched = [*s.campaign_skus, s.overload_sku, s.spike_sku, s.surge_sku]
    console.print(
        f"[bold]salesops demo[/], seed {seed}, today {s.today}: {len(s.skus)} SKUs, {len(s.requests)} requests"
    )
    with httpx.Client(timeout=30.0) as client:
        api = Api(client, port_base, keys)
        before: dict[str, Any] = {}
        columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            tasks = {step: progress.add_task(step, total=sum(r.step == step for r in s.requests)) for step in s.steps}
            last_item = max(i for i, r in enumerate(s.requests) if r.step == "item master")
            for index, request in enumerate(s.requests):
                api.call(request.service, request.method, request.path, request.scope, request.body)
                progress.advance(tasks[request.step])
                if index == last_item:
                    # The plans as the item master alone makes them: what the events change is measured from here.
                    before = {sku: api.get("planning", f"/v1/mps/{sku}", "planning:read") for sku in watched}

            checks = outcome_checks(s, api)
            waiting = progress.add_task("waiting for the events to flow", total=len(checks))
            done: set[str] = set()
            deadline = time.monotonic() + wait_s
            while len(done) < len(checks) and time.monotonic() < deadline:
                for name, check in checks.items():
                    if name not in done and check():
                        done.add(name)
                progress.update(waiting, completed=len(done))
                if len(done) < len(checks):
                    time.sleep(1.0)
        _report(s, api, before, watched, done, list(checks), started_at, port_base, console)
    return 0 if len(done) == len(checks) else 1


def _report(
    s: Scenario,
    api: Api,
    before: dict[str, Any],
    watched: list[str],
    done: set[str],
    outcomes: list[str],
    started_at: datetime,
    port_base: int,
    console: Console,
) -> None:
    table = Table(title="What the scenario set out to cause")
    table.add_column("outcome")
    table.add_column("happened")
    for name in outcomes:
        table.add_row(name, "[green]yes[/]" if name in done else "[red]not yet[/]")
    console.print(table)

    plans = Table(title="Revised plans (weeks whose forecast, MPS or shortfall moved)")
    for column in ("SKU", "plan version", "changed weeks", "largest moves"):
        plans.add_column(column)
    for sku in dict.fromkeys(watched):
        after = api.get("planning", f"/v1/mps/{sku}", "planning:read")
        changed = len(plan_changes(before.get(sku), after))
        versions = f"{(before.get(sku) or {}).get('plan_version', '-')} -> {(after or {}).get('plan_version', '-')}"
        plans.add_row(sku, versions, str(changed), "\n".join(plan_changes(before.get(sku), after, top=3)) or "-")
    console.print(plans)

    alerts = api.get("returns", "/v1/alerts", "alerts:read", since=started_at.isoformat()) or {"data": []}
    # The list holds one row per change; the latest change of each alert is what it says now.
    latest = {a["id"]: a for a in alerts["data"] if (a.get("sku") or "").startswith(s.prefix + "-")}
    mine = list(latest.values())
    console.print(f"[bold]Alerts raised or updated[/] ({len(mine)}):")
    for alert in mine:
        accounts = ", ".join(f"{a.get('name') or a['account_id']} ({a.get('segment')})" for a in alert["accounts"])
        console.print(f"  {alert['priority']:<6} {alert['type']:<18} {alert['sku']}  {accounts}")
    _report_promises(s, api, console)
    at_risk = api.get("promotion", "/v1/promotions", "promotions:read", status="at_risk") or {"data": []}
    console.print(f"[bold]Promotions at risk[/]: {', '.join(p['promotion_id'] for p in at_risk['data']) or 'none'}")
    spikes = api.get("fulfillment", "/v1/spikes", "volumes:read", since=s.today - timedelta(days=HISTORY_DAYS))
    ours = [p for p in (spikes or {"data": []})["data"] if p["sku"].startswith(s.prefix + "-")]
    for spike in ours:
        explained = spike.get("explained_by_promotion_id") or "unexplained"
        console.print(f"[bold]Spike[/] {spike['sku']} on {spike['day']}: {spike['units']:.0f} units ({explained})")
    report_cost_to_serve(s, api, console)
    if api.conflicts:
        console.print(f"[yellow]{len(api.conflicts)} request(s) kept an earlier run's figures (409)[/]")
    console.print(f"Open the console: http://127.0.0.1:{port_base + CONSOLE_OFFSET}/?sku={s.overload_sku}")


def _report_promises(s: Scenario, api: Api, console: Console) -> None:
    broken = dict(broken_promises(s, api))
    table = Table(title=f"Promises on {s.promise_sku} after its capacity was cut")
    for column in ("order", "account (tier)", "quantity", "promised", "now"):
        table.add_column(column)
    for order_id in s.promise_orders:
        order = api.get("fulfillment", f"/v1/sales-orders/{order_id}", "orders:read") or {}
        line = (order.get("lines") or [{}])[0]
        account = api.get("returns", f"/v1/accounts/{s.promise_orders[order_id]}", "returns:read") or {}
        who = f"{account.get('name', s.promise_orders[order_id])} ({account.get('segment', '?')})"
        if order_id in broken:
            d = broken[order_id]
            now = (
                f"[red]at risk[/]: {d['quantity_short']:.0f} short, earliest {d['earliest_on'] or 'beyond the horizon'}"
            )
        else:
            now = "[green]kept[/]"
        table.add_row(order_id, who, str(line.get("quantity", "-")), str(line.get("promised_on", "-")), now)
    console.print(table)
