"""End-to-end latency with an open-loop paced generator (requests leave on schedule whether or not earlier ones
answered): a critical complaint posted -> its signed webhook received by a loopback CRM, at several steady
rates; and a promotion posted -> `salesops.mps.revised.v1` for its SKU observed on the broker
(`plan_latency.py`).

Critical complaints are the request that yields exactly one alert, hence one webhook, each (a single return
raises nothing until a SKU's returns reach the surge threshold, and then updates one open alert per SKU).
Beside each rate: the returns service's CPU per complaint (request, relay and webhook dispatch all run in
that process), the database's, statements per complaint, lock waits, the sender's own lag behind its
schedule and, as the floor, the same sender's p99 against the bare endpoint at the same rate. From the service's
own `/metrics` around each run: its waits for a database connection and its event loop's lag. And what the
service costs idle, with no complaint coming in (its background tasks and pollers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from salesops.bench.harness import Environment, Harness, Process, wait_until
from salesops.bench.http_ingest import return_body
from salesops.bench.load import latency_summary, open_loop
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.plan_latency import promotions_to_revisions
from salesops.bench.raw_app import RAW_TABLE_DDL
from salesops.bench.scrape import brief, process_view, scrape

GOAL_RATE = 100.0
GOAL_P99_MS = 100.0
GOAL_CPU_MS = 4.0
# A run that serves less than this share of the offered rate has fallen behind: the service is saturated.
SATURATED = 0.8


def complaint_body(complaint_id: str, index: int) -> dict[str, Any]:
    return {
        "complaint_id": complaint_id,
        "account_id": f"ACC-{index % 50:03d}",
        "sku": f"SKU-{index % 200:04d}",
        "category": "quality",
        "severity": "critical",
        "description": "Unit arrived broken; customer threatens to cancel the contract",
        "received_on": datetime.now(UTC).date().isoformat(),
    }


async def complaints_to_webhooks(
    harness: Harness, env: Environment, returns: Process, receiver: Process, rate: float, duration_s: float
) -> dict[str, Any]:
    """One metered open-loop run; the window closes when every webhook arrived (or after 60 s more)."""
    tag = uuid.uuid4().hex[:8]
    sent: dict[str, float] = {}

    def request(i: int) -> tuple[str, str, Any]:
        return "POST", "/v1/complaints", complaint_body(f"C-{tag}-{i:06d}", i)

    def on_sent(i: int, wall: float) -> None:
        sent[f"C-{tag}-{i:06d}"] = wall

    arrivals: dict[str, float] = {}
    profiler = harness.profiler("latency") if rate == GOAL_RATE else None
    scraped = await scrape(returns.url)
    async with harness.metered(env, {"returns": returns.popen.pid}) as meter:
        if profiler is not None:
            profiler.start(f"returns-{rate:g}", returns.popen.pid, duration_s)
        posts = await open_loop(
            returns.url,
            request,
            rate_per_s=rate,
            duration_s=duration_s,
            on_sent=on_sent,
            headers=env.headers("returns-desk"),
        )
        async with httpx.AsyncClient(base_url=receiver.url, timeout=10) as client:

            async def all_arrived() -> bool:
                nonlocal arrivals
                arrivals = (await client.get("/received")).json()
                return all(cid in arrivals for cid in sent)

            await wait_until(all_arrived, timeout_s=60, interval_s=0.1)
    if profiler is not None:
        await profiler.finish()
    view = process_view(scraped, await scrape(returns.url))
    usage = meter.result()
    latencies = [arrivals[cid] - at for cid, at in sent.items() if cid in arrivals]
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "sent": len(sent),
        "webhooks_received": len(latencies),
        "post": posts.summary(),
        "latency": latency_summary(latencies),
        "usage": usage.per(posts.completed),
        "process": view,
        "profile": profiler.summary() if profiler is not None else None,
    }


async def idle(harness: Harness, env: Environment, returns: Process, seconds: float) -> dict[str, Any]:
    """What the service costs with nothing coming in: CPU share and statements per second of its background
    tasks (the relay, the dispatcher, pollers and samplers)."""
    scraped = await scrape(returns.url)
    async with harness.metered(env, {"returns": returns.popen.pid}) as meter:
        await asyncio.sleep(seconds)
    usage = meter.result()
    view = process_view(scraped, await scrape(returns.url))
    per_second = usage.per(max(1, round(usage.seconds)))
    return {
        "seconds": round(usage.seconds, 2),
        "cpu_utilisation": per_second["cpu_utilisation"],
        "statements_per_s": per_second["statements_per_unit"],
        "process": view,
    }


async def floor(env: Environment, raw: Process, rate: float, duration_s: float) -> dict[str, Any]:
    """The same open-loop sender against the bare endpoint at the same rate: what sender, HTTP and one
    insert cost on this machine now, the floor under the complaint figures."""
    tag = uuid.uuid4().hex[:8]
    posts = await open_loop(
        raw.url,
        lambda i: ("POST", "/ingest", return_body(i, tag)),
        rate_per_s=rate,
        duration_s=duration_s,
        on_sent=lambda i, wall: None,
    )
    return {"rate_per_s": rate, "post": posts.summary(), "latency": latency_summary(posts.latencies_s)}


def _note(run_: dict[str, Any], floor_: dict[str, Any]) -> str:
    lag = run_["post"].get("sender_lag_ms", {})
    held = run_["post"].get("held_back_by_in_flight_cap", 0)
    return (
        f"p50 {run_['latency']['p50_ms']} ms; served {run_['post']['per_s']}/s,"
        f" {run_['webhooks_received']}/{run_['sent']} webhooks; sender lag p99 {lag.get('p99', 0)} ms"
        + (f", {held} held back (in-flight cap)" if held else "")
        + f"; floor (bare endpoint) p99 {floor_['latency']['p99_ms']} ms"
        + (f"; {seen}" if (seen := brief(run_["process"], run_["post"].get("completed", 0))) else "")
    )


def _locks_note(locks: dict[str, Any]) -> str:
    waits = [f"{k} mean {v['mean']} max {v['max']}" for k, v in list(locks["waiting_by_event"].items())[:3]]
    return f"{', '.join(waits) or 'no lock waits seen'}; active backends mean {locks['active_backends_mean']}"


async def run(harness: Harness, quick: bool) -> MeasureResult:
    rates = [5.0, 20.0] if quick else [5.0, 20.0, 50.0, 100.0, 200.0]
    duration_s = 2.0 if quick else 10.0
    promotion_rate = 5.0 if quick else 20.0
    env = await harness.environment()
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(RAW_TABLE_DDL)
    finally:
        await conn.close()
    receiver = await harness.uvicorn_app("webhook-receiver", "salesops.bench.receiver:app", env.service_env())
    raw = await harness.uvicorn_app(
        "raw-http", "salesops.bench.raw_app:app", {**env.service_env(), "BENCH_RAW_DSN": env.dsn}
    )
    returns = await harness.service("returns", env, SALESOPS_WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    webhook_runs: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    saturated_at: float | None = None
    skipped: list[float] = []
    with harness.running(receiver, raw, returns):
        async with httpx.AsyncClient(base_url=returns.url, headers=env.headers("crm"), timeout=10) as client:
            response = await client.post("/v1/webhooks", json={"url": f"{receiver.url}/hook"})
            response.raise_for_status()
        # A short warm-up run so connection pools and the dispatcher are awake.
        await complaints_to_webhooks(harness, env, returns, receiver, 10.0, 1.0)
        await floor(env, raw, 10.0, 1.0)
        idle_ = await idle(harness, env, returns, 2.0 if quick else 10.0)
        for rate in rates:
            if saturated_at is not None and rate > GOAL_RATE:
                # Past the goal's rate, a service already behind only grows its backlog: minutes, no news.
                skipped.append(rate)
                continue
            # At least 100 complaints per rate, so a p99 is more than the slowest of a handful.
            seconds = max(duration_s, 100 / rate) if not quick else duration_s
            floors.append(await floor(env, raw, rate, seconds))
            run_ = await complaints_to_webhooks(harness, env, returns, receiver, rate, seconds)
            webhook_runs.append(run_)
            if run_["webhooks_received"] < run_["sent"] or run_["post"]["per_s"] < SATURATED * rate:
                saturated_at = saturated_at or rate
    promotion = await harness.service("promotion", env)
    planning = await harness.service("planning", env)
    with harness.running(promotion, planning):
        plans = await promotions_to_revisions(env, promotion, planning, promotion_rate, duration_s)
    figures: list[Figure] = []
    for run_, floor_ in zip(webhook_runs, floors, strict=True):
        rate = run_["rate_per_s"]
        figures.append(
            Figure(
                f"complaint -> webhook p99 @ {rate:g}/s",
                run_["latency"]["p99_ms"],
                "ms",
                goal_max=GOAL_P99_MS if rate == GOAL_RATE else None,
                note=_note(run_, floor_),
            )
        )
    statements_idle = idle_["statements_per_s"] or {}
    figures.append(
        Figure(
            "complaint service idle CPU",
            idle_["cpu_utilisation"].get("returns", 0.0),
            "cores",
            note=f"no complaints for {idle_['seconds']} s: background tasks; database"
            f" {idle_['cpu_utilisation'].get('postgres', 0.0)} cores; {statements_idle.get('statements', '?')}"
            f" statements + {statements_idle.get('transaction_control', '?')} BEGIN/COMMIT per s",
        )
    )
    headline = next((r for r in webhook_runs if r["rate_per_s"] == GOAL_RATE), webhook_runs[-1])
    usage = headline["usage"]
    cpu = usage["cpu_ms_per_unit"]
    statements = usage["statements_per_unit"] or {}
    figures.append(
        Figure(
            f"critical complaint service CPU @ {headline['rate_per_s']:g}/s",
            cpu.get("returns", 0.0),
            "ms",
            goal_max=GOAL_CPU_MS,
            note=(
                f"saturated at {saturated_at:g}/s, skipped {', '.join(f'{r:g}' for r in skipped)}/s; "
                if skipped
                else ""
            )
            + f"request + relay + webhook dispatch; database {cpu.get('postgres', 0.0)} ms;"
            f" {statements.get('statements', '?')} statements + {statements.get('transaction_control', '?')}"
            f" BEGIN/COMMIT",
        )
    )
    figures.append(
        Figure(
            f"lock waits @ {headline['rate_per_s']:g}/s (mean waiting backends)",
            usage["lock_waits"]["waiting_backends_mean"],
            "backends",
            note=_locks_note(usage["lock_waits"]),
        )
    )
    figures.append(
        Figure(
            f"promotion -> mps.revised p99 @ {promotion_rate:g}/s",
            plans["latency"]["p99_ms"],
            "ms",
            note=f"p50 {plans['latency']['p50_ms']} ms, p95 {plans['latency']['p95_ms']} ms,"
            f" {plans['revisions_observed']}/{plans['sent']} observed",
        )
    )
    return MeasureResult(
        figures=figures,
        details={
            "complaint_to_webhook": webhook_runs,
            "floor_bare_endpoint": floors,
            "idle": idle_,
            "saturated_at_per_s": saturated_at,
            "skipped_rates": skipped,
            "promotion_to_mps": plans,
        },
    )
