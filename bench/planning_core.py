"""Benchmark of the pure planning core: a full recompute of N SKUs x 26 weeks with `plan_many`, and the
single-SKU revision an event triggers (`plan_sku` + `diff_plans`), timed with time.perf_counter.

    python bench/planning_core.py [--sizes 1000 10000 50000] [--repeat 3] [--revisions 500]

Inputs are realistic: a year of weekly history per SKU, one promotion per 20 SKUs (with a dip and a
cannibalized neighbour), a spike per 50 SKUs, returns, capacity limits and a frozen fence.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from datetime import date, timedelta

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


def machine() -> str:
    memory = "unknown"
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, {memory} RAM,"
        f" Python {platform.python_version()}"
    )


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


def full_recompute(sizes: list[int], repeat: int) -> None:
    print(f"full recompute, {WEEKS} weeks (best and median of {repeat}):")
    for size in sizes:
        inputs, promotions = build_inputs(size)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            plans = plan_many(inputs, HORIZON, WEEKS, promotions=promotions)
            times.append(time.perf_counter() - started)
        assert len(plans) == size
        print(
            f"  {size:>7,} SKUs: best {min(times):7.3f} s, median {statistics.median(times):7.3f} s"
            f"  ({size / min(times):,.0f} SKUs/s)"
        )


def single_revisions(count: int) -> None:
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
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"single-SKU revision (plan_sku + diff_plans), {count} runs: p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--revisions", type=int, default=500)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    full_recompute(args.sizes, args.repeat)
    single_revisions(args.revisions)


if __name__ == "__main__":
    main()
