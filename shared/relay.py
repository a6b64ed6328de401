"""The outbox relay: publishes a service's outbox rows in order, parks the ones the broker refuses, and publishes
the outbox again to a broker that came back without its log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka.errors import BrokerResponseError, KafkaError, RequestTimedOutError
from sqlalchemy import ARRAY, BigInteger, Table, any_, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.kafka import Producer, refused_for_good
from shared.observability import Metrics
from shared.outbox import HEADERS, advisory_lock_key

log = structlog.get_logger("salesops.outbox")


@dataclass
class _BatchOutcome:
    handled: int = 0
    published: list[Any] = field(default_factory=list)
    parked: list[tuple[Any, BaseException, str]] = field(default_factory=list)
    error: BaseException | None = None
    cluster_id: str | None = None
    republished: int = 0
    published_at: datetime | None = None


class OutboxRelay:
    """Publishes unpublished outbox rows to Kafka in id order, keyed as recorded, then marks them published.

    One relay per service is active at a time (a transaction-level advisory lock), so several replicas are
    safe and per-key order holds; rows are locked with SKIP LOCKED so a stale lock never blocks readers.

    A row the broker refuses for good (too large, say), or keeps refusing after `max_attempts`, is parked
    rather than retried forever: the relay moves on, so one bad row never holds back the others. Later rows of
    the same key are published without it (holding them would stall that key indefinitely); the parked row is
    counted in a metric, logged as an error and reported by `/readyz` until an operator retries or drops it.

    With `republish_on_new_broker` (the embedded broker, which keeps its log in memory), a broker whose cluster
    id differs from the one last published to gets every row still in the outbox again, in id order and
    before any newer row; consumers skip the ones they had already handled.
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
        max_attempts: int = 10,
        republish_on_new_broker: bool = False,
    ) -> None:
        self._engine = engine
        self._table = table
        self._state = table.metadata.tables[f"{table.schema}.outbox_relay" if table.schema else "outbox_relay"]
        self._producer = producer
        self._name = name
        self._lock_key = advisory_lock_key(f"outbox:{table.fullname}")
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._max_attempts = max_attempts
        self._republish = republish_on_new_broker
        self._broker_cluster_id: str | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge = 0.0
        self._parked_counted_at = 0.0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                handled = await self.publish_batch()
                backoff = 0.2
                if handled:
                    continue
                await self._count_parked_if_due()
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
        """Publish one batch; returns how many rows it settled (published or parked). Rows the broker could not
        take this time stay pending, and the first such error is raised once the rest is committed."""
        async with self._engine.connect() as conn, conn.begin():
            outcome = await self._publish_locked(conn)
        # Committed: only now may the relay trust the broker it recorded.
        if outcome.cluster_id is not None:
            self._broker_cluster_id = outcome.cluster_id
        if outcome.republished:
            self._metrics.outbox_republished.labels(self._name).inc(outcome.republished)
        self._metrics.outbox_published.labels(self._name).inc(len(outcome.published))
        for row in outcome.published:
            assert outcome.published_at is not None
            self._metrics.outbox_delay.labels(self._name).observe(
                (outcome.published_at - row.created_at).total_seconds()
            )
        for row, exc, reason in outcome.parked:
            self._metrics.outbox_parked.labels(self._name, type(exc).__name__).inc()
            log.error(
                "outbox event parked: the broker refuses it; later events are published without it",
                outbox_id=row.id,
                event_id=row.event_id,
                event_type=row.event_type,
                topic=row.topic,
                key=row.key,
                payload_bytes=len(row.payload),
                reason=reason,
                operator_command=f"salesops outbox list-parked --service {self._name}",
            )
        if outcome.parked:
            await self.count_parked()
        if outcome.error is not None:
            raise outcome.error
        return outcome.handled

    async def _publish_locked(self, conn: AsyncConnection) -> _BatchOutcome:
        t = self._table
        outcome = _BatchOutcome()
        if not await conn.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key))):
            return outcome
        if self._republish:
            outcome.cluster_id, outcome.republished = await self._follow_broker(conn)
        rows = (
            await conn.execute(
                select(
                    t.c.id, t.c.event_id, t.c.event_type, t.c.topic, t.c.key, t.c.payload, t.c.created_at, t.c.attempts
                )
                .where(t.c.published_at.is_(None), t.c.parked_at.is_(None))
                .order_by(t.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return outcome
        await self._producer.ensure_started()
        now = outcome.published_at = datetime.now(UTC)
        # One array parameter rather than an IN list: an IN list binds one parameter per row and prepares a
        # new statement for every batch length.
        ids = literal([r.id for r in rows], ARRAY(BigInteger))
        # The rows are marked in the database while the messages go out; the mark only takes effect with the
        # commit, which waits for every acknowledgement, and rows not acknowledged are unmarked before it.
        mark = asyncio.ensure_future(conn.execute(update(t).where(t.c.id == any_(ids)).values(published_at=now)))
        try:
            results = await self._send_all(rows)
        finally:
            # The connection must be idle before the transaction ends, whichever way it ends.
            await asyncio.wait([mark])
        mark.result()
        retry: list[int] = []
        counted: list[int] = []
        for row, result in zip(rows, results, strict=True):
            if not isinstance(result, BaseException):
                outcome.published.append(row)
            elif refused_for_good(result):
                outcome.parked.append((row, result, _describe(result)))
            elif _answered_about_the_row(result) and row.attempts + 1 >= self._max_attempts:
                outcome.parked.append((row, result, f"{_describe(result)} (after {row.attempts + 1} attempts)"))
            else:
                (counted if _answered_about_the_row(result) else retry).append(row.id)
                outcome.error = outcome.error or result
        for row, _exc, reason in outcome.parked:
            await conn.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(published_at=None, parked_at=now, park_reason=reason, attempts=t.c.attempts + 1)
            )
        if counted:
            counted_ids = literal(counted, ARRAY(BigInteger))
            await conn.execute(
                update(t).where(t.c.id == any_(counted_ids)).values(published_at=None, attempts=t.c.attempts + 1)
            )
        if retry:
            await conn.execute(
                update(t).where(t.c.id == any_(literal(retry, ARRAY(BigInteger)))).values(published_at=None)
            )
        outcome.handled = len(outcome.published) + len(outcome.parked)
        return outcome

    async def _send_all(self, rows: Sequence[Any]) -> list[object]:
        """Send every row; each outcome is its acknowledgement or the error that refused it. After an error that
        is not about the record itself (the connection, say) the rest are not sent: their outcome is `_NotSent`,
        which counts against none of them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        stopped = False
        for row in rows:
            future: asyncio.Future[Any] = loop.create_future()
            if stopped:
                future.set_exception(_NotSent("not sent: an earlier row of the batch failed"))
                futures.append(future)
                continue
            try:
                futures.append(
                    await self._producer.send(row.topic, value=row.payload, key=row.key.encode(), headers=HEADERS)
                )
            except KafkaError as exc:
                stopped = not refused_for_good(exc)
                future.set_exception(exc)
                futures.append(future)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _follow_broker(self, conn: AsyncConnection) -> tuple[str, int]:
        """The broker's cluster id, and how many rows were put back to be published again because the broker is
        not the one they were published to (it came back empty: nothing it held can be assumed consumed)."""
        cluster_id = await self._producer.cluster_id()
        if cluster_id == self._broker_cluster_id:
            return cluster_id, 0
        s, t = self._state, self._table
        stored = await conn.scalar(select(s.c.broker_cluster_id).where(s.c.relay == self._name))
        if stored == cluster_id:
            return cluster_id, 0
        # Every row still in the outbox (the retention bounds them), not only recent ones: a consumer that was
        # down may not have read even the oldest. Newer rows have higher ids, so these go out first.
        again = (await conn.execute(update(t).where(t.c.published_at.is_not(None)).values(published_at=None))).rowcount
        await conn.execute(
            pg_insert(s)
            .values(relay=self._name, broker_cluster_id=cluster_id)
            .on_conflict_do_update(
                index_elements=[s.c.relay], set_={"broker_cluster_id": cluster_id, "updated_at": func.now()}
            )
        )
        if again:
            log.warning(
                "the broker is not the one the outbox was published to; publishing again the events still held",
                before=stored,
                now=cluster_id,
                events=again,
            )
        return cluster_id, int(again)

    async def pending_count(self) -> int:
        t = self._table
        async with self._engine.connect() as conn:
            return int(
                await conn.scalar(select(func.count()).where(t.c.published_at.is_(None), t.c.parked_at.is_(None))) or 0
            )

    async def count_parked(self) -> int:
        """The rows parked now (also set on the `salesops_outbox_parked_rows` gauge)."""
        t = self._table
        async with self._engine.connect() as conn:
            parked = int(await conn.scalar(select(func.count()).where(t.c.parked_at.is_not(None))) or 0)
        self._metrics.outbox_parked_rows.labels(self._name).set(parked)
        self._parked_counted_at = time.monotonic()
        return parked

    async def _count_parked_if_due(self) -> None:
        # Rows are parked by this relay, but retried or dropped by an operator from another process.
        if time.monotonic() - self._parked_counted_at >= 10:
            await self.count_parked()

    async def _purge_if_due(self) -> None:
        if time.monotonic() - self._last_purge < 600:
            return
        self._last_purge = time.monotonic()
        cutoff = datetime.now(UTC) - self._retention
        async with self._engine.begin() as conn:
            t = self._table
            # By creation, not publication: a row published again to a broker that came back empty must not
            # earn itself another retention period, or the outbox (and what is published again) would never
            # shrink on a machine that is restarted often.
            await conn.execute(delete(t).where(t.c.published_at.is_not(None), t.c.created_at < cutoff))


class _NotSent(Exception):
    """Left unsent in a batch stopped by an earlier row's failure."""


def _answered_about_the_row(exc: BaseException) -> bool:
    """The broker answered about this record with an error that may pass (counted towards parking); a broker
    that is unreachable or does not answer in time says nothing about the row and never counts."""
    return isinstance(exc, BrokerResponseError) and not isinstance(exc, RequestTimedOutError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
