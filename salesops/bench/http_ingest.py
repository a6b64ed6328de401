"""HTTP ingest, small requests: `POST /v1/returns` (validation, auth, idempotency, outbox write) on the returns
service against a bare FastAPI endpoint doing one asyncpg insert, both under uvicorn, same load generator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from salesops.bench.harness import Harness
from salesops.bench.load import LoadResult, closed_loop
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.raw_app import RAW_TABLE_DDL

REASONS = ("no_longer_needed", "wrong_item", "late_delivery", "defective", "other")
CONDITIONS = ("resellable", "refurbish", "scrap")


def return_body(index: int, run: str) -> dict[str, Any]:
    return {
        "return_id": f"R-{run}-{index:07d}",
        "sku": f"SKU-{index % 200:04d}",
        "quantity": 1 + index % 3,
        "account_id": f"ACC-{index % 50:03d}",
        "reason": REASONS[index % len(REASONS)],
        "condition": CONDITIONS[index % len(CONDITIONS)],
        "returned_on": datetime.now(UTC).date().isoformat(),
    }


async def run(harness: Harness, quick: bool) -> MeasureResult:
    workers = 8 if quick else 32
    count = 200 if quick else 6000
    seconds = 3.0 if quick else 10.0
    rounds = 1 if quick else 2
    env = await harness.environment()
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(RAW_TABLE_DDL)
    finally:
        await conn.close()
    returns = await harness.service("returns", env)
    raw = await harness.uvicorn_app(
        "raw-http", "salesops.bench.raw_app:app", {**env.service_env(), "BENCH_RAW_DSN": env.dsn}
    )
    system_runs: list[LoadResult] = []
    raw_runs: list[LoadResult] = []
    with harness.running(returns, raw):

        async def system(n: int, m: float) -> LoadResult:
            tag = uuid.uuid4().hex[:8]
            return await closed_loop(
                returns.url,
                lambda i: ("POST", "/v1/returns", return_body(i, tag)),
                workers=workers,
                max_requests=n,
                max_seconds=m,
                headers=env.headers("returns-desk"),
            )

        async def baseline(n: int, m: float) -> LoadResult:
            tag = uuid.uuid4().hex[:8]
            return await closed_loop(
                raw.url,
                lambda i: ("POST", "/ingest", return_body(i, tag)),
                workers=workers,
                max_requests=n,
                max_seconds=m,
            )

        # Warm both up (connection pools, first-request imports), then alternate so background load on the
        # machine hits both sides alike; the best round of each counts.
        await system(min(100, count), 5)
        await baseline(min(100, count), 5)
        for _ in range(rounds):
            raw_runs.append(await baseline(count, seconds))
            system_runs.append(await system(count, seconds))
    best_system = max(system_runs, key=lambda r: r.rate)
    best_raw = max(raw_runs, key=lambda r: r.rate)
    return MeasureResult(
        figures=[
            Figure(
                "POST /v1/returns",
                round(best_system.rate, 1),
                "req/s",
                baseline=round(best_raw.rate, 1),
                baseline_name="FastAPI + one asyncpg insert",
                goal_ratio=0.5,
                note=f"{workers} concurrent clients",
            ),
            Figure("POST /v1/returns latency p99", round(best_system.summary()["latency_p99_ms"], 1), "ms"),
        ],
        details={
            "workers": workers,
            "system_rounds": [r.summary() for r in system_runs],
            "baseline_rounds": [r.summary() for r in raw_runs],
        },
    )
