"""Promising: `POST /v1/promises/check` latency with 10,000 SKUs planned (each with open order lines and an
allocation policy), and what booking an order costs the planning consumer per event, measured beside
`order-volume.reported` events on the same loaded service, the same 50 SKUs and the same broker.

The 10,000 items, their accounts and 30,000 open order lines are written straight into planning's tables
(loading state is not what is measured), then `POST /v1/replan` plans every SKU with its booked orders.
Checks run one at a time from a single client: each figure is one request's latency over HTTP, auth and
validation included.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from salesops.bench.accounting import Usage
from salesops.bench.consumers import produce_events
from salesops.bench.events import order_volume_event, sales_order_event
from salesops.bench.harness import Environment, Harness, wait_until
from salesops.bench.load import percentile
from salesops.bench.model import Figure, MeasureResult
from shared.events import Topic

SKUS = 10_000
LINES_PER_SKU = 3
ACCOUNTS = 400
TIERS = ("strategic", "integrated", "emerging", "stable")
EVENT_SKUS = 50  # as in the consumers measure
POLICY = {"reserve_pct": {"strategic": 30, "integrated": 15, "emerging": 5}, "release_days": 7}


def _monday() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


async def load_state(env: Environment, skus: int) -> None:
    """Items, accounts and open order lines for `skus` SKUs, copied into planning's tables."""
    rng = random.Random(5)
    monday = _monday()
    booked = datetime.now(UTC) - timedelta(days=10)
    items, orders, lines = [], [], []
    for n in range(skus):
        sku = f"SKU-{n:04d}"
        level = rng.uniform(50, 400)
        capacity = level * rng.uniform(1.0, 1.6) if n % 3 else None
        items.append((sku, sku, level * 2, level / 2, 1.0, capacity, 0, level, 1))
        for k in range(LINES_PER_SKU):
            order_id = f"SO-{n:05d}-{k}"
            quantity = float(rng.randint(10, int(level)))
            promised = monday + timedelta(days=rng.randint(0, 12 * 7))
            orders.append((order_id, f"ACC-{rng.randrange(ACCOUNTS):04d}", None, "open", 1, booked, order_id))
            lines.append((order_id, "1", sku, quantity, 0.0, quantity, promised, promised))
    accounts = [(f"ACC-{a:04d}", f"Account {a}", TIERS[a % 4], None, 1, booked, f"acc-{a}") for a in range(ACCOUNTS)]
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.copy_records_to_table(
            "items",
            schema_name="planning",
            records=items,
            columns=[
                "sku",
                "name",
                "on_hand",
                "safety_stock",
                "lot_size",
                "weekly_capacity",
                "frozen_weeks",
                "baseline_weekly_demand",
                "revision",
            ],
        )
        await conn.copy_records_to_table(
            "accounts",
            schema_name="planning",
            records=accounts,
            columns=["account_id", "name", "segment", "owner_email", "version", "changed_at", "last_event_id"],
        )
        await conn.copy_records_to_table(
            "orders",
            schema_name="planning",
            records=orders,
            columns=["order_id", "account_id", "tier", "status", "version", "booked_at", "last_event_id"],
        )
        await conn.copy_records_to_table(
            "order_lines",
            schema_name="planning",
            records=lines,
            columns=[
                "order_id",
                "line_id",
                "sku",
                "quantity",
                "shipped_quantity",
                "open_quantity",
                "requested_on",
                "promised_on",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def check_latencies(client: httpx.AsyncClient, count: int, skus: int) -> tuple[list[float], int]:
    """Seconds per promise check, one at a time, over random SKUs, accounts, quantities and dates; and how
    many of them could be promised."""
    rng = random.Random(9)
    monday = _monday()
    latencies: list[float] = []
    promisable = 0
    for _ in range(count):
        body = {
            "account_id": f"ACC-{rng.randrange(ACCOUNTS + 50):04d}",  # a few unknown accounts too
            "sku": f"SKU-{rng.randrange(skus):04d}",
            "quantity": rng.randint(1, 800),
            "requested_on": (monday + timedelta(days=rng.randint(0, 20 * 7))).isoformat(),
        }
        started = time.perf_counter()
        response = await client.post("/v1/promises/check", json=body)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        promisable += bool(response.json()["can_promise"])
    return latencies, promisable


async def item_latencies(client: httpx.AsyncClient, count: int, skus: int) -> list[float]:
    """Seconds per `GET /v1/items/{sku}`: one primary-key read through the same plumbing, for comparison."""
    rng = random.Random(3)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(f"/v1/items/SKU-{rng.randrange(skus):04d}")
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    return latencies


async def _events_per_second(env: Environment, events: list[tuple[str, bytes]], topic: str) -> float:
    """Events/s the planning consumer handles: from producing them until the inbox holds every one."""
    db = await asyncpg.connect(env.dsn)
    try:
        before = int(await db.fetchval("SELECT count(*) FROM planning.inbox"))

        async def processed() -> bool:
            return int(await db.fetchval("SELECT count(*) FROM planning.inbox")) >= before + len(events)

        started = time.perf_counter()
        await produce_events(env.bootstrap_servers, events, topic)
        if not await wait_until(processed, timeout_s=600, interval_s=0.02):
            raise RuntimeError(f"planning did not process every event of {topic} in time")
        return len(events) / (time.perf_counter() - started)
    finally:
        await db.close()


async def _metered_rate(
    harness: Harness, env: Environment, pid: int, label: str, events: list[tuple[str, bytes]], topic: str
) -> tuple[float, Usage, dict[str, Any] | None]:
    """`_events_per_second`, metered (CPU of the planning process and the database, statements) and, with
    `--profile`, recorded by py-spy."""
    profiler = harness.profiler(f"promising-{label}")
    async with harness.metered(env, {"planning": pid}) as meter:
        if profiler is not None:
            profiler.start("planning", pid, 600)
        rate = await _events_per_second(env, events, topic)
        if profiler is not None:
            await profiler.finish(stop=True)
    return rate, meter.result(), profiler.summary() if profiler is not None else None


async def _published(env: Environment) -> dict[str, int]:
    """Events planning wrote to its outbox during the measure, by type."""
    db = await asyncpg.connect(env.dsn)
    try:
        rows = await db.fetch("SELECT event_type, count(*) AS n FROM planning.outbox GROUP BY event_type")
        return {row["event_type"]: int(row["n"]) for row in rows}
    finally:
        await db.close()


async def run(harness: Harness, quick: bool) -> MeasureResult:
    skus = 1_000 if quick else SKUS
    checks = 200 if quick else 2_000
    events = 100 if quick else 2_000
    env = await harness.environment()
    await load_state(env, skus)
    planning = await harness.service("planning", env)
    with harness.running(planning):
        async with httpx.AsyncClient(base_url=planning.url, headers=env.headers("planner"), timeout=600) as client:
            started = time.perf_counter()
            replanned = await client.post("/v1/replan")
            replanned.raise_for_status()
            replan_s = time.perf_counter() - started
            (await client.put("/v1/allocation-policy", json=POLICY)).raise_for_status()
            await check_latencies(client, 100, skus)  # warm-up: connections, caches, the first JSON schemas
            latencies, promisable = await check_latencies(client, checks, skus)
            reads = await item_latencies(client, checks // 2, skus)

            # Warm the consumer group with one event of each kind before any clock starts.
            monday = _monday()
            await _events_per_second(env, [order_volume_event(0, EVENT_SKUS)], Topic.ORDER_VOLUMES)
            await _events_per_second(env, [sales_order_event(0, EVENT_SKUS, monday)], Topic.ORDERS)
            pid = planning.popen.pid
            volumes_rate, volumes_usage, volumes_profile = await _metered_rate(
                harness,
                env,
                pid,
                "volumes",
                [order_volume_event(i, EVENT_SKUS) for i in range(1, events + 1)],
                Topic.ORDER_VOLUMES,
            )
            orders_rate, orders_usage, orders_profile = await _metered_rate(
                harness,
                env,
                pid,
                "orders",
                [sales_order_event(i, EVENT_SKUS, monday) for i in range(1, events + 1)],
                Topic.ORDERS,
            )
            published = await _published(env)
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    read_p50, read_p99 = percentile(reads, 50) * 1000, percentile(reads, 99) * 1000
    return MeasureResult(
        figures=[
            Figure(
                f"promise check p99, {skus:,} SKUs",
                round(p99, 2),
                "ms",
                goal_max=50,
                note=f"p50 {p50:.2f} ms; {checks:,} checks one at a time, {promisable:,} promisable;"
                f" GET /v1/items/{{sku}} p50 {read_p50:.2f} / p99 {read_p99:.2f} ms",
            ),
            Figure(
                "planning consumer (sales-order.booked events)",
                round(orders_rate, 1),
                "events/s",
                baseline=round(volumes_rate, 1),
                baseline_name="order-volume.reported, same service and SKUs",
                goal_ratio=0.8,
                note=f"{1000 / orders_rate:.2f} ms per booked order vs {1000 / volumes_rate:.2f} ms per volume event;"
                f" {events:,} events over {EVENT_SKUS} SKUs with {skus:,} planned; CPU per event planning + database"
                f" {orders_usage.cpu_ms_per('planning', events):.2f}"
                f" + {orders_usage.cpu_ms_per('postgres', events):.2f}"
                f" ms vs {volumes_usage.cpu_ms_per('planning', events):.2f}"
                f" + {volumes_usage.cpu_ms_per('postgres', events):.2f} ms; statements per event"
                f" {orders_usage.statements_per(events)} vs {volumes_usage.statements_per(events)}",
            ),
        ],
        details={
            "skus": skus,
            "open_lines": skus * LINES_PER_SKU,
            "accounts": ACCOUNTS,
            "replan_all_s": round(replan_s, 2),
            "replan": replanned.json(),
            "checks": checks,
            "check_ms": {
                "p50": round(p50, 3),
                "p90": round(percentile(latencies, 90) * 1000, 3),
                "p99": round(p99, 3),
                "max": round(max(latencies) * 1000, 3),
            },
            "promisable": promisable,
            "item_read_ms": {"p50": round(read_p50, 3), "p99": round(read_p99, 3)},
            "events": events,
            "order_events_per_s": round(orders_rate, 1),
            "volume_events_per_s": round(volumes_rate, 1),
            "published": published,
            "order_usage_per_event": orders_usage.per(events),
            "volume_usage_per_event": volumes_usage.per(events),
            "profile": {"orders": orders_profile, "volumes": volumes_profile},
        },
    )
