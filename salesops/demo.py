"""`salesops demo`: a few months of a small kitchen-appliance company played through a running system.

The scenario is a pure function of (seed, today): the same seed on the same day sends byte-identical
requests, and every id derives from the seed, so re-running it is an identical retry (200, nothing new
published). "Today" is the UTC date, the same default the services use; history ends yesterday and the
campaigns lie ahead of today.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SERVICE_OFFSETS = {"promotion": 1, "fulfillment": 2, "returns": 3, "planning": 4}
CONSOLE_OFFSET = 5
HISTORY_DAYS = 84  # twelve weeks of daily order history
WAREHOUSES = (("DC-EAST", 0.6), ("DC-WEST", 0.4))
# Monday-heavy ordering, quiet weekends: the weekly seasonality of a B2B appliance business.
WEEKDAY_FACTORS = (1.25, 1.15, 1.05, 1.0, 1.1, 0.8, 0.65)
PRODUCTS = (
    ("KETTLE", "Electric kettle", 420),
    ("TOASTER", "Two-slot toaster", 350),
    ("BLENDER", "Power blender", 280),
    ("GRINDER", "Burr coffee grinder", 210),
    ("ESPRESSO", "Espresso machine", 300),
    ("MIXER", "Stand mixer", 140),
    ("JUICER", "Slow juicer", 120),
    ("SCALE", "Kitchen scale", 260),
    ("RICE", "Rice cooker", 180),
    ("FRYER", "Air fryer", 380),
    ("FROTHER", "Milk frother", 230),
    ("WAFFLE", "Waffle iron", 90),
)
SPIKE_FACTOR = 4.0
# Sensing adopts a level shift only once it is confirmed over several spike days; one day is history.
SPIKE_RUN_DAYS = 3
QUALITY_REASONS = {"defective", "damaged", "not_as_described"}


@dataclass(frozen=True)
class DemoRequest:
    step: str
    service: str
    method: str
    path: str
    scope: str
    body: dict[str, Any]


@dataclass
class Scenario:
    seed: int
    today: date
    prefix: str
    skus: list[str]
    weekly_levels: dict[str, float]
    spike_sku: str
    spike_day: date  # the first of SPIKE_RUN_DAYS spiking days, the last of them yesterday
    surge_sku: str
    strategic_account: str
    campaign_id: str
    campaign_skus: list[str]
    overload_id: str
    overload_sku: str
    requests: list[DemoRequest] = field(default_factory=list)

    def sku(self, code: str) -> str:
        return f"{self.prefix}-{code}"

    @property
    def steps(self) -> list[str]:
        return list(dict.fromkeys(r.step for r in self.requests))


def _daily_units(rng: random.Random, weekly_level: float, day: date, index: int, phase: float) -> int:
    # A slow swell over the quarter on top of the weekday pattern, with bounded noise so no ordinary day spikes.
    season = 1 + 0.08 * math.sin(2 * math.pi * index / HISTORY_DAYS + phase)
    noise = min(0.2, max(-0.2, rng.gauss(0, 0.07)))
    return max(0, round(weekly_level / 7 * WEEKDAY_FACTORS[day.weekday()] * season * (1 + noise)))


def build_scenario(seed: int, today: date) -> Scenario:
    """Every request of the demo, in order; deterministic for (seed, today)."""
    rng = random.Random(seed)
    prefix = f"D{seed}"
    levels = {f"{prefix}-{code}": round(level * rng.uniform(0.85, 1.15)) for code, _, level in PRODUCTS}
    names = {f"{prefix}-{code}": name for code, name, _ in PRODUCTS}
    s = Scenario(
        seed=seed,
        today=today,
        prefix=prefix,
        skus=list(levels),
        weekly_levels={k: float(v) for k, v in levels.items()},
        spike_sku=f"{prefix}-GRINDER",
        spike_day=today - timedelta(days=SPIKE_RUN_DAYS),
        surge_sku=f"{prefix}-ESPRESSO",
        strategic_account=f"{prefix}-ACC-NORD",
        campaign_id=f"{prefix}-SPRING",
        campaign_skus=[f"{prefix}-KETTLE", f"{prefix}-TOASTER"],
        overload_id=f"{prefix}-MEGA",
        overload_sku=f"{prefix}-BLENDER",
    )
    add = s.requests.append

    for sku, level in levels.items():
        # The overloaded SKU runs close to its capacity, so a big campaign cannot be pre-built in time.
        capacity_factor = 1.1 if sku == s.overload_sku else 1.6
        lot = 10
        add(
            DemoRequest(
                "item master",
                "planning",
                "PUT",
                f"/v1/items/{sku}",
                "planning:write",
                {
                    "name": names[sku],
                    "on_hand": float(round(level * (1.0 if sku == s.overload_sku else 1.5))),
                    "safety_stock": float(round(level * 0.5)),
                    "lot_size": float(lot),
                    "weekly_capacity": float(math.ceil(level * capacity_factor / lot) * lot),
                    "frozen_weeks": 0,
                    "baseline_weekly_demand": float(level),
                },
            )
        )

    accounts = [
        (s.strategic_account, "Nordmarkt Retail", "strategic"),
        (f"{prefix}-ACC-CASA", "Casa Bella Stores", "integrated"),
        (f"{prefix}-ACC-CORNER", "Corner Kitchen Shop", "emerging"),
        (f"{prefix}-ACC-WEB", "Webshop Direct", "stable"),
    ]
    for account_id, name, segment in accounts:
        body = {"name": name, "segment": segment, "owner_email": f"accounts+{segment}@example.com"}
        add(DemoRequest("accounts", "returns", "PUT", f"/v1/accounts/{account_id}", "returns:write", body))

    first_day = today - timedelta(days=HISTORY_DAYS)
    phases = {sku: rng.uniform(0, 2 * math.pi) for sku in levels}
    for week in range(HISTORY_DAYS // 7):
        for warehouse, share in WAREHOUSES:
            lines = []
            for offset in range(7):
                index = week * 7 + offset
                day = first_day + timedelta(days=index)
                for sku, level in levels.items():
                    units = _daily_units(rng, level, day, index, phases[sku]) * share
                    if sku == s.spike_sku and 0 <= (day - s.spike_day).days < SPIKE_RUN_DAYS:
                        units *= SPIKE_FACTOR  # an unexplained spike: no promotion covers it
                    ordered = round(units)
                    backordered = round(ordered * rng.uniform(0, 0.03))
                    lines.append(
                        {
                            "sku": sku,
                            "day": day.isoformat(),
                            "units_ordered": ordered,
                            "units_shipped": ordered - backordered,
                            "units_backordered": backordered,
                        }
                    )
            add(
                DemoRequest(
                    "order history",
                    "fulfillment",
                    "POST",
                    "/v1/order-volumes",
                    "volumes:write",
                    {"warehouse_id": warehouse, "lines": lines},
                )
            )

    add(
        DemoRequest(
            "campaign announced",
            "promotion",
            "POST",
            "/v1/promotions",
            "promotions:write",
            {
                "promotion_id": s.campaign_id,
                "name": "Spring kitchen refresh",
                "starts_on": (today + timedelta(days=21)).isoformat(),
                "ends_on": (today + timedelta(days=34)).isoformat(),
                "items": [{"sku": s.campaign_skus[0], "uplift_pct": 35}, {"sku": s.campaign_skus[1], "uplift_pct": 25}],
                "post_promo_dip_pct": 20,
                "post_promo_dip_weeks": 2,
                "cannibalized": [{"sku": f"{prefix}-FROTHER", "pct": 10}],
                "channel": "retail",
                "regions": ["EU"],
                "account_segments": ["integrated", "emerging"],
            },
        )
    )

    account_ids = [a[0] for a in accounts]
    reasons = ["defective"] * 9 + ["damaged", "not_as_described", "no_longer_needed"]
    for number, reason in enumerate(reasons, 1):
        account = s.strategic_account if number % 2 else rng.choice(account_ids[1:])
        quality = reason in QUALITY_REASONS
        add(
            DemoRequest(
                "returns surge",
                "returns",
                "POST",
                "/v1/returns",
                "returns:write",
                {
                    "return_id": f"{prefix}-RET-{number:03d}",
                    "sku": s.surge_sku,
                    "quantity": rng.randint(4, 7),
                    "account_id": account,
                    "reason": reason,
                    "condition": rng.choice(["refurbish", "scrap"]) if quality else "resellable",
                    "returned_on": (today - timedelta(days=1 + (number * 5) % 11)).isoformat(),
                    "order_id": f"{prefix}-SO-{4100 + number}",
                    "resolution": "replacement" if account == s.strategic_account else "refund",
                },
            )
        )
    add(
        DemoRequest(
            "returns surge",
            "returns",
            "POST",
            "/v1/complaints",
            "returns:write",
            {
                "complaint_id": f"{prefix}-CMP-001",
                "account_id": s.strategic_account,
                "sku": s.surge_sku,
                "category": "quality",
                "severity": "high",
                "description": "Third espresso machine this month failing on first use at our flagship stores.",
                "received_on": (today - timedelta(days=1)).isoformat(),
            },
        )
    )

    add(
        DemoRequest(
            "capacity-overloading campaign",
            "promotion",
            "POST",
            "/v1/promotions",
            "promotions:write",
            {
                "promotion_id": s.overload_id,
                "name": "Blender mega week",
                "starts_on": (today + timedelta(days=28)).isoformat(),
                "ends_on": (today + timedelta(days=41)).isoformat(),
                "items": [{"sku": s.overload_sku, "uplift_pct": 150}],
                "post_promo_dip_pct": 10,
                "post_promo_dip_weeks": 1,
                "channel": "retail",
                "regions": ["EU"],
                "account_segments": ["strategic"],
            },
        )
    )
    return s


# ---------------------------------------------------------------------------------------------- running it


class DemoError(Exception):
    pass


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
        delay = 0.5
        for _attempt in range(6):
            try:
                response = self.client.request(
                    method, self.urls[service] + path, json=body, params=params, headers=headers
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code not in (429, 502, 503, 504):
                break
            time.sleep(delay)  # transient: the service asked to retry (or is restarting)
            delay *= 2
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
    }


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
    at_risk = api.get("promotion", "/v1/promotions", "promotions:read", status="at_risk") or {"data": []}
    console.print(f"[bold]Promotions at risk[/]: {', '.join(p['promotion_id'] for p in at_risk['data']) or 'none'}")
    spikes = api.get("fulfillment", "/v1/spikes", "volumes:read", since=s.today - timedelta(days=HISTORY_DAYS))
    ours = [p for p in (spikes or {"data": []})["data"] if p["sku"].startswith(s.prefix + "-")]
    for spike in ours:
        explained = spike.get("explained_by_promotion_id") or "unexplained"
        console.print(f"[bold]Spike[/] {spike['sku']} on {spike['day']}: {spike['units']:.0f} units ({explained})")
    if api.conflicts:
        console.print(f"[yellow]{len(api.conflicts)} request(s) kept an earlier run's figures (409)[/]")
    console.print(f"Open the console: http://127.0.0.1:{port_base + CONSOLE_OFFSET}/?sku={s.overload_sku}")
