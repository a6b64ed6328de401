"""The relay's record batches against the real broker: every row lands on the partition a plain `send` of its key
would choose, each key's events arrive in id order across record batches and relay batches, and the producer
measures a record at the same byte as a `send` (one byte over the limit is refused, the rest of the batch goes
on)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import MessageSizeTooLargeError, UnknownTopicOrPartitionError
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.returns_service import tables
from shared.events import Topic
from shared.kafka import Producer, record_size
from shared.metrics import Metrics
from shared.outbox import HEADERS
from shared.relay import OutboxRelay
from shared.settings import Settings
from tests.support import read_topic_to_end

pytestmark = pytest.mark.integration

TOPIC = Topic.RETURNS.value
KEYS = [f"SKU-{n:03d}" for n in range(7)]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


def payload(n: int) -> bytes:
    # Every 50th row is larger than a record batch (16 KiB), so some batches hold a single record.
    padding = "x" * (20_000 if n % 50 == 0 else n % 300)
    return json.dumps({"n": n, "padding": padding}).encode()


async def test_rows_land_where_a_send_of_their_key_would_and_each_key_keeps_its_order(
    settings: Settings, broker: Any, engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    rows = 1_000
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.outbox),
            [
                {"event_id": f"e-{n}", "event_type": "t", "topic": TOPIC, "key": KEYS[n % 7], "payload": payload(n)}
                for n in range(rows)
            ],
        )
    producer = Producer(settings, client_id="test-relay")
    relay = OutboxRelay(
        engine=engine,
        table=tables.outbox,
        producer=producer,
        name="returns",
        metrics=Metrics(),
        batch_size=128,
        retention=timedelta(days=7),
    )
    try:
        assert await relay.publish_pending() == rows
        partitions = list(await (await producer.ensure_started()).partitions_for(TOPIC))
    finally:
        await producer.stop()
    assert await db.fetchval("select count(*) from returns.outbox where published_at is null") == 0

    messages = await read_topic_to_end(broker.bootstrap_servers, TOPIC)
    assert len(messages) == rows
    partitioner = DefaultPartitioner()
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert message.partition == partitioner(message.key, partitions, partitions)
        assert dict(message.headers) == dict(HEADERS)
        by_key[message.key].append(json.loads(message.value)["n"])
    assert len({partitioner(k.encode(), partitions, partitions) for k in KEYS}) > 1, "the keys span partitions"
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers) == [n for n in range(rows) if KEYS[n % 7].encode() == key]


async def test_a_record_one_byte_over_the_limit_is_refused_and_the_others_go_on(settings: Settings) -> None:
    key = b"SKU-LIMIT"
    fits = b"y" * 5_000
    settings.kafka_max_request_bytes = record_size(key, fits, HEADERS)
    producer = Producer(settings, client_id="test-limit")
    try:
        handover = await producer.send_batches(
            [(TOPIC, key, fits), (TOPIC, key, fits + b"y"), (TOPIC, b"SKU-OTHER", b"{}")], HEADERS
        )
        assert list(handover.failed) == [1]
        assert isinstance(handover.failed[1], MessageSizeTooLargeError)
        assert handover.error is None
        assert sorted(p for _, positions in handover.batches for p in positions) == [0, 2]
        await asyncio.gather(*(future for future, _ in handover.batches))
    finally:
        await producer.stop()


async def test_a_topic_the_broker_does_not_know_stops_the_records_after_it_not_those_before(
    settings: Settings,
) -> None:
    settings.kafka_request_timeout_ms = 1000
    producer = Producer(settings, client_id="test-unknown-topic")
    try:
        handover = await producer.send_batches(
            [(TOPIC, b"SKU-1", b"{}"), ("salesops.not a valid topic!", b"SKU-1", b"{}"), (TOPIC, b"SKU-2", b"{}")],
            HEADERS,
        )
        assert isinstance(handover.error, UnknownTopicOrPartitionError)
        assert list(handover.failed) == [1] and handover.failed[1] is handover.error
        assert [positions for _, positions in handover.batches] == [[0]]
        await asyncio.gather(*(future for future, _ in handover.batches))
    finally:
        await producer.stop()
