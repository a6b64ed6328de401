"""Outbox relay: events/s from outbox rows to the broker (`OutboxRelay.publish_pending`, as the service's
relay runs it: each batch selected, marked and sent while the acknowledgements of the one before are awaited)
against raw aiokafka `send` of the same payloads with the same producer settings, both from this process
against the same broker."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, insert, text

from salesops.bench.accounting import Usage
from salesops.bench.events import order_volume_event
from salesops.bench.harness import Harness
from salesops.bench.model import Figure, MeasureResult
from shared.db import create_engine
from shared.events import CLOUDEVENTS_CONTENT_TYPE, Topic
from shared.kafka import Producer
from shared.observability import Metrics
from shared.outbox import outbox_table
from shared.relay import OutboxRelay
from shared.settings import Settings

SKUS = 500


def _cost_figures(usage: Usage, raw_usage: Usage, count: int) -> list[Figure]:
    """Relay and raw producer both run in this process: `bench` is their CPU, `postgres` the database's."""
    figures = [
        Figure(
            "outbox relay CPU per event",
            round(usage.cpu_ms_per("bench", count) + usage.cpu_ms_per("postgres", count), 3),
            "ms",
            baseline=round(raw_usage.cpu_ms_per("bench", count) + raw_usage.cpu_ms_per("postgres", count), 3),
            baseline_name="raw aiokafka send",
            note=f"relay {usage.cpu_ms_per('bench', count):.3f} ms"
            f" + database {usage.cpu_ms_per('postgres', count):.3f} ms",
        )
    ]
    statements = usage.statements_per(count)
    if statements is not None:
        figures.append(Figure("outbox relay statements per event", statements, "stmts"))
    return figures


async def run(harness: Harness, quick: bool) -> MeasureResult:
    count = 2_000 if quick else 20_000
    env = await harness.environment()
    settings = Settings(
        database_url=env.database_url, kafka_bootstrap_servers=env.bootstrap_servers, kafka_enable_idempotence=False
    )
    payloads = [order_volume_event(i, SKUS) for i in range(count)]
    topic = Topic.ORDER_VOLUMES.value
    headers = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]

    # Raw: the same producer configuration the services use, every payload sent, then every ack awaited.
    producer = AIOKafkaProducer(
        bootstrap_servers=env.bootstrap_servers, acks="all", enable_idempotence=False, linger_ms=2
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=payloads[0][1], key=payloads[0][0].encode())  # connect, metadata
        async with harness.metered(env, {"bench": os.getpid()}) as raw_meter:
            started = time.perf_counter()
            futures = [await producer.send(topic, value=v, key=k.encode(), headers=headers) for k, v in payloads]
            await asyncio.gather(*futures)
            raw_s = time.perf_counter() - started
    finally:
        await producer.stop()

    metadata = MetaData(schema="bench")
    table = outbox_table(metadata)
    engine = create_engine(settings)
    relay_producer = Producer(settings, client_id="bench-relay")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench"))
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                insert(table),
                [
                    {"event_id": f"e-{i}", "event_type": "bench", "topic": topic, "key": k, "payload": v}
                    for i, (k, v) in enumerate(payloads)
                ],
            )
        relay = OutboxRelay(
            engine=engine,
            table=table,
            producer=relay_producer,
            name="bench",
            metrics=Metrics(),
            batch_size=settings.relay_batch_size,
            retention=timedelta(days=7),
        )
        await relay_producer.send_and_wait(topic, value=payloads[0][1], key=payloads[0][0].encode())
        profiler = harness.profiler("relay")
        async with harness.metered(env, {"bench": os.getpid()}) as meter:
            if profiler is not None:
                profiler.start("bench", os.getpid(), 600)
            started = time.perf_counter()
            published = 0
            while batch := await relay.publish_pending():
                published += batch
            relay_s = time.perf_counter() - started
            if profiler is not None:
                await profiler.finish(stop=True)
        pending = await relay.pending_count()
    finally:
        await relay_producer.stop()
        await engine.dispose()
    if published != count or pending:
        raise RuntimeError(f"the relay published {published} of {count} rows ({pending} pending)")
    return MeasureResult(
        figures=[
            Figure(
                "outbox relay",
                round(count / relay_s),
                "events/s",
                baseline=round(count / raw_s),
                baseline_name="raw aiokafka send",
                goal_ratio=0.6,
                note=f"{count:,} events, batch {settings.relay_batch_size}",
            ),
            *_cost_figures(meter.result(), raw_meter.result(), count),
        ],
        details={
            "events": count,
            "payload_bytes": sum(len(v) for _, v in payloads) // count,
            "relay_batch_size": settings.relay_batch_size,
            "relay_s": round(relay_s, 3),
            "raw_s": round(raw_s, 3),
            "usage_per_event": meter.result().per(count),
            "profile": profiler.summary() if profiler is not None else None,
            "raw_usage_per_event": raw_meter.result().per(count),
        },
    )
