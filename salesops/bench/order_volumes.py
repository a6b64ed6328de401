"""HTTP ingest, bulk: `POST /v1/order-volumes` with 1,000-line batches to the fulfillment service (a process
under uvicorn: upsert, daily totals, spike re-check, events through the outbox), in lines/s committed, against
asyncpg `executemany` and `COPY` of the same rows into a plain table of the same database.

New rows: each batch is a fresh slice of days for every SKU, so the spike rule has a growing history to judge.
Corrections: earlier batches re-sent with every figure changed (each corrected day re-judges the days after
it). Identical re-sends: nothing to write, nothing to publish.
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx

from salesops.bench.accounting import Usage
from salesops.bench.harness import Environment, Harness
from salesops.bench.model import Figure, MeasureResult

LINES = 1_000
SKUS = 100
START = date(2026, 1, 1)


def batch(index: int, skus: int = SKUS, lines: int = LINES, bump: int = 0) -> dict[str, Any]:
    days = lines // skus
    return {
        "warehouse_id": "DC-BENCH",
        "lines": [
            {
                "sku": f"SKU-{s:05d}",
                "day": (START + timedelta(days=index * days + d)).isoformat(),
                "units_ordered": 100 + (s + d) % 7 + bump,
                "units_shipped": 95 + bump,
                "units_backordered": 5,
            }
            for s in range(skus)
            for d in range(days)
        ],
    }


async def timed_posts(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for body in bodies:
        response = await client.post("/v1/order-volumes", json=body)
        response.raise_for_status()
    return time.perf_counter() - started


def _rows(bodies: list[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    return [
        [
            (
                b["warehouse_id"],
                ln["sku"],
                date.fromisoformat(ln["day"]),
                ln["units_ordered"],
                ln["units_shipped"],
                ln["units_backordered"],
            )
            for ln in b["lines"]
        ]
        for b in bodies
    ]


async def raw_baselines(harness: Harness, env: Environment, bodies: list[dict[str, Any]]) -> tuple[float, float, Usage]:
    """Seconds to write the same rows, batch by batch, with executemany and with COPY (the raw floor), and
    what the executemany run cost (this process and the database)."""
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(
            "CREATE TABLE bench_raw_volumes (warehouse_id text, sku text, day date, units_ordered int,"
            " units_shipped int, units_backordered int, PRIMARY KEY (warehouse_id, sku, day))"
        )
        batches = _rows(bodies)
        async with harness.metered(env, {"bench": os.getpid()}) as meter:
            started = time.perf_counter()
            for rows in batches:
                await conn.executemany("INSERT INTO bench_raw_volumes VALUES ($1, $2, $3, $4, $5, $6)", rows)
            executemany_s = time.perf_counter() - started
        await conn.execute("TRUNCATE bench_raw_volumes")
        started = time.perf_counter()
        for rows in batches:
            await conn.copy_records_to_table("bench_raw_volumes", records=rows)
        return executemany_s, time.perf_counter() - started, meter.result()
    finally:
        await conn.close()


def _statement_figures(usage: Usage, raw_usage: Usage, thousands: int) -> list[Figure]:
    statements = usage.statements_per(thousands)
    if statements is None:
        return []
    return [
        Figure(
            "POST /v1/order-volumes statements per 1,000 new lines",
            statements,
            "stmts",
            baseline=raw_usage.statements_per(thousands),
            baseline_name="executemany",
            note="an executemany counts one per row",
        )
    ]


def _cost_figures(what: str, usage: Usage, thousands: int) -> list[Figure]:
    """CPU (service + database) and statements per 1,000 lines of the corrections or the identical re-sends."""
    service, database = usage.cpu_ms_per("fulfillment", thousands), usage.cpu_ms_per("postgres", thousands)
    figures = [
        Figure(
            f"POST /v1/order-volumes CPU per 1,000 lines, {what}",
            round(service + database, 1),
            "ms",
            note=f"service {service:.0f} ms + database {database:.0f} ms",
        )
    ]
    statements = usage.statements_per(thousands)
    if statements is not None:
        figures.append(Figure(f"POST /v1/order-volumes statements per 1,000 lines, {what}", statements, "stmts"))
    return figures


async def run(harness: Harness, quick: bool) -> MeasureResult:
    count = 3 if quick else 30
    corrections = 2 if quick else 10
    env = await harness.environment()
    fulfillment = await harness.service("fulfillment", env)
    bodies = [batch(i) for i in range(count)]
    corrected = [batch(i, bump=3) for i in range(count - corrections, count)]
    with harness.running(fulfillment):
        async with httpx.AsyncClient(base_url=fulfillment.url, headers=env.headers("warehouse"), timeout=300) as client:
            # One request at a time, each a 1,000-line body: the client is idle while the service works, so
            # httpx is not the bottleneck here (its own CPU, `bench`, is reported beside the service's).
            profiler = harness.profiler("http_bulk")
            async with harness.metered(env, {"fulfillment": fulfillment.popen.pid, "bench": os.getpid()}) as meter:
                if profiler is not None:
                    profiler.start("fulfillment", fulfillment.popen.pid, 600)
                new_s = await timed_posts(client, bodies)
                if profiler is not None:
                    await profiler.finish(stop=True)
            usage = meter.result()
            async with harness.metered(env, {"fulfillment": fulfillment.popen.pid, "bench": os.getpid()}) as meter:
                corrections_s = await timed_posts(client, corrected)
            corrections_usage = meter.result()
            async with harness.metered(env, {"fulfillment": fulfillment.popen.pid, "bench": os.getpid()}) as meter:
                resend_s = await timed_posts(client, corrected)
            resend_usage = meter.result()
    executemany_s, copy_s, raw_usage = await raw_baselines(harness, env, bodies)
    total = count * LINES
    new_rate = total / new_s
    thousands = total // 1000
    return MeasureResult(
        figures=[
            Figure(
                "POST /v1/order-volumes, new rows",
                round(new_rate),
                "lines/s",
                baseline=round(total / executemany_s),
                baseline_name="asyncpg executemany",
                goal_ratio=0.3,
                note=f"{count} x {LINES:,}-line batches",
            ),
            Figure(
                "POST /v1/order-volumes, new rows vs COPY",
                round(new_rate),
                "lines/s",
                baseline=round(total / copy_s),
                baseline_name="asyncpg COPY",
            ),
            Figure(
                "POST /v1/order-volumes, corrections",
                round(corrections * LINES / corrections_s),
                "lines/s",
                baseline=round(total / executemany_s),
                baseline_name="asyncpg executemany",
            ),
            Figure("POST /v1/order-volumes, identical re-sends", round(corrections * LINES / resend_s), "lines/s"),
            Figure(
                "POST /v1/order-volumes CPU per 1,000 new lines",
                round(usage.cpu_ms_per("fulfillment", thousands) + usage.cpu_ms_per("postgres", thousands), 1),
                "ms",
                baseline=round(
                    raw_usage.cpu_ms_per("bench", thousands) + raw_usage.cpu_ms_per("postgres", thousands), 1
                ),
                baseline_name="executemany (client + database)",
                note=f"service {usage.cpu_ms_per('fulfillment', thousands):.0f} ms + database"
                f" {usage.cpu_ms_per('postgres', thousands):.0f} ms;"
                f" client {usage.cpu_ms_per('bench', thousands):.0f} ms",
            ),
            *_statement_figures(usage, raw_usage, thousands),
            *_cost_figures("corrections", corrections_usage, corrections),
            *_cost_figures("identical re-sends", resend_usage, corrections),
        ],
        details={
            "batches": count,
            "lines_per_batch": LINES,
            "skus": SKUS,
            "seconds": {
                "new_rows": round(new_s, 3),
                "corrections": round(corrections_s, 3),
                "identical_resends": round(resend_s, 3),
                "executemany": round(executemany_s, 3),
                "copy": round(copy_s, 3),
            },
            "usage_new_rows_per_1000_lines": usage.per(thousands),
            "usage_corrections_per_1000_lines": corrections_usage.per(corrections),
            "usage_identical_resends_per_1000_lines": resend_usage.per(corrections),
            "profile": profiler.summary() if profiler is not None else None,
            "usage_executemany_per_1000_lines": raw_usage.per(thousands),
        },
    )
