"""Baseline models: fitting N SKUs (three years of weekly history, a quarter each smooth, trending, seasonal
and intermittent, with promotions) in chunks across worker processes, as the weekly rollover would, and the
full recompute that applies the fitted models on every event."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date, timedelta

import psutil

from salesops.bench.harness import Harness
from salesops.bench.model import Figure, MeasureResult
from salesops.evaluation.simulator import simulate
from services.planning_service.domain import BaselineModel, Item, Promotion, SkuInputs, plan_many
from services.planning_service.domain.fitting import CHUNK_SKUS, fit_baselines

HISTORY_WEEKS = 156
WEEKS = 26


def build(count: int) -> tuple[list[SkuInputs], list[Promotion], date]:
    simulation = simulate(count, HISTORY_WEEKS, seed=17)
    horizon = simulation.monday(HISTORY_WEEKS)
    inputs = [
        SkuInputs(
            Item(sku.sku, sku.sku, on_hand=0, safety_stock=0),
            simulation.reported_history(row, HISTORY_WEEKS),
        )
        for row, sku in enumerate(simulation.skus)
    ]
    return inputs, simulation.promotions, horizon


def _chunks(inputs: list[SkuInputs]) -> Iterator[list[SkuInputs]]:
    for start in range(0, len(inputs), CHUNK_SKUS):
        yield inputs[start : start + CHUNK_SKUS]


def _fit(chunk: list[SkuInputs], horizon: date, promotions: list[Promotion]) -> tuple[list[BaselineModel | None], int]:
    models = fit_baselines(chunk, horizon, promotions)
    return models, psutil.Process().memory_info().rss


def fit_all(
    inputs: list[SkuInputs], promotions: list[Promotion], horizon: date, workers: int
) -> tuple[float, list[BaselineModel | None], list[int]]:
    """Seconds to fit every SKU, the models, and each worker's RSS after each chunk (flat = no growth)."""
    started = time.perf_counter()
    models: list[BaselineModel | None] = []
    rss: list[int] = []
    with ProcessPoolExecutor(workers) as pool:
        # promotions go to each chunk whole: a chunk's SKUs are cleaned by whatever touched them
        futures = [pool.submit(_fit, chunk, horizon, _touching(chunk, promotions)) for chunk in _chunks(inputs)]
        for future in futures:
            chunk_models, worker_rss = future.result()
            models.extend(chunk_models)
            rss.append(worker_rss)
    return time.perf_counter() - started, models, rss


def _touching(chunk: list[SkuInputs], promotions: list[Promotion]) -> list[Promotion]:
    """Each chunk is sent the promotions of its own SKUs, as the rollover would load them."""
    skus = {inp.item.sku for inp in chunk}
    return [p for p in promotions if {i.sku for i in p.items} & skus or {c.sku for c in p.cannibalized} & skus]


def apply_all(
    inputs: list[SkuInputs], models: list[BaselineModel | None], promotions: list[Promotion], horizon: date
) -> float:
    fitted = [replace(inp, baseline_model=m) for inp, m in zip(inputs, models, strict=True)]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        plan_many(fitted, horizon, WEEKS, promotions=promotions)
        best = min(best, time.perf_counter() - started)
    return best


def decode_all(models: list[BaselineModel | None]) -> float:
    """Seconds to turn the stored JSON of every model back into models, as a full re-plan's load does."""
    stored = [json.dumps(m.to_json()) for m in models if m is not None]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for text in stored:
            BaselineModel.from_json(json.loads(text))
        best = min(best, time.perf_counter() - started)
    return best


def measure(count: int, workers: int) -> tuple[float, float, float, list[int], int]:
    inputs, promotions, horizon = build(count)
    fit_s, models, rss = fit_all(inputs, promotions, horizon, workers)
    # past promotions were needed to clean the history the models were fitted on; a recompute on the
    # fitted origin needs only those that still reach the horizon
    recent = [p for p in promotions if p.ends_on >= horizon - timedelta(weeks=4)]
    apply_s = apply_all(inputs, models, recent, horizon)
    return fit_s, apply_s, decode_all(models), rss, sum(m is not None for m in models)


async def run(harness: Harness | None, quick: bool) -> MeasureResult:
    """The pure core, in this process and its workers: no infrastructure, so the harness is not used."""
    count = 1_000 if quick else 10_000
    workers = min(2, os.cpu_count() or 1)
    fit_s, apply_s, decode_s, rss, fitted = await asyncio.to_thread(measure, count, workers)
    growth = (max(rss[-workers:]) - max(rss[:workers])) / 2**20
    return MeasureResult(
        figures=[
            Figure(
                f"fit baselines, {count:,} SKUs x {HISTORY_WEEKS} weeks",
                round(fit_s, 2),
                "s",
                goal_max=60.0 if count == 10_000 else None,
                note=f"{workers} processes, chunks of {CHUNK_SKUS}; worker RSS first to last chunk {growth:+.0f} MiB",
            ),
            Figure(
                f"full recompute with fitted models, {count:,} SKUs x {WEEKS} weeks",
                round(apply_s, 3),
                "s",
                goal_max=2.0 if count == 10_000 else None,
                note=f"{fitted:,} SKUs with a model, the rest short-history smoothing",
            ),
            Figure(
                f"decode {fitted:,} stored models (JSON to BaselineModel)",
                round(decode_s, 3),
                "s",
                note="what loading the stored models adds to a full re-plan, besides the query",
            ),
        ],
        details={"worker_rss_mib": [round(r / 2**20, 1) for r in rss], "fitted": fitted},
    )
