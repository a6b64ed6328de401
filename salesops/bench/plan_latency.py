"""End-to-end latency of the planning path: a promotion posted -> `salesops.mps.revised.v1` for its SKU observed
on the broker, with the open-loop paced generator (requests leave on schedule whether or not earlier ones
answered)."""

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

from salesops.bench.harness import Environment, Process, wait_until
from salesops.bench.load import latency_summary, open_loop
from shared.events import EventType, Topic


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
