"""The alert change log against the real PostgreSQL: writers of changes do not wait for each other, changes are
numbered after they commit, and a reader that resumes after the last number it saw meets every change once, in
order, however the writers' commits interleave (many writers, two numbering steps as two replicas would run)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from services.returns_service.store import ChangeLog, NewChange, SqlStore


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=30, max_overflow=10)
    yield engine
    await engine.dispose()


def change(alert_id: str, revision: int) -> dict[str, Any]:
    return {"alert_id": alert_id, "revision": revision, "type": "critical-complaint", "sku": "SKU-1"}


async def write(session: AsyncSession, alert_id: str, revision: int) -> int:
    message = {"type": "sales-alert.critical-complaint", "data": change(alert_id, revision)}
    return await SqlStore(session).record_change(
        NewChange(change(alert_id, revision), "salesops.sales-alert.raised.v1", message, datetime.now(UTC))
    )


async def test_a_change_written_first_and_committed_last_is_not_skipped(engine: AsyncEngine) -> None:
    log = ChangeLog(engine)
    async with AsyncSession(engine) as slow, AsyncSession(engine) as fast:
        first = await write(slow, "alrt_slow", 1)
        # Another writer writes and commits while the first one's transaction is still open: nothing makes it wait.
        second = await asyncio.wait_for(write(fast, "alrt_fast", 1), timeout=30)
        await fast.commit()
        assert first < second

        assert await log.number_pending(limit=100) == 1
        seen = await log.changes_after(0, limit=100, sku=None, alert_type=None)
        assert [(c.alert_id, c.seq) for c in seen] == [("alrt_fast", 1)]
        assert await log.latest_seq() == 1

        await slow.commit()
    assert await log.number_pending(limit=100) == 1
    # Resuming after the number already seen finds the change written first: it was numbered after it.
    resumed = await log.changes_after(1, limit=100, sku=None, alert_type=None)
    assert [(c.alert_id, c.seq) for c in resumed] == [("alrt_slow", 2)]
    assert await log.number_pending(limit=100) == 0


async def test_many_concurrent_writers_and_a_resuming_reader_see_every_change_once_in_order(
    engine: AsyncEngine,
) -> None:
    writers, revisions = 24, 8
    expected = writers * revisions
    log = ChangeLog(engine)
    rng = random.Random(17)
    open_at_once = 0
    most_open_at_once = 0
    writing = True

    async def writer(n: int) -> None:
        # One alert per writer, its revisions one after another (as the alert's row lock orders them); each change
        # held open a random while, so commits land in another order than the changes were written.
        nonlocal open_at_once, most_open_at_once
        for revision in range(1, revisions + 1):
            async with AsyncSession(engine) as session:
                open_at_once += 1
                most_open_at_once = max(most_open_at_once, open_at_once)
                change_id = await write(session, f"alrt_{n}", revision)
                await asyncio.sleep(rng.uniform(0, 0.02))
                await session.commit()
                committed.append(change_id)
                open_at_once -= 1

    async def numbering(limit: int) -> None:
        # Two "replicas" taking turns: one numbering whatever committed, one in small batches.
        while writing:
            await log.number_pending(limit=limit)
            await asyncio.sleep(rng.uniform(0, 0.005))
        while await log.number_pending(limit=limit):
            pass

    received: list[tuple[int, str, int]] = []
    committed: list[int] = []

    async def reader() -> None:
        cursor = 0
        while len(received) < expected:
            for c in await log.changes_after(cursor, limit=7, sku=None, alert_type=None):
                received.append((c.seq, c.alert_id, c.revision))
                cursor = c.seq
            await asyncio.sleep(0.001)

    numberers = [asyncio.create_task(numbering(limit)) for limit in (1000, 5)]
    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(writers)))
    writing = False
    await asyncio.gather(*numberers)
    await asyncio.wait_for(reading, timeout=60)

    # Writers really overlapped, and changes committed in another order than they were written in.
    assert most_open_at_once > 1
    assert committed != sorted(committed)
    seqs = [seq for seq, _, _ in received]
    assert seqs == list(range(1, expected + 1))  # every number once, in order, no hole
    assert len({(a, r) for _, a, r in received}) == expected  # every change once
    per_alert: dict[str, list[int]] = {}
    for _, alert_id, revision in received:
        per_alert.setdefault(alert_id, []).append(revision)
    assert per_alert == {f"alrt_{n}": list(range(1, revisions + 1)) for n in range(writers)}
