"""Planning core: a full recompute of N SKUs x 26 weeks with `plan_many` (how cost grows with size), and the
single-SKU revision an event triggers (`plan_sku` + `diff_plans`), timed with time.perf_counter.

Inputs are realistic: a year of weekly history per SKU, one promotion per 20 SKUs (with a dip and a
cannibalized neighbour), a spike per 50 SKUs, returns, capacity limits and a frozen fence.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import date, timedelta

from salesops.bench.harness import Harness
from salesops.bench.load import percentile
from salesops.bench.model import Figure, MeasureResult
from services.planning_service.domain import (
    Cannibalization,
    Item,
    Promotion,
    PromotionItem,
    SkuInputs,
    Spike,
    diff_plans,
    plan_many,
    plan_sku,
)

HORIZON = date(2026, 11, 16)
WEEKS = 26


def build_inputs(count: int, seed: int = 7) -> tuple[list[SkuInputs], list[Promotion]]:
    rng = random.Random(seed)
    inputs, promotions = [], []
    for n in range(count):
        sku = f"SKU-{n:06d}"
        level = rng.uniform(20, 500)
        history = {HORIZON - timedelta(weeks=w): max(0.0, rng.gauss(level, level * 0.2)) for w in range(1, 53)}
        item = Item(
            sku=sku,
            name=sku,
            on_hand=rng.uniform(0, level * 2),
            safety_stock=level * 0.5,
            lot_size=rng.choice((1, 10, 50)),
            weekly_capacity=level * rng.uniform(1.1, 2.0) if n % 3 else None,
            frozen_weeks=2 if n % 4 == 0 else 0,
        )
        spikes = (Spike(sku, HORIZON + timedelta(days=1), level / 7 * 3, level / 7, False),) if n % 50 == 0 else ()
        returns = {HORIZON + timedelta(days=9): 5.0} if n % 10 == 0 else {}
        previous = {HORIZON + timedelta(weeks=w): level for w in range(WEEKS)} if item.frozen_weeks else None
        inputs.append(SkuInputs(item, history, spikes, returns, {}, previous))
        if n % 20 == 0:
            start = HORIZON + timedelta(weeks=rng.randint(1, 20), days=rng.randint(0, 6))
            promotions.append(
                Promotion(
                    promotion_id=f"P-{n}",
                    starts_on=start,
                    ends_on=start + timedelta(days=rng.randint(2, 10)),
                    items=(PromotionItem(sku, rng.uniform(10, 80)),),
                    post_promo_dip_pct=20,
                    post_promo_dip_weeks=2,
                    cannibalized=(Cannibalization(f"SKU-{n + 1:06d}", 10),),
                )
            )
    return inputs, promotions


def full_recompute(sizes: list[int], repeat: int) -> dict[int, list[float]]:
    """Seconds of every repeat per size."""
    timings: dict[int, list[float]] = {}
    for size in sizes:
        inputs, promotions = build_inputs(size)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            plans = plan_many(inputs, HORIZON, WEEKS, promotions=promotions)
            times.append(time.perf_counter() - started)
        assert len(plans) == size
        timings[size] = times
    return timings


def single_revisions(count: int) -> list[float]:
    """What one event costs the core: re-plan the SKU with a changed promotion and diff against its plan."""
    inputs, promotions = build_inputs(200)
    current = {p.sku: p for p in plan_many(inputs, HORIZON, WEEKS, promotions=promotions)}
    rng = random.Random(11)
    times = []
    for _ in range(count):
        sku_inputs = inputs[rng.randrange(len(inputs))]
        sku = sku_inputs.item.sku
        revised = Promotion(
            "P-NEW",
            HORIZON + timedelta(weeks=3),
            HORIZON + timedelta(weeks=4),
            (PromotionItem(sku, rng.uniform(5, 90)),),
        )
        touching = [p for p in promotions if sku in {i.sku for i in p.items} | {c.sku for c in p.cannibalized}]
        started = time.perf_counter()
        plan = plan_sku(sku_inputs, HORIZON, WEEKS, promotions=[*touching, revised])
        diff_plans(current[sku], plan)
        times.append(time.perf_counter() - started)
    return times


async def run(harness: Harness | None, quick: bool) -> MeasureResult:
    """The pure core, in this process: no infrastructure, so the harness is not used."""
    sizes = [200, 1_000] if quick else [1_000, 10_000, 50_000]
    repeat = 1 if quick else 3
    revisions = 50 if quick else 500
    timings = await asyncio.to_thread(full_recompute, sizes, repeat)
    single = await asyncio.to_thread(single_revisions, revisions)
    figures = []
    smallest = min(sizes)
    for size, times in timings.items():
        best = min(times)
        growth = best / min(timings[smallest]) / (size / smallest)
        figures.append(
            Figure(
                f"full recompute, {size:,} SKUs x {WEEKS} weeks",
                round(best, 3),
                "s",
                goal_max=2.0 if size == 10_000 else None,
                note=f"{size / best:,.0f} SKUs/s; cost per SKU x{growth:.2f} of the {smallest:,}-SKU run",
            )
        )
    figures.append(
        Figure(
            "single-SKU revision p99",
            round(percentile(single, 99) * 1000, 3),
            "ms",
            note=f"p50 {percentile(single, 50) * 1000:.3f} ms (plan_sku + diff_plans)",
        )
    )
    return MeasureResult(
        figures=figures,
        details={
            "weeks": WEEKS,
            "full_recompute_s": {str(size): [round(t, 4) for t in times] for size, times in timings.items()},
            "median_s": {str(size): round(statistics.median(times), 4) for size, times in timings.items()},
            "single_revision_ms": {
                "runs": revisions,
                "p50": round(percentile(single, 50) * 1000, 4),
                "p99": round(percentile(single, 99) * 1000, 4),
            },
        },
    )
