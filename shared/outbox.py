"""Transactional outbox: event rows written with the state change, and the relay publishing them in order."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    any_,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.events import CLOUDEVENTS_CONTENT_TYPE, CloudEvent
from shared.kafka import Producer
from shared.observability import Metrics

log = structlog.get_logger("salesops.outbox")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(always=False), primary_key=True),
        Column("event_id", String(200), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("key", String(500), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


async def record_events(session: AsyncSession, table: Table, events: list[tuple[CloudEvent, str, str]]) -> None:
    await session.execute(
        insert(table),
        [
            {"event_id": ev.id, "event_type": ev.type, "topic": topic, "key": key, "payload": ev.to_json()}
            for ev, topic, key in events
        ],
    )


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    """Publishes unpublished outbox rows to Kafka in id order, keyed as recorded, then marks them published.

    One relay per service is active at a time (a transaction-level advisory lock), so several replicas are
    safe and per-key order holds; rows are locked with SKIP LOCKED so a stale lock never blocks readers.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        table: Table,
        producer: Producer,
        name: str,
        metrics: Metrics,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._engine = engine
        self._table = table
        self._producer = producer
        self._name = name
        self._lock_key = advisory_lock_key(f"outbox:{table.fullname}")
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge = 0.0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                published = await self.publish_batch()
                backoff = 0.2
                if published:
                    continue
                await self._purge_if_due()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.relay_errors.labels(self._name).inc()
                log.warning("outbox relay failed; will retry", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def drain(self, timeout_s: float) -> None:
        """Publish what is pending before shutdown, within a time limit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    if await self.publish_batch() == 0:
                        return
            except Exception as exc:
                log.warning("outbox drain stopped early", error=repr(exc))
                return

    async def publish_batch(self) -> int:
        t = self._table
        async with self._engine.connect() as conn, conn.begin():
            locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key)))
            if not locked:
                return 0
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.created_at)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self._producer.ensure_started()
            now = datetime.now(UTC)
            # One array parameter rather than an IN list: an IN list binds one parameter per row and prepares a
            # new statement for every batch length.
            ids = literal([r.id for r in rows], ARRAY(BigInteger))
            # The rows are marked in the database while the messages go out; the mark only takes effect with the
            # commit, which waits for every acknowledgement, so a failed send still leaves the rows unpublished.
            mark = asyncio.ensure_future(conn.execute(update(t).where(t.c.id == any_(ids)).values(published_at=now)))
            try:
                futures: list[Any] = []
                for row in rows:
                    futures.append(
                        await self._producer.send(
                            row.topic,
                            value=row.payload,
                            key=row.key.encode(),
                            headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
                        )
                    )
                await asyncio.gather(*futures)
            finally:
                # The connection must be idle before the transaction ends, whichever way it ends.
                await asyncio.wait([mark])
            mark.result()
        self._metrics.outbox_published.labels(self._name).inc(len(rows))
        for row in rows:
            self._metrics.outbox_delay.labels(self._name).observe((now - row.created_at).total_seconds())
        return len(rows)

    async def pending_count(self) -> int:
        t = self._table
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).where(t.c.published_at.is_(None))) or 0)

    async def _purge_if_due(self) -> None:
        if time.monotonic() - self._last_purge < 600:
            return
        self._last_purge = time.monotonic()
        cutoff = datetime.now(UTC) - self._retention
        async with self._engine.begin() as conn:
            t = self._table
            await conn.execute(delete(t).where(t.c.published_at.is_not(None), t.c.published_at < cutoff))
