"""`salesops demo`: a few months of a small kitchen-appliance company played through a running system.

The scenario is a pure function of (seed, today): the same seed on the same day sends byte-identical
requests, and every id derives from the seed, so re-running it is an identical retry (200, nothing new
published). "Today" is the UTC date, the same default the services use; history ends yesterday and the
campaigns lie ahead of today.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

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
LOT_SIZE = 10
# The promise story: what each tier books on the promise SKU (a share of its stock on hand), due in two weeks,
# and the capacity it is then cut to. Stock alone keeps the strategic and integrated orders; the stable one
# needs production the cut takes away.
PROMISE_SHARES = (("strategic", 0.6), ("integrated", 0.2), ("stable", 0.9))
PROMISE_DUE_DAYS = 14
CUT_CAPACITY = float(LOT_SIZE)
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
    # Orders booked for accounts of different tiers on one SKU, then a capacity cut: the stable account's
    # promise breaks, the strategic one's is kept.
    promise_sku: str
    stable_account: str
    promise_orders: dict[str, str] = field(default_factory=dict)  # order id -> account id
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
        promise_sku=f"{prefix}-MIXER",
        stable_account=f"{prefix}-ACC-WEB",
    )
    add = s.requests.append

    items: dict[str, dict[str, Any]] = {}
    for sku, level in levels.items():
        # The overloaded SKU runs close to its capacity, so a big campaign cannot be pre-built in time.
        capacity_factor = 1.1 if sku == s.overload_sku else 1.6
        items[sku] = {
            "name": names[sku],
            "on_hand": float(round(level * (1.0 if sku == s.overload_sku else 1.5))),
            "safety_stock": float(round(level * 0.5)),
            "lot_size": float(LOT_SIZE),
            "weekly_capacity": float(math.ceil(level * capacity_factor / LOT_SIZE) * LOT_SIZE),
            "frozen_weeks": 0,
            "baseline_weekly_demand": float(level),
        }
        add(DemoRequest("item master", "planning", "PUT", f"/v1/items/{sku}", "planning:write", items[sku]))

    accounts = [
        (s.strategic_account, "Nordmarkt Retail", "strategic"),
        (f"{prefix}-ACC-CASA", "Casa Bella Stores", "integrated"),
        (f"{prefix}-ACC-CORNER", "Corner Kitchen Shop", "emerging"),
        (s.stable_account, "Webshop Direct", "stable"),
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

    _book_orders_then_cut_capacity(s, items[s.promise_sku], [a[0] for a in accounts[:2]])
    add_cost_to_serve(s)

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


def _book_orders_then_cut_capacity(s: Scenario, item: dict[str, Any], higher_tiers: list[str]) -> None:
    """Sales orders of a strategic, an integrated and a stable account on the promise SKU, then its weekly
    capacity cut to one lot: the stable order can no longer be made by its promised date."""
    accounts = dict(zip(("strategic", "integrated", "stable"), [*higher_tiers, s.stable_account], strict=True))
    due = (s.today + timedelta(days=PROMISE_DUE_DAYS)).isoformat()
    for number, (tier, share) in enumerate(PROMISE_SHARES, 1):
        order_id = f"{s.prefix}-SO-{5000 + number}"
        s.promise_orders[order_id] = accounts[tier]
        body = {
            "order_id": order_id,
            "account_id": accounts[tier],
            "ordered_on": s.today.isoformat(),
            "lines": [
                {
                    "line_id": "1",
                    "sku": s.promise_sku,
                    "quantity": round(item["on_hand"] * share),
                    "requested_on": due,
                    "unit_price": 89.0,
                    "unit_cost": 52.0,
                }
            ],
        }
        s.requests.append(
            DemoRequest("sales orders booked", "fulfillment", "POST", "/v1/sales-orders", "orders:write", body)
        )
    cut = {**item, "weekly_capacity": CUT_CAPACITY}
    s.requests.append(
        DemoRequest("capacity cut", "planning", "PUT", f"/v1/items/{s.promise_sku}", "planning:write", cut)
    )


# ---------------------------------------------------------------- cost to serve

COST_STEP = "cost to serve"


def cost_accounts(s: Scenario) -> tuple[str, str]:
    """The profitable strategic account and the stable one its rush orders, split drops and returns sink."""
    return s.strategic_account, f"{s.prefix}-ACC-WEB"


def add_cost_to_serve(s: Scenario) -> None:
    """Sales orders and their drops through fulfillment, returns through the desk: the strategic account buys
    in bulk, delivered in one drop; the stable one orders little, always rushed, split over three drops, and
    sends goods back scrapped. The returns service turns them into the ledger and the whale curve."""
    strategic, stable = cost_accounts(s)
    ordered_on = s.today - timedelta(days=12)
    sku, other = s.surge_sku, s.sku("KETTLE")

    def order(order_id: str, account_id: str, lines: list[tuple[str, int, float, float]], rush: bool) -> None:
        body = {
            "order_id": order_id,
            "account_id": account_id,
            "ordered_on": ordered_on.isoformat(),
            "rush": rush,
            "lines": [
                {
                    "line_id": str(n),
                    "sku": line_sku,
                    "quantity": quantity,
                    "requested_on": (ordered_on + timedelta(days=5)).isoformat(),
                    "unit_price": price,
                    "unit_cost": cost,
                }
                for n, (line_sku, quantity, price, cost) in enumerate(lines, start=1)
            ],
        }
        s.requests.append(DemoRequest(COST_STEP, "fulfillment", "POST", "/v1/sales-orders", "orders:write", body))

    def drop(order_id: str, shipment_id: str, days_after: int, lines: list[tuple[str, int]]) -> None:
        body = {
            "shipment_id": shipment_id,
            "shipped_on": (ordered_on + timedelta(days=days_after)).isoformat(),
            "lines": [{"line_id": line_id, "quantity": quantity} for line_id, quantity in lines],
        }
        path = f"/v1/sales-orders/{order_id}/shipments"
        s.requests.append(DemoRequest(COST_STEP, "fulfillment", "POST", path, "orders:write", body))

    big = f"{s.prefix}-SO-BULK"
    order(big, strategic, [(sku, 400, 30.0, 18.0), (other, 200, 25.0, 15.0)], rush=False)
    drop(big, f"{big}-1", 4, [("1", 400), ("2", 200)])
    for n in range(3):
        small = f"{s.prefix}-SO-RUSH-{n + 1}"
        order(small, stable, [(sku, 9, 30.0, 18.0)], rush=True)  # the surge SKU: its return is not a quality one
        for part in range(3):
            drop(small, f"{small}-{part + 1}", 1 + part, [("1", 3)])
    returned = {
        "return_id": f"{s.prefix}-R-WEB",
        "sku": sku,
        "quantity": 6,
        "account_id": stable,
        "reason": "no_longer_needed",
        "condition": "scrap",
        "returned_on": (s.today - timedelta(days=2)).isoformat(),
        "order_id": f"{s.prefix}-SO-RUSH-1",
        "resolution": "refund",
    }
    s.requests.append(DemoRequest(COST_STEP, "returns", "POST", "/v1/returns", "returns:write", returned))
