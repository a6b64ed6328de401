"""HTTP ingest, small requests: `POST /v1/returns` (validation, auth, idempotency, outbox write) on the returns
service against a bare FastAPI endpoint doing one asyncpg insert, both under uvicorn, both driven by wrk with
the same connections and duration. Beside each rate: the server's CPU per request, the database server's CPU
per request, statements per request and the backends seen waiting on locks."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from salesops.bench import wrk
from salesops.bench.accounting import Usage
from salesops.bench.harness import Environment, Harness, Process, wait_until
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.profile import Profiler
from salesops.bench.raw_app import RAW_TABLE_DDL

REASONS = ("no_longer_needed", "wrong_item", "late_delivery", "defective", "other")
CONDITIONS = ("resellable", "refurbish", "scrap")
# Distinct bodies the wrk script cycles through (SKUs, accounts, reasons vary as in the body below).
VARIANTS = 600


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


def return_templates() -> list[str]:
    """wrk body templates: every request gets its own return id in place of the token."""
    return [json.dumps({**return_body(i, ""), "return_id": f"R-{wrk.ID_TOKEN}"}) for i in range(VARIANTS)]


async def _rows(env: Environment, table: str) -> int:
    conn = await asyncpg.connect(env.dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def _outbox_drained(env: Environment) -> bool:
    conn = await asyncpg.connect(env.dsn)
    try:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM returns.outbox WHERE published_at IS NULL)")
    finally:
        await conn.close()


async def _side(
    harness: Harness,
    env: Environment,
    process: Process,
    path: str,
    headers: dict[str, str],
    table: str,
    *,
    connections: int,
    seconds: float,
    profiler: Profiler | None = None,
) -> tuple[wrk.WrkResult, Usage, int]:
    """One metered wrk run; the window closes once the service's relay has published what the run wrote, so
    its CPU per request includes the relay. Returns wrk's result, the usage and the rows created."""
    before = await _rows(env, table)
    async with harness.metered(env, {process.label: process.popen.pid}) as meter:
        if profiler is not None:
            profiler.start(process.label, process.popen.pid, seconds)
        result = await wrk.run(
            process.url,
            method="POST",
            path=path,
            bodies=return_templates(),
            headers=headers,
            prefix=uuid.uuid4().hex[:8],
            connections=connections,
            seconds=seconds,
            workdir=harness.workdir,
        )
        if table.startswith("returns."):
            await wait_until(lambda: _outbox_drained(env), timeout_s=60, interval_s=0.05)
    if profiler is not None:
        await profiler.finish()
    return result, meter.result(), await _rows(env, table) - before


def _round(result: wrk.WrkResult, usage: Usage, created: int, label: str) -> dict[str, Any]:
    return {**result.summary(), "rows_created": created, "usage": usage.per(created), "label": label}


async def run(harness: Harness, quick: bool) -> MeasureResult:
    connections = 8 if quick else 32
    seconds = 1.0 if quick else 10.0
    rounds = 1 if quick else 2
    env = await harness.environment()
    raw_env = await harness.sibling(env)
    conn = await asyncpg.connect(raw_env.dsn)
    try:
        await conn.execute(RAW_TABLE_DDL)
    finally:
        await conn.close()
    # Both servers start side by side: neither is measured before both are ready, and a start that fails cancels
    # the other's wait.
    async with asyncio.TaskGroup() as starting:
        returns_start = starting.create_task(harness.service("returns", env))
        raw_start = starting.create_task(
            harness.uvicorn_app(
                "raw-http", "salesops.bench.raw_app:app", {**raw_env.service_env(), "BENCH_RAW_DSN": raw_env.dsn}
            )
        )
    returns, raw = returns_start.result(), raw_start.result()
    auth = env.headers("returns-desk")
    system_runs: list[tuple[wrk.WrkResult, Usage, int]] = []
    raw_runs: list[tuple[wrk.WrkResult, Usage, int]] = []
    profiler = harness.profiler("http_small")
    with harness.running(returns, raw):

        async def system(secs: float, profile: bool = False) -> tuple[wrk.WrkResult, Usage, int]:
            return await _side(
                harness,
                env,
                returns,
                "/v1/returns",
                auth,
                "returns.returns",
                connections=connections,
                seconds=secs,
                profiler=profiler if profile else None,
            )

        async def baseline(secs: float) -> tuple[wrk.WrkResult, Usage, int]:
            return await _side(
                harness, raw_env, raw, "/ingest", {}, "bench_raw_returns", connections=connections, seconds=secs
            )

        # Warm both up (connection pools, first-request imports), then alternate so background load on the
        # machine hits both sides alike; the best round of each counts. A quick run (one short round a side, a
        # smoke test) skips the warm-up.
        if not quick:
            await system(1.0)
            await baseline(1.0)
        for index in range(rounds):
            raw_runs.append(await baseline(seconds))
            system_runs.append(await system(seconds, profile=index == rounds - 1))
    best_system = max(system_runs, key=lambda r: r[0].rate)
    best_raw = max(raw_runs, key=lambda r: r[0].rate)
    s_result, s_usage, s_created = best_system
    r_result, r_usage, r_created = best_raw
    # Costs are divided by the rows written: wrk stops counting at the deadline while the requests then in
    # flight (at most one per connection) are still served and cost CPU.
    s_count, r_count = s_created, r_created
    for label, (result, _, created) in (("POST /v1/returns", best_system), ("bare endpoint", best_raw)):
        if not result.succeeded <= created <= result.succeeded + connections:
            raise RuntimeError(
                f"{label}: {result.succeeded} requests answered but {created} rows created: ids were not unique"
            )
    figures = [
        Figure(
            "POST /v1/returns",
            round(s_result.rate, 1),
            "req/s",
            baseline=round(r_result.rate, 1),
            baseline_name="FastAPI + one asyncpg insert",
            goal_ratio=0.3,
            note=f"wrk, {connections} connections, {seconds:g} s; {s_created:,} returns created",
        ),
        Figure(
            "POST /v1/returns service CPU per request",
            s_usage.cpu_ms_per("returns", s_count),
            "ms",
            baseline=r_usage.cpu_ms_per("raw-http", r_count),
            baseline_name="bare endpoint",
            note="incl. the relay publishing its events",
        ),
        Figure(
            "POST /v1/returns database CPU per request",
            s_usage.cpu_ms_per("postgres", s_count),
            "ms",
            baseline=r_usage.cpu_ms_per("postgres", r_count),
            baseline_name="bare endpoint",
        ),
    ]
    statements, raw_statements = s_usage.statements_per(s_count), r_usage.statements_per(r_count)
    if statements is not None and s_usage.statements is not None:
        figures.append(
            Figure(
                "POST /v1/returns statements per request",
                statements,
                "stmts",
                baseline=raw_statements,
                baseline_name="bare endpoint",
                note=f"+ {s_usage.statements.transaction_control / max(1, s_count):.2f} BEGIN/COMMIT",
            )
        )
    figures.append(
        Figure(
            "POST /v1/returns latency p99",
            s_result.latency_ms.get("p99", 0.0),
            "ms",
            note=f"closed loop; lock waits: {s_usage.locks.brief()}",
        )
    )
    return MeasureResult(
        figures=figures,
        details={
            "generator": "wrk",
            "connections": connections,
            "seconds": seconds,
            "system_rounds": [_round(*r, "POST /v1/returns") for r in system_runs],
            "baseline_rounds": [_round(*r, "bare endpoint") for r in raw_runs],
            "profile": profiler.summary() if profiler is not None else None,
        },
    )
