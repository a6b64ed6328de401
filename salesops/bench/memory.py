"""Memory: peak RSS of each service process (psutil, sampled every 100 ms), idle after start-up and under a
mixed load on all four at once (the goal's figure); the peaks each service reached during the other measures
are reported beside it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from salesops.bench.harness import MIB, Harness, own_label
from salesops.bench.http_ingest import return_body
from salesops.bench.latency import complaint_body
from salesops.bench.load import closed_loop
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.order_volumes import batch

SERVICES = ("promotion", "fulfillment", "returns", "planning")
GOAL_MB = 300.0


async def run(harness: Harness, quick: bool) -> MeasureResult:
    seconds = 3.0 if quick else 15.0
    env = await harness.environment()
    processes = {name: await harness.service(name, env) for name in SERVICES}
    with harness.running(*processes.values()):
        await asyncio.sleep(1.0 if quick else 3.0)
        idle = {name: harness.sampler.latest.get(own_label(name), 0) for name in SERVICES}
        for name in SERVICES:
            harness.sampler.reset_peak(name)
        tag = uuid.uuid4().hex[:8]
        starts = datetime.now(UTC).date() + timedelta(weeks=2)

        def promotion(i: int) -> tuple[str, str, Any]:
            body = {
                "promotion_id": f"M-{tag}-{i:05d}",
                "name": f"Campaign {i}",
                "starts_on": starts.isoformat(),
                "ends_on": (starts + timedelta(days=10)).isoformat(),
                "items": [{"sku": f"SKU-{i % 300:05d}", "uplift_pct": 30}],
            }
            return "POST", "/v1/promotions", body

        async def item_master() -> None:
            async with httpx.AsyncClient(base_url=processes["planning"].url, headers=env.headers(), timeout=30) as c:
                for n in range(0, 300, 3 if quick else 1):
                    body = {"name": f"Item {n}", "on_hand": 100, "safety_stock": 20, "baseline_weekly_demand": 200}
                    (await c.put(f"/v1/items/SKU-{n:05d}", json=body)).raise_for_status()

        async def volumes() -> None:
            deadline = time.monotonic() + seconds
            async with httpx.AsyncClient(
                base_url=processes["fulfillment"].url, headers=env.headers(), timeout=120
            ) as c:
                index = 0
                while time.monotonic() < deadline:
                    (await c.post("/v1/order-volumes", json=batch(index, skus=300, lines=3_000))).raise_for_status()
                    index += 1

        loads = await asyncio.gather(
            item_master(),
            volumes(),
            closed_loop(
                processes["returns"].url,
                lambda i: ("POST", "/v1/returns", return_body(i, tag)),
                workers=8,
                max_requests=100_000,
                max_seconds=seconds,
                headers=env.headers(),
            ),
            closed_loop(
                processes["returns"].url,
                lambda i: ("POST", "/v1/complaints", complaint_body(f"MC-{tag}-{i}", i)),
                workers=2,
                max_requests=100_000,
                max_seconds=seconds,
                headers=env.headers(),
            ),
            closed_loop(
                processes["promotion"].url,
                promotion,
                workers=4,
                max_requests=100_000,
                max_seconds=seconds,
                headers=env.headers(),
            ),
        )
        # Consumers keep working on the events the load produced; let planning catch up a little.
        await asyncio.sleep(2.0 if quick else 5.0)
        loaded = {name: harness.sampler.peak.get(own_label(name), 0) for name in SERVICES}
        with_workers = {name: harness.sampler.peak.get(name, 0) for name in SERVICES}
    other_measures = {name: round(v / MIB, 1) for name, v in harness.service_peaks.items() if name in SERVICES}
    figures = []
    for name in SERVICES:
        # The goal is for the mixed load, the service process's own RSS; with its worker processes (the
        # planning fitter's, holding the statistics libraries while it fits) and the peaks of other measures (a
        # full replan's among them, with workers) are told beside it.
        elsewhere = harness.service_peaks.get(name, 0)
        workers = with_workers[name] - loaded[name]
        figures.append(
            Figure(
                f"{name} service peak RSS under mixed load",
                round(loaded[name] / MIB, 1),
                "MB",
                goal_max=GOAL_MB,
                note=f"idle {idle[name] / MIB:.0f} MB"
                + (f"; {with_workers[name] / MIB:,.0f} MB with its worker processes" if workers > MIB else "")
                + (f"; {elsewhere / MIB:,.0f} MB in other measures" if elsewhere else ""),
            )
        )
    return MeasureResult(
        figures=figures,
        details={
            "idle_mb": {name: round(v / MIB, 1) for name, v in idle.items()},
            "under_mixed_load_mb": {name: round(v / MIB, 1) for name, v in loaded.items()},
            "under_mixed_load_with_workers_mb": {name: round(v / MIB, 1) for name, v in with_workers.items()},
            "peak_over_run_mb": other_measures,
            "load_seconds": seconds,
            "load": [r.summary() for r in loads[2:] if r is not None],
        },
    )
