"""The outbox relay: publishes a service's outbox rows in order, parks the ones the broker refuses, and publishes
the outbox again to a broker that came back without its log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from aiokafka.errors import BrokerResponseError, RequestTimedOutError
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Table,
    any_,
    bindparam,
    cast,
    delete,
    func,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import DriverStatement, driver_connection
from shared.gathering import Gathering
from shared.kafka import Handover, Producer, refused_for_good
from shared.metrics import Metrics, observe_many
from shared.outbox import HEADERS, advisory_lock_key
from shared.retry import Backoff, Stopped, retrying
from shared.tracing import SendDone, Tracing

log = structlog.get_logger("salesops.outbox")

# A failed pass (database or broker unreachable) is tried again after this; a pass that succeeds starts over.
RELAY_BACKOFF = Backoff(initial_s=0.2, max_s=5.0)
# How often the backlog gauges are measured (a count over the pending rows' partial index).
BACKLOG_INTERVAL_S = 1.0


class _Pending(NamedTuple):
    """An outbox row to publish, as a plain tuple: a SQLAlchemy row's attribute lookups would cost more than the
    rest of the relay's work on it."""

    id: int
    event_id: str
    event_type: str
    topic: str
    key: str
    payload: bytes
    created_at: datetime
    attempts: int


@dataclass
class _BatchOutcome:
    handled: int = 0
    published: list[_Pending] = field(default_factory=list)
    parked: list[tuple[_Pending, BaseException, str]] = field(default_factory=list)
    error: BaseException | None = None
    cluster_id: str | None = None
    republished: int = 0
    published_at: datetime | None = None


@dataclass
class _InFlight:
    """A batch sent and not yet settled: its open transaction (rows claimed: marked, not yet committed) on a
    driver's connection, its acknowledgements. `release` gives the connection back to the pool (None: the pass's
    own connection, released with the pass)."""

    conn: Any
    release: contextlib.AsyncExitStack | None
    rows: list[_Pending]
    handover: Handover
    now: datetime


# Batches in flight at once in `publish_pending`: one settling while the next is sent.
PIPELINE_DEPTH = 2


class OutboxRelay:
    """Publishes unpublished outbox rows to Kafka in id order, keyed as recorded, then marks them published.

    One relay per service is active at a time (an advisory lock), so several replicas are safe and per-key order
    holds. Its statements run on the driver's connection (`shared.db.driver_connection`): few round trips, none
    of SQLAlchemy's statement processing. A batch is claimed in one statement that marks its rows published and
    returns them; the mark only takes effect with the commit, which waits for every acknowledgement, and rows not
    acknowledged are unmarked before it. The claim writes each row once (no separate row lock before the mark):
    besides the advisory lock, its own row lock and the re-check of "still pending" on a row another transaction
    held keep a row from being published twice. A row locked by another transaction (an operator's command) is
    waited for, not skipped, so the rows after it never overtake it.

    The relay is woken after a commit that wrote outbox rows and otherwise polls every `poll_interval_s`. A pass
    publishes batch after batch until one comes back short of `batch_size`: rows committed after that batch was
    claimed come with a wake of their own (or the next poll, for rows of other processes). With `gather_s`, a pass
    a wake starts begins no sooner than `gather_s` after the one before it began: a wake after a quiet spell starts
    a pass at once, while under a stream of commits one pass publishes what several of them wrote (fewer passes,
    each with its lock, claim and commit, for at most `gather_s` more delay).

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
        tracing: Tracing | None = None,
        gather_s: float = 0.0,
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
        self._gather_s = gather_s
        self._retention = retention
        self._max_attempts = max_attempts
        self._republish = republish_on_new_broker
        self._tracing = tracing or Tracing()
        self._broker_cluster_id: str | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge = 0.0
        self._parked_counted_at = 0.0
        self._backlog_measured_at = 0.0
        # Built once: the statements of every batch, and the metrics of this relay's service.
        t = table
        still_pending = (t.c.published_at.is_(None), t.c.parked_at.is_(None))
        first = select(t.c.id).where(*still_pending).order_by(t.c.id).limit(batch_size)

        def claim(batch: Any) -> Any:
            # The batch's ids as one array, computed once (an IN subquery lets the planner join it to a scan of the
            # whole table), then the rows by primary key. "Still pending" again on the updated rows: a row another
            # transaction changed meanwhile is judged on its new version.
            ids = cast(select(func.array_agg(batch.subquery().c.id)).scalar_subquery(), ARRAY(BigInteger))
            return (
                update(t)
                .where(t.c.id == any_(ids), *still_pending)
                .values(published_at=bindparam("now", type_=DateTime(timezone=True)))
                .returning(
                    t.c.id, t.c.event_id, t.c.event_type, t.c.topic, t.c.key, t.c.payload, t.c.created_at, t.c.attempts
                )
            )

        # Built once too, as every pass takes and releases the lock and every second measures the backlog. The
        # key is an integer, written in the statements: those the simple protocol runs at once take no parameter.
        key = self._lock_key
        self._try_lock = f"SELECT pg_try_advisory_lock({key})"
        self._unlock = f"SELECT pg_advisory_unlock({key})"
        self._try_xact_lock = f"SELECT pg_try_advisory_xact_lock({key})"
        self._backlog = DriverStatement.of(
            select(func.count(), func.min(t.c.created_at), func.now()).where(*still_pending)
        )
        self._parked = DriverStatement.of(select(func.count()).where(t.c.parked_at.is_not(None)))
        self._claim_first = DriverStatement.of(claim(first))
        self._claim_after = DriverStatement.of(claim(first.where(t.c.id > bindparam("after", type_=BigInteger))))
        ids = bindparam("ids", type_=ARRAY(BigInteger))
        self._park = DriverStatement.of(
            update(t)
            .where(t.c.id == bindparam("id", type_=BigInteger))
            .values(
                published_at=null(),
                parked_at=bindparam("now", type_=DateTime(timezone=True)),
                park_reason=bindparam("reason"),
                attempts=t.c.attempts + 1,
            )
        )
        self._unmark_counted = DriverStatement.of(
            update(t).where(t.c.id == any_(ids)).values(published_at=null(), attempts=t.c.attempts + 1)
        )
        self._unmark = DriverStatement.of(update(t).where(t.c.id == any_(ids)).values(published_at=null()))
        s = self._state
        self._stored_cluster = DriverStatement.of(
            select(s.c.broker_cluster_id).where(s.c.relay == bindparam("relay", type_=s.c.relay.type))
        )
        self._unmark_all = DriverStatement.of(
            update(t).where(t.c.published_at.is_not(None)).values(published_at=null())
        )
        self._record_cluster = (
            f"INSERT INTO {s.fullname} (relay, broker_cluster_id) VALUES ($1, $2) "
            "ON CONFLICT (relay) DO UPDATE SET broker_cluster_id = excluded.broker_cluster_id, updated_at = now()"
        )
        self._published_total = metrics.outbox_published.labels(name)
        self._publish_delay = metrics.outbox_delay.labels(name)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        # Only passes a commit woke start a gather: a commit after passes of the poll timer (or the first) or a
        # quiet spell is published at once.
        gathering = Gathering(self._gather_s)
        try:
            while not self._stopping:
                woken = self._wake.is_set()
                # Woken soon after the last woken pass: gather a burst's commits.
                if await gathering.settle(woken) and self._stopping:
                    break
                # Cleared before the pass: a wake during it (rows committed after its last batch was claimed)
                # starts the next pass (at once, or once `gather_s` has passed since this one began).
                self._wake.clear()
                gathering.began(woken)
                async for attempt in retrying(
                    RELAY_BACKOFF, stopping=lambda: self._stopping, on_retry=self._pass_failed
                ):
                    with attempt:
                        await self._pass()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
        except Stopped:
            return

    async def _pass(self) -> int:
        """Publish what is pending, then the housekeeping that is due."""
        handled = await self.publish_pending()
        if time.monotonic() - self._backlog_measured_at >= BACKLOG_INTERVAL_S:
            await self.measure_backlog()
        await self._count_parked_if_due()
        await self._purge_if_due()
        return handled

    def _pass_failed(self, error: BaseException, wait_s: float, _: int) -> None:
        self._metrics.relay_errors.labels(self._name).inc()
        log.warning("outbox relay failed; will retry", error=repr(error), retry_in_s=round(wait_s, 2))

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

    async def publish_pending(self) -> int:
        """Publish batch after batch until one comes back short of the batch size (nothing more was pending);
        returns how many rows were settled (published or parked). Batches overlap: the next one is claimed and
        sent while the acknowledgements of the one before are still awaited, each in its own transaction that keeps
        the mark of a row only once the broker acknowledged it. A batch's rows are all handed to the producer
        before the next batch's, so a key's events go out in id order. While one pass runs, it holds the relay's
        advisory lock on a connection of its own (for the session), so no other replica publishes meanwhile; the
        first batch's transaction runs on that connection too, and when it is the pass's last its COMMIT and the
        release of the lock go in one round trip. After a failure no further batch starts: the ones in flight
        settle, then the error is raised (the next pass starts again from the oldest pending row)."""
        # The session's lock must not go back to the pool with the connection: after any error it is discarded.
        async with driver_connection(self._engine, discard_on_error=True) as leader:
            if not await leader.fetchval(self._try_lock):
                return 0
            if self._republish:
                outcome = _BatchOutcome()
                await leader.execute("BEGIN")
                outcome.cluster_id, outcome.republished = await self._follow_broker(leader)
                await leader.execute("COMMIT")
                await self._report(outcome)
            handled, unlocked = await self._pipeline(leader)
            if not unlocked:
                await leader.execute(self._unlock)
        return handled

    async def _pipeline(self, leader: Any) -> tuple[int, bool]:
        """The pass's batches; returns how many rows were settled and whether the lock was released already (with
        the COMMIT or ROLLBACK of the leader's batch, when that was the last)."""
        in_flight: deque[_InFlight] = deque()
        handled = 0
        after: int | None = None
        error: BaseException | None = None
        drained = False
        unlocked = False
        try:
            while True:
                if error is None and not drained and len(in_flight) < PIPELINE_DEPTH:
                    leads = after is None
                    sending = await self._start_batch(leader if leads else None, after)
                    drained = sending is None or len(sending.rows) < self._batch_size
                    if sending is None:
                        unlocked = leads  # the leader's empty claim was rolled back with the lock released
                    else:
                        in_flight.append(sending)
                        after = sending.rows[-1].id
                        continue
                if not in_flight:
                    break
                sending = in_flight.popleft()
                last = drained and not in_flight and sending.release is None
                outcome = await self._finish_batch(sending, unlock=last)
                unlocked = unlocked or last
                await self._report(outcome)
                handled += outcome.handled
                error = error or outcome.error
        finally:
            for sending in in_flight:  # only when something raised: unsettled batches are rolled back
                if sending.release is not None:
                    await sending.release.aclose()  # discarded, still in its transaction
        if error is not None:
            raise error
        return handled, unlocked

    async def _start_batch(self, leader: Any, after: int | None) -> _InFlight | None:
        """Claim and send the next batch in a transaction left open until its acknowledgements are in: on the
        leader's connection (the first batch of a pass), otherwise on a connection of its own. An empty first claim
        is rolled back with the lock released in the same round trip (the pass is over)."""
        release: contextlib.AsyncExitStack | None = None
        if leader is None:
            release = contextlib.AsyncExitStack()
            conn = await release.enter_async_context(driver_connection(self._engine))
        else:
            conn = leader
        try:
            await conn.execute("BEGIN")
            now = datetime.now(UTC)
            rows = await self._claim(conn, now, after=after)
            if not rows:
                await conn.execute("ROLLBACK" if release is not None else f"ROLLBACK; {self._unlock}")
                if release is not None:
                    await release.aclose()
                return None
            await self._producer.ensure_started()
            handover = await self._send_all(rows)
            return _InFlight(conn, release, rows, handover, now)
        except BaseException as exc:
            if release is not None:  # discarded: in its transaction, or in doubt after the error
                await release.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def _finish_batch(self, sending: _InFlight, *, unlock: bool) -> _BatchOutcome:
        """Settle a batch and commit it (with `unlock`, releasing the lock in the same round trip)."""
        outcome = _BatchOutcome(published_at=sending.now)
        try:
            results = await _acknowledgements(sending.rows, sending.handover)
            await self._settle(sending.conn, sending.rows, results, sending.now, outcome)
            await sending.conn.execute(f"COMMIT; {self._unlock}" if unlock else "COMMIT")
        except BaseException as exc:
            if sending.release is not None:  # discarded: in its transaction, or in doubt after the error
                await sending.release.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if sending.release is not None:
            await sending.release.aclose()
        return outcome

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it settled (published or parked). Rows the broker could not
        take this time stay pending, and the first such error is raised once the rest is committed."""
        # A failure leaves the connection in its transaction: `driver_connection` discards it (rolled back).
        async with driver_connection(self._engine) as conn:
            await conn.execute("BEGIN")
            outcome = await self._publish_locked(conn)
            await conn.execute("COMMIT")
        await self._report(outcome)
        if outcome.error is not None:
            raise outcome.error
        return outcome.handled

    async def _report(self, outcome: _BatchOutcome) -> None:
        """Metrics and logs of a committed batch."""
        # Committed: only now may the relay trust the broker it recorded.
        if outcome.cluster_id is not None:
            self._broker_cluster_id = outcome.cluster_id
        if outcome.republished:
            self._metrics.outbox_republished.labels(self._name).inc(outcome.republished)
        if outcome.published:
            self._published_total.inc(len(outcome.published))
            published_at = outcome.published_at
            assert published_at is not None
            # Every row's delay, as one observation each; the rows of a transaction share their `created_at`.
            commits = Tally(row.created_at for row in outcome.published)
            delays = {(published_at - created_at).total_seconds(): n for created_at, n in commits.items()}
            observe_many(self._publish_delay, delays)
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

    async def _publish_locked(self, conn: Any) -> _BatchOutcome:
        outcome = _BatchOutcome()
        if not await conn.fetchval(self._try_xact_lock):
            return outcome
        if self._republish:
            outcome.cluster_id, outcome.republished = await self._follow_broker(conn)
        now = outcome.published_at = datetime.now(UTC)
        # Claimed: marked in the database, which takes effect only with the commit; that waits for every
        # acknowledgement, and rows not acknowledged are unmarked before it.
        rows = await self._claim(conn, now, after=None)
        if not rows:
            return outcome
        await self._producer.ensure_started()
        handover = await self._send_all(rows)
        results = await _acknowledgements(rows, handover)
        await self._settle(conn, rows, results, now, outcome)
        return outcome

    async def _claim(self, conn: Any, now: datetime, *, after: int | None) -> list[_Pending]:
        """The next batch of pending rows (after `after`: past the batches still in flight), marked published at
        `now` in the connection's transaction, in id order."""
        if after is None:
            claim = self._claim_first
            result = await conn.fetch(claim.sql, *claim.arguments({"now": now}))
        else:
            claim = self._claim_after
            result = await conn.fetch(claim.sql, *claim.arguments({"now": now, "after": after}))
        rows = list(map(_Pending._make, result))
        rows.sort(key=_by_id)  # RETURNING keeps no order
        return rows

    async def _settle(
        self,
        conn: Any,
        rows: list[_Pending],
        results: list[BaseException | None] | None,
        now: datetime,
        outcome: _BatchOutcome,
    ) -> None:
        """Keep the mark of the acknowledged rows (all of them when `results` is None); park the refused ones,
        unmark the rest (to be sent again)."""
        if results is None:
            outcome.published = rows
            outcome.handled = len(rows)
            return
        retry: list[int] = []
        counted: list[int] = []
        for row, result in zip(rows, results, strict=True):
            if result is None:
                outcome.published.append(row)
            elif refused_for_good(result):
                outcome.parked.append((row, result, _describe(result)))
            elif _answered_about_the_row(result) and row.attempts + 1 >= self._max_attempts:
                outcome.parked.append((row, result, f"{_describe(result)} (after {row.attempts + 1} attempts)"))
            else:
                (counted if _answered_about_the_row(result) else retry).append(row.id)
                outcome.error = outcome.error or result
        park = self._park
        for row, _exc, reason in outcome.parked:
            await conn.execute(park.sql, *park.arguments({"id": row.id, "now": now, "reason": reason}))
        if counted:
            await conn.execute(self._unmark_counted.sql, *self._unmark_counted.arguments({"ids": counted}))
        if retry:
            await conn.execute(self._unmark.sql, *self._unmark.arguments({"ids": retry}))
        outcome.handled = len(outcome.published) + len(outcome.parked)

    async def _send_all(self, rows: Sequence[_Pending]) -> Handover:
        """Hand every row to the producer, in order, in record batches (see `Producer.send_batches`). With
        tracing on, each row handed over or refused gets its send span, ended with its batch's answer."""
        handover = await self._producer.send_batches([(r.topic, r.key.encode(), r.payload) for r in rows], HEADERS)
        if self._tracing.enabled:
            self._trace_sends(rows, handover)
        return handover

    def _trace_sends(self, rows: Sequence[_Pending], handover: Handover) -> None:
        sending = self._tracing.sending
        for future, positions in handover.batches:
            dones = [sending(rows[i].payload, topic=rows[i].topic, key=rows[i].key) for i in positions]
            future.add_done_callback(_ending(dones))
        for i, exc in handover.failed.items():
            sending(rows[i].payload, topic=rows[i].topic, key=rows[i].key)(exc)

    async def _follow_broker(self, conn: Any) -> tuple[str, int]:
        """The broker's cluster id, and how many rows were put back to be published again because the broker is
        not the one they were published to (it came back empty: nothing it held can be assumed consumed). Run in
        the caller's transaction on a driver's connection."""
        cluster_id = await self._producer.cluster_id()
        if cluster_id == self._broker_cluster_id:
            return cluster_id, 0
        stored = await conn.fetchval(self._stored_cluster.sql, *self._stored_cluster.arguments({"relay": self._name}))
        if stored == cluster_id:
            return cluster_id, 0
        # Every row still in the outbox (the retention bounds them), not only recent ones: a consumer that was
        # down may not have read even the oldest. Newer rows have higher ids, so these go out first.
        status = await conn.execute(self._unmark_all.sql, *self._unmark_all.arguments({}))
        again = int(status.rsplit(" ", 1)[-1])
        await conn.execute(self._record_cluster, self._name, cluster_id)
        if again:
            log.warning(
                "the broker is not the one the outbox was published to; publishing again the events still held",
                before=stored,
                now=cluster_id,
                events=again,
            )
        return cluster_id, int(again)

    async def pending_count(self) -> int:
        return (await self.measure_backlog())[0]

    async def measure_backlog(self) -> tuple[int, float]:
        """The rows waiting to be published and the age of the oldest, in seconds (also set on the
        `salesops_outbox_pending_rows` and `salesops_outbox_oldest_pending_age_seconds` gauges)."""
        async with driver_connection(self._engine) as conn:
            row = await conn.fetchrow(self._backlog.sql, *self._backlog.arguments({}))
        pending, oldest, now = int(row[0] or 0), row[1], row[2]
        age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        self._metrics.outbox_pending.labels(self._name).set(pending)
        self._metrics.outbox_oldest_age.labels(self._name).set(age)
        self._backlog_measured_at = time.monotonic()
        return pending, age

    async def count_parked(self) -> int:
        """The rows parked now (also set on the `salesops_outbox_parked_rows` gauge)."""
        async with driver_connection(self._engine) as conn:
            parked = int(await conn.fetchval(self._parked.sql, *self._parked.arguments({})) or 0)
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


def _by_id(row: _Pending) -> int:
    return row.id


def _ending(dones: list[SendDone]) -> Callable[[asyncio.Future[Any]], None]:
    def end(future: asyncio.Future[Any]) -> None:
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        for done in dones:
            done(error)

    return end


async def _acknowledgements(rows: Sequence[_Pending], handover: Handover) -> list[BaseException | None] | None:
    """Waits for the broker's answer to every batch handed over; returns, per row, the error that refused it (or
    `_NotSent` for a row the handover never reached), None for a row acknowledged; None when every row was."""
    answers = await asyncio.gather(*(future for future, _ in handover.batches), return_exceptions=True)
    if not handover.failed and handover.error is None and not any(isinstance(a, BaseException) for a in answers):
        return None
    stopped_by = _describe(handover.error) if handover.error is not None else "an earlier failure"
    not_sent = _NotSent(f"not sent: the batch stopped at {stopped_by}")
    results: list[BaseException | None] = [not_sent] * len(rows)
    for (_, positions), answer in zip(handover.batches, answers, strict=True):
        error = answer if isinstance(answer, BaseException) else None
        for i in positions:
            results[i] = error
    for i, exc in handover.failed.items():
        results[i] = exc
    return results


class _NotSent(Exception):
    """Left unsent in a batch stopped by an earlier row's failure."""


def _answered_about_the_row(exc: BaseException) -> bool:
    """The broker answered about this record with an error that may pass (counted towards parking); a broker
    that is unreachable or does not answer in time says nothing about the row and never counts."""
    return isinstance(exc, BrokerResponseError) and not isinstance(exc, RequestTimedOutError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
