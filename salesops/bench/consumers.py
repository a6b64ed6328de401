"""Consumers: `order-volume.reported` events/s through the planning service's real consumer (a process: inbox
claim, history update, re-plan of each touched SKU once per fetched batch, revision and drivers) against a raw
aiokafka consumer doing one insert per message, on the same topic, broker and database."""

from __future__ import annotations

import os
import time

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from salesops.bench.accounting import Usage
from salesops.bench.events import order_volume_event
from salesops.bench.harness import Harness, wait_until
from salesops.bench.model import Figure, MeasureResult
from shared.events import CLOUDEVENTS_CONTENT_TYPE, Topic

SKUS = 50


async def produce_events(bootstrap: str, events: list[tuple[str, bytes]], topic: str = Topic.ORDER_VOLUMES) -> None:
    """Send (key, CloudEvent JSON) pairs to a topic and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=2)
    await producer.start()
    try:
        headers = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
        for key, value in events:
            await producer.send(topic, value=value, key=key.encode(), headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def _raw_consume(bootstrap: str, dsn: str, expected: int, timeout_s: float) -> float:
    """Seconds from the first message to the last one inserted, one autocommitted insert per message and the
    offsets committed after each fetched batch (the same at-least-once shape as the service loop)."""
    conn = await asyncpg.connect(dsn)
    consumer = AIOKafkaConsumer(
        Topic.ORDER_VOLUMES.value,
        bootstrap_servers=bootstrap,
        group_id="bench-raw-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=200,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        await conn.execute(
            "CREATE TABLE bench_raw_inbox (topic text, part int, offs bigint, key text, body jsonb,"
            " PRIMARY KEY (topic, part, offs))"
        )
        await consumer.start()
        done = 0
        first: float | None = None
        deadline = time.monotonic() + timeout_s
        while done < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                first = first or time.perf_counter()
                for message in messages:
                    await conn.execute(
                        "INSERT INTO bench_raw_inbox VALUES ($1, $2, $3, $4, $5)",
                        message.topic,
                        message.partition,
                        message.offset,
                        (message.key or b"").decode(),
                        (message.value or b"{}").decode(),
                    )
                    done += 1
                await consumer.commit({tp: messages[-1].offset + 1})
        if done < expected or first is None:
            raise RuntimeError(f"the raw consumer processed {done} of {expected} messages")
        return time.perf_counter() - first
    finally:
        await consumer.stop()
        await conn.close()


def _cost_figures(usage: Usage, raw_usage: Usage, count: int) -> list[Figure]:
    figures = [
        Figure(
            "planning consumer CPU per event",
            round(usage.cpu_ms_per("planning", count) + usage.cpu_ms_per("postgres", count), 3),
            "ms",
            baseline=round(raw_usage.cpu_ms_per("bench", count + 1) + raw_usage.cpu_ms_per("postgres", count + 1), 3),
            baseline_name="raw consumer (client + database)",
            note=f"service {usage.cpu_ms_per('planning', count):.2f} ms + database"
            f" {usage.cpu_ms_per('postgres', count):.2f} ms",
        )
    ]
    statements = usage.statements_per(count)
    if statements is not None:
        figures.append(
            Figure(
                "planning consumer statements per event",
                statements,
                "stmts",
                baseline=raw_usage.statements_per(count + 1),
                baseline_name="raw consumer",
            )
        )
    return figures


async def run(harness: Harness, quick: bool) -> MeasureResult:
    count = 100 if quick else 2_000
    env = await harness.environment()
    planning = await harness.service("planning", env)
    events = [order_volume_event(i, SKUS) for i in range(count + 1)]
    with harness.running(planning):
        async with httpx.AsyncClient(base_url=planning.url, headers=env.headers("planner"), timeout=30) as client:
            for n in range(SKUS):
                response = await client.put(
                    f"/v1/items/SKU-{n:04d}",
                    json={"name": f"Item {n}", "on_hand": 500, "safety_stock": 100, "baseline_weekly_demand": 700},
                )
                response.raise_for_status()
        db = await asyncpg.connect(env.dsn)
        try:

            async def processed(n: int) -> bool:
                return int(await db.fetchval("SELECT count(*) FROM planning.inbox")) >= n

            # One event first, so the consumer group has joined and the loop is warm before the clock starts.
            await produce_events(env.bootstrap_servers, events[:1])
            if not await wait_until(lambda: processed(1), timeout_s=60):
                raise RuntimeError("planning never processed the warm-up event")
            profiler = harness.profiler("consumers")
            async with harness.metered(env, {"planning": planning.popen.pid}) as meter:
                if profiler is not None:
                    profiler.start("planning", planning.popen.pid, 600)
                started = time.perf_counter()
                await produce_events(env.bootstrap_servers, events[1:])
                if not await wait_until(lambda: processed(count + 1), timeout_s=600, interval_s=0.02):
                    raise RuntimeError("planning did not process every event in time")
                planning_s = time.perf_counter() - started
                if profiler is not None:
                    await profiler.finish(stop=True)
            revisions = int(await db.fetchval("SELECT count(*) FROM planning.drivers"))
        finally:
            await db.close()
    async with harness.metered(env, {"bench": os.getpid()}) as raw_meter:
        raw_s = await _raw_consume(env.bootstrap_servers, env.dsn, count + 1, timeout_s=300)
    usage, raw_usage = meter.result(), raw_meter.result()
    return MeasureResult(
        figures=[
            Figure(
                "planning consumer (order-volume events)",
                round(count / planning_s, 1),
                "events/s",
                baseline=round((count + 1) / raw_s, 1),
                baseline_name="raw aiokafka consume + one insert",
                goal_ratio=0.5,
                note=f"{count:,} events over {SKUS} SKUs, re-planned once per SKU per fetched batch",
            ),
            *_cost_figures(usage, raw_usage, count),
        ],
        details={
            "events": count,
            "skus": SKUS,
            "planning_s": round(planning_s, 3),
            "raw_s": round(raw_s, 3),
            "drivers_recorded": revisions,
            "usage_per_event": usage.per(count),
            "profile": profiler.summary() if profiler is not None else None,
            "raw_usage_per_event": raw_usage.per(count + 1),
        },
    )
