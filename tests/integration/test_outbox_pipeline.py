"""The outbox relay's overlapping batches against the real PostgreSQL, with a producer whose acknowledgements the
test gives: the next batch is sent before the one before it is acknowledged, every row goes to the producer in
id order (so each key's events keep their order), no row is marked published before its acknowledgement, and a
failure stops further batches while the ones in flight settle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest
from aiokafka.errors import NotLeaderForPartitionError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.returns_service import tables
from shared.kafka import Handover, Producer
from shared.metrics import Metrics
from shared.relay import OutboxRelay
from tests.support import eventually

BATCH = 10


class HeldProducer:
    """Takes sends in order and acknowledges them only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, asyncio.Future[Any]]] = []
        self.handovers = 0  # one per batch claimed

    async def ensure_started(self) -> None:
        return None

    async def send_batches(
        self, records: Sequence[tuple[str, bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> Handover:
        """Every record a batch of its own, so that the test acknowledges (or fails) records one by one."""
        self.handovers += 1
        handover = Handover()
        for position, (_topic, _key, value) in enumerate(records):
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.sent.append((value, future))
            handover.batches.append((future, [position]))
        return handover

    def ack(self, start: int, end: int, *, failing: int | None = None) -> None:
        for n, (_, future) in enumerate(self.sent[start:end], start):
            if future.done():
                continue
            if n == failing:
                future.set_exception(NotLeaderForPartitionError())
            else:
                future.set_result(None)

    def numbers(self) -> list[int]:
        return [int(value) for value, _ in self.sent]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def relay_with(engine: AsyncEngine, producer: HeldProducer, rows: int, *, gather_s: float = 0.0) -> OutboxRelay:
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.outbox),
            [
                {"event_id": f"e-{n}", "event_type": "t", "topic": "t", "key": f"k-{n % 3}", "payload": str(n).encode()}
                for n in range(rows)
            ],
        )
    return OutboxRelay(
        engine=engine,
        table=tables.outbox,
        producer=cast(Producer, producer),
        name="returns",
        metrics=Metrics(),
        batch_size=BATCH,
        retention=timedelta(days=7),
        gather_s=gather_s,
    )


async def published(db: asyncpg.Connection) -> list[int]:
    rows = await db.fetch("select payload from returns.outbox where published_at is not null order by id")
    return [int(r["payload"]) for r in rows]


async def test_batches_overlap_and_a_row_is_marked_published_only_after_its_acknowledgement(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    producer = HeldProducer()
    relay = await relay_with(engine, producer, 3 * BATCH)
    run = asyncio.create_task(relay.publish_pending())

    # The second batch goes out while nothing of the first is acknowledged yet.
    await eventually(lambda: _sent(producer, 2 * BATCH), message="second batch not sent")
    assert await published(db) == []
    producer.ack(BATCH, 2 * BATCH)  # the second batch first: it settles only after the first
    assert await published(db) == []
    producer.ack(0, BATCH)
    await eventually(lambda: _sent(producer, 3 * BATCH), message="third batch not sent")
    await eventually(lambda: _published_count(db, 2 * BATCH), message="first two batches not marked")
    assert await published(db) == list(range(2 * BATCH))
    producer.ack(2 * BATCH, 3 * BATCH)
    assert await asyncio.wait_for(run, timeout=30) == 3 * BATCH

    assert producer.numbers() == list(range(3 * BATCH))  # handed over in id order: each key's order holds
    assert await published(db) == list(range(3 * BATCH))


async def test_after_a_failure_no_batch_starts_and_those_in_flight_settle(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    producer = HeldProducer()
    relay = await relay_with(engine, producer, 4 * BATCH)
    run = asyncio.create_task(relay.publish_pending())
    await eventually(lambda: _sent(producer, 2 * BATCH), message="second batch not sent")
    producer.ack(0, BATCH, failing=3)
    producer.ack(BATCH, 2 * BATCH)
    with pytest.raises(NotLeaderForPartitionError):
        await asyncio.wait_for(run, timeout=30)

    assert len(producer.sent) == 2 * BATCH  # nothing sent after the failure
    assert await published(db) == [n for n in range(2 * BATCH) if n != 3]
    # The next pass starts again from the oldest pending row.
    run = asyncio.create_task(relay.publish_pending())
    await eventually(lambda: _sent(producer, 2 * BATCH + 1), message="the failed row not sent again")
    assert producer.numbers()[2 * BATCH] == 3
    while not run.done():
        producer.ack(0, len(producer.sent))
        await asyncio.sleep(0.01)
    assert await run == 4 * BATCH - (2 * BATCH - 1)
    assert await published(db) == list(range(4 * BATCH))


async def _sent(producer: HeldProducer, n: int) -> bool:
    return len(producer.sent) >= n


async def _published_count(db: asyncpg.Connection, n: int) -> bool:
    return len(await published(db)) >= n


@pytest.mark.parametrize("gather_s", [0.0, 0.2])
async def test_rows_committed_during_a_pass_are_published_on_their_wake_not_the_next_poll(
    engine: AsyncEngine, db: asyncpg.Connection, gather_s: float
) -> None:
    producer = HeldProducer()
    # A short batch: the pass claims no further batch after it.
    relay = await relay_with(engine, producer, 5, gather_s=gather_s)
    relay._poll_interval_s = 600  # longer than the test waits: only a wake can start the next pass
    run = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _sent(producer, 5), message="first rows not sent")
        async with engine.begin() as conn:  # committed while the pass waits for its acknowledgements
            await conn.execute(
                insert(tables.outbox),
                [
                    {"event_id": f"late-{n}", "event_type": "t", "topic": "t", "key": "k-0", "payload": str(n).encode()}
                    for n in range(5, 8)
                ],
            )
        relay.wake()
        producer.ack(0, 5)
        await eventually(lambda: _sent(producer, 8), message="rows committed during the pass not sent")
        producer.ack(5, 8)
        await eventually(lambda: _published_count(db, 8), message="rows not marked")
        assert producer.numbers() == list(range(8))
        assert await published(db) == list(range(8))
    finally:
        relay.stop()
        await asyncio.wait_for(run, timeout=30)


async def commit_rows(engine: AsyncEngine, numbers: range) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(tables.outbox),
            [
                {"event_id": f"late-{n}", "event_type": "t", "topic": "t", "key": "k-0", "payload": str(n).encode()}
                for n in numbers
            ],
        )


async def test_commits_that_wake_the_relay_soon_after_a_woken_pass_are_published_together_by_the_next(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    producer = HeldProducer()
    relay = await relay_with(engine, producer, 5, gather_s=6.0)
    relay._poll_interval_s = 600  # only a wake starts a pass
    run = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _sent(producer, 5), message="first rows not sent")
        producer.ack(0, 5)
        await eventually(lambda: _published_count(db, 5), message="first rows not marked")
        # A commit after the quiet spell is published at once, by a pass of its own.
        await commit_rows(engine, range(5, 6))
        relay.wake()
        await eventually(lambda: _sent(producer, 6), timeout=3.0, message="a lone commit waited for the gathering")
        producer.ack(5, 6)
        # Three commits, each waking the relay, within the gathering time of that woken pass: one pass for all.
        for n in range(6, 9):
            await commit_rows(engine, range(n, n + 1))
            relay.wake()
        await eventually(lambda: _sent(producer, 9), message="rows of the later commits not sent")
        producer.ack(6, 9)
        await eventually(lambda: _published_count(db, 9), message="rows not marked")
        assert producer.handovers == 3
        assert await published(db) == list(range(9))
    finally:
        relay.stop()
        await asyncio.wait_for(run, timeout=30)


async def test_a_commit_after_passes_of_the_poll_timer_alone_is_published_at_once(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    producer = HeldProducer()
    relay = await relay_with(engine, producer, 5, gather_s=6.0)
    relay._poll_interval_s = 0.2  # passes of the timer, none woken by a commit
    run = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _sent(producer, 5), message="first rows not sent")
        producer.ack(0, 5)
        await eventually(lambda: _published_count(db, 5), message="first rows not marked")
        await asyncio.sleep(0.5)
        await commit_rows(engine, range(5, 6))
        relay.wake()
        # Within the gathering time: the timer's passes are no reason to wait.
        await eventually(lambda: _sent(producer, 6), timeout=3.0, message="a lone commit waited for the gathering")
        producer.ack(5, 6)
        await eventually(lambda: _published_count(db, 6), message="row not marked")
    finally:
        relay.stop()
        await asyncio.wait_for(run, timeout=30)
