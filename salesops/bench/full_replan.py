"""Full replan through the database: `POST /v1/replan` on the planning service (the path the week rollover
takes: load every SKU's inputs, the vectorised core, diff against the stored plans, save revisions and
publish their events through the outbox), timed, with the planning process's peak RSS, its CPU, the
database's CPU and statements.

Seeded straight into planning's tables with server-side SQL (items, 16 weeks of daily volumes, one
promotion per 20 SKUs), then two replans: the first writes every SKU's first plan, the second follows a
change of every item's stock, so every plan is revised (the shape of a week rollover). A process that grows
past `RSS_LIMIT` is stopped, and the figure says so, rather than let it take the shared machine down.

The seeded SKUs have no baseline models yet, so the service's fitter fits them in its worker process while
the replans run (as after a first deployment). Peak RSS is the service process's own (the replan's memory);
the figure with the fitter's worker processes is given beside it, and their CPU is in the planning CPU."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from salesops.bench.harness import MIB, Environment, Harness, Process, own_label, wait_until
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.profile import Profiler
from shared.events import CannibalizationData, PromotionData, PromotionItemData

HISTORY_DAYS = 112
PROMOTION_EVERY = 20
RSS_LIMIT = 4 * 1024 * MIB
GOAL_SECONDS = 3.0
GOAL_SECONDS_SIZE = 10_000
GOAL_MB = 300.0

_ITEMS = """
INSERT INTO planning.items (sku, name, on_hand, safety_stock, lot_size, weekly_capacity, frozen_weeks,
                            baseline_weekly_demand, revision)
SELECT 'SKU-' || lpad(n::text, 6, '0'), 'Item ' || n, 50 + n % 400, 20 + n % 60, (ARRAY[1, 10, 50])[1 + n % 3],
       CASE WHEN n % 3 = 0 THEN NULL ELSE 300 + n % 500 END, CASE WHEN n % 4 = 0 THEN 2 ELSE 0 END, NULL, 1
FROM generate_series(0, $1 - 1) AS n
"""
_VOLUMES = """
INSERT INTO planning.daily_volumes (sku, day, units_ordered, units_shipped, units_backordered)
SELECT 'SKU-' || lpad(n::text, 6, '0'), $2::date - d, 10 + (n * 7 + d * 13) % 60, 8 + (n * 7 + d * 13) % 55,
       (n + d) % 3
FROM generate_series(0, $1 - 1) AS n, generate_series(1, $3) AS d
"""


def promotion_rows(count: int, today: Any) -> list[tuple[str, int, str, str, str]]:
    rows = []
    for n in range(0, count, PROMOTION_EVERY):
        starts = today + timedelta(weeks=1 + n % 20, days=n % 7)
        data = PromotionData(
            promotion_id=f"P-{n:06d}",
            name=f"Campaign {n}",
            starts_on=starts,
            ends_on=starts + timedelta(days=2 + n % 9),
            items=[PromotionItemData(sku=f"SKU-{n:06d}", uplift_pct=10 + n % 70)],
            post_promo_dip_pct=20,
            post_promo_dip_weeks=2,
            cannibalized=[CannibalizationData(sku=f"SKU-{n + 1:06d}", pct=10)] if n + 1 < count else [],
        )
        rows.append((data.promotion_id, 1, "planned", data.model_dump_json(), f"bench-{n}"))
    return rows


async def seed(env: Environment, count: int) -> float:
    """Items, history and promotions of `count` SKUs; returns the seconds it took."""
    started = time.perf_counter()
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(_ITEMS, count)
        await conn.execute(_VOLUMES, count, today, HISTORY_DAYS)
        await conn.executemany(
            "INSERT INTO planning.promotions (promotion_id, version, status, body, last_event_id)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            promotion_rows(count, today),
        )
        # Statistics as autovacuum would have them for tables this size.
        await conn.execute("ANALYZE planning.items, planning.daily_volumes, planning.promotions")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _outbox_drained(env: Environment) -> bool:
    conn = await asyncpg.connect(env.dsn)
    try:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM planning.outbox WHERE published_at IS NULL)")
    finally:
        await conn.close()


async def replan(
    harness: Harness, env: Environment, planning: Process, count: int, profiler: Profiler | None = None
) -> dict[str, Any]:
    """One metered `POST /v1/replan`, watched for RSS; the outbox it fills is drained before returning."""
    own = own_label(planning.label)
    idle = harness.sampler.latest.get(own, 0)
    harness.sampler.reset_peak(planning.label)
    aborted = False
    error = ""

    async def watchdog() -> None:
        nonlocal aborted
        while True:
            if planning.rss_bytes() > RSS_LIMIT:
                aborted = True
                # Not SIGTERM: uvicorn would let the request that grows finish first.
                planning.popen.kill()
                return
            await asyncio.sleep(0.1)

    async with harness.metered(env, {"planning": planning.popen.pid}) as meter:
        guard = asyncio.create_task(watchdog())
        if profiler is not None:
            profiler.start(f"planning-{count}", planning.popen.pid, 600)
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=planning.url, headers=env.headers("planner"), timeout=900) as c:
                response = await c.post("/v1/replan")
            seconds = time.perf_counter() - started
        except httpx.HTTPError as exc:
            if not aborted:
                raise
            seconds = time.perf_counter() - started
            response = None
            error = repr(exc)
        finally:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
            if profiler is not None:
                await profiler.finish(stop=True)
    peak = max(harness.sampler.peak.get(own, 0), planning.rss_bytes(children=False))
    peak_with_workers = max(harness.sampler.peak.get(planning.label, 0), planning.rss_bytes())
    usage = meter.result()
    if aborted or response is None:
        return {
            "aborted": True,
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak / MIB, 1),
            "peak_rss_with_workers_mb": round(peak_with_workers / MIB, 1),
            "error": error,
        }
    response.raise_for_status()
    answer = response.json()
    drained_at = time.perf_counter()
    drained = await wait_until(lambda: _outbox_drained(env), timeout_s=600, interval_s=0.2)
    return {
        "aborted": False,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak / MIB, 1),
        "peak_rss_with_workers_mb": round(peak_with_workers / MIB, 1),
        "idle_rss_mb": round(idle / MIB, 1),
        "answer": answer,
        "usage": usage.per(count),
        "outbox_drained_s": round(time.perf_counter() - drained_at, 2) if drained else None,
    }


async def one_size(harness: Harness, count: int) -> dict[str, Any]:
    env = await harness.environment()
    seeded_s = await seed(env, count)
    planning = await harness.service("planning", env)
    runs: dict[str, Any] = {"skus": count, "seed_s": round(seeded_s, 1)}
    profiler = harness.profiler("full_replan") if count <= GOAL_SECONDS_SIZE else None
    with harness.running(planning):
        runs["first_plans"] = await replan(harness, env, planning, count, profiler)
        runs["profile"] = profiler.summary() if profiler is not None else None
        if not runs["first_plans"]["aborted"]:
            conn = await asyncpg.connect(env.dsn)
            try:
                await conn.execute("UPDATE planning.items SET on_hand = on_hand + 37, revision = revision + 1")
            finally:
                await conn.close()
            runs["every_plan_revised"] = await replan(harness, env, planning, count)
    return runs


def _figures(size: dict[str, Any]) -> list[Figure]:
    count = size["skus"]
    figures = []
    for key, title in (("first_plans", "first plans"), ("every_plan_revised", "every plan revised")):
        run_ = size.get(key)
        if run_ is None:
            continue
        if run_["aborted"]:
            note = f"stopped above {RSS_LIMIT // MIB:,} MB RSS after {run_['seconds']} s"
        else:
            cpu = run_["usage"]["cpu_ms_per_unit"]
            stmts = run_["usage"]["statements_per_unit"] or {}
            note = (
                f"{run_['answer']['revised']:,} revised; CPU planning {cpu.get('planning', 0) * count / 1000:.1f} s,"
                f" database {cpu.get('postgres', 0) * count / 1000:.1f} s;"
                f" {stmts.get('statements', '?')} statements per SKU"
            )
        figures.append(
            Figure(
                f"full replan, {count:,} SKUs, {title}",
                run_["seconds"],
                "s",
                goal_max=GOAL_SECONDS if count == GOAL_SECONDS_SIZE else None,
                note=note,
            )
        )
        figures.append(
            Figure(
                f"full replan, {count:,} SKUs, {title}, peak RSS",
                run_["peak_rss_mb"],
                "MB",
                goal_max=GOAL_MB,
                note=(
                    f"planning service process; idle {run_.get('idle_rss_mb', '?')} MB; with the fitter's worker"
                    f" processes {run_.get('peak_rss_with_workers_mb', '?')} MB"
                ),
            )
        )
    return figures


async def run(harness: Harness, quick: bool) -> MeasureResult:
    sizes = [1_000] if quick else [GOAL_SECONDS_SIZE, 50_000]
    results = [await one_size(harness, count) for count in sizes]
    return MeasureResult(
        figures=[f for size in results for f in _figures(size)],
        details={"history_days": HISTORY_DAYS, "promotion_every": PROMOTION_EVERY, "sizes": results},
    )
