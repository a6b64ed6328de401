"""End-to-end latency with an open-loop paced generator (requests leave on schedule whether or not earlier ones
answered): a critical complaint posted -> its signed webhook received by a loopback CRM, at steady rates; and a
promotion posted -> `salesops.mps.revised.v1` for its SKU observed on the broker.

Critical complaints are the request that yields exactly one alert, hence one webhook, each (a single return
raises nothing until a SKU's returns reach the surge threshold, and then updates one open alert per SKU)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from salesops.bench.harness import Environment, Harness, Process, wait_until
from salesops.bench.load import latency_summary, open_loop
from salesops.bench.model import Figure, MeasureResult
from shared.events import EventType, Topic


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
    env: Environment, returns: Process, receiver: Process, rate: float, duration_s: float
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    sent: dict[str, float] = {}

    def request(i: int) -> tuple[str, str, Any]:
        return "POST", "/v1/complaints", complaint_body(f"C-{tag}-{i:06d}", i)

    def on_sent(i: int, wall: float) -> None:
        sent[f"C-{tag}-{i:06d}"] = wall

    posts = await open_loop(
        returns.url,
        request,
        rate_per_s=rate,
        duration_s=duration_s,
        on_sent=on_sent,
        headers=env.headers("returns-desk"),
    )
    arrivals: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=receiver.url, timeout=10) as client:

        async def all_arrived() -> bool:
            nonlocal arrivals
            arrivals = (await client.get("/received")).json()
            return all(cid in arrivals for cid in sent)

        await wait_until(all_arrived, timeout_s=60, interval_s=0.5)
    latencies = [arrivals[cid] - at for cid, at in sent.items() if cid in arrivals]
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "sent": len(sent),
        "webhooks_received": len(latencies),
        "post": posts.summary(),
        "latency": latency_summary(latencies),
    }


async def promotions_to_revisions(
    env: Environment, promotion: Process, planning: Process, rate: float, duration_s: float
) -> dict[str, Any]:
    total = max(1, int(rate * duration_s))
    tag = uuid.uuid4().hex[:6]
    skus = [f"P{tag}-{i:05d}" for i in range(total)]
    arrivals: dict[str, list[float]] = {}
    last_event = time.monotonic()
    consumer = AIOKafkaConsumer(bootstrap_servers=env.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()

    async def watch() -> None:
        nonlocal last_event
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    last_event = time.monotonic()
                    if json.loads(message.value or b"{}").get("type") == EventType.MPS_REVISED.value:
                        arrivals.setdefault((message.key or b"").decode(), []).append(now)

    try:
        partitions = consumer.partitions_for_topic(Topic.PLANS.value) or set()
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = consumer.partitions_for_topic(Topic.PLANS.value) or set()
        assigned = [TopicPartition(Topic.PLANS.value, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        watcher = asyncio.create_task(watch())
        async with httpx.AsyncClient(base_url=planning.url, headers=env.headers("planner"), timeout=30) as client:
            for sku in skus:
                body = {"name": sku, "on_hand": 200, "safety_stock": 50, "baseline_weekly_demand": 300}
                (await client.put(f"/v1/items/{sku}", json=body)).raise_for_status()

        # The items' own first plans must be out of the way before the clock starts.
        async def quiet() -> bool:
            return time.monotonic() - last_event > 1.5

        await wait_until(quiet, timeout_s=60, interval_s=0.1)
        sent: dict[str, float] = {}
        starts = datetime.now(UTC).date() + timedelta(weeks=3)

        def request(i: int) -> tuple[str, str, Any]:
            return (
                "POST",
                "/v1/promotions",
                {
                    "promotion_id": f"PR-{tag}-{i:05d}",
                    "name": f"Bench campaign {i}",
                    "starts_on": starts.isoformat(),
                    "ends_on": (starts + timedelta(days=6)).isoformat(),
                    "items": [{"sku": skus[i], "uplift_pct": 40}],
                },
            )

        def on_sent(i: int, wall: float) -> None:
            sent[skus[i]] = wall

        posts = await open_loop(
            promotion.url,
            request,
            rate_per_s=rate,
            duration_s=duration_s,
            on_sent=on_sent,
            headers=env.headers("marketing"),
        )

        async def all_revised() -> bool:
            return all(any(t >= sent[s] for t in arrivals.get(s, [])) for s in sent)

        await wait_until(all_revised, timeout_s=60, interval_s=0.2)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        await consumer.stop()
    latencies = [
        min(t for t in arrivals[s] if t >= at) - at
        for s, at in sent.items()
        if any(t >= at for t in arrivals.get(s, []))
    ]
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "sent": len(sent),
        "revisions_observed": len(latencies),
        "post": posts.summary(),
        "latency": latency_summary(latencies),
    }


async def run(harness: Harness, quick: bool) -> MeasureResult:
    rates = [20.0] if quick else [100.0, 500.0]
    duration_s = 2.0 if quick else 10.0
    promotion_rate = 5.0 if quick else 20.0
    env = await harness.environment()
    receiver = await harness.uvicorn_app("webhook-receiver", "salesops.bench.receiver:app", env.service_env())
    returns = await harness.service("returns", env, SALESOPS_WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    promotion = await harness.service("promotion", env)
    planning = await harness.service("planning", env)
    webhook_runs: list[dict[str, Any]] = []
    with harness.running(receiver, returns, promotion, planning):
        async with httpx.AsyncClient(base_url=returns.url, headers=env.headers("crm"), timeout=10) as client:
            response = await client.post("/v1/webhooks", json={"url": f"{receiver.url}/hook"})
            response.raise_for_status()
        # A short warm-up run so connection pools and the dispatcher are awake.
        await complaints_to_webhooks(env, returns, receiver, 10.0, 1.0)
        for rate in rates:
            webhook_runs.append(await complaints_to_webhooks(env, returns, receiver, rate, duration_s))
        plans = await promotions_to_revisions(env, promotion, planning, promotion_rate, duration_s)
    figures: list[Figure] = []
    for run_ in webhook_runs:
        rate = run_["rate_per_s"]
        figures.append(
            Figure(
                f"complaint -> webhook p99 @ {rate:g}/s",
                run_["latency"]["p99_ms"],
                "ms",
                goal_max=250.0 if rate == 100.0 else None,
                note=f"p50 {run_['latency']['p50_ms']} ms, p95 {run_['latency']['p95_ms']} ms,"
                f" {run_['webhooks_received']}/{run_['sent']} received",
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
    return MeasureResult(figures=figures, details={"complaint_to_webhook": webhook_runs, "promotion_to_mps": plans})
