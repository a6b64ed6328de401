"""Live alert changes: the in-process wake-up fed by PostgreSQL NOTIFY, and the resumable SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import structlog
from fastapi.sse import ServerSentEvent

from services.returns_service.domain import change_kind, change_message
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import AlertChange, ChangeLog
from shared.gathering import Gathering
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.stream")


class AlertFeed:
    """Wakes every waiter when an alert change was committed (anywhere); waiters also poll on a timer,
    so a lost notification only delays, never loses, a change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def next_change(self) -> asyncio.Event:
        """What the next `notify` sets: taken before a read and waited on after it, no change in between is
        missed."""
        return self._event

    async def wait(self, timeout: float, event: asyncio.Event | None = None) -> None:
        event = event or self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=timeout)


def feed_of(runtime: Runtime) -> AlertFeed:
    """Wakes on numbered changes: what the streams read."""
    return _feed(runtime, "alert_feed")


def pending_feed_of(runtime: Runtime) -> AlertFeed:
    """Wakes on committed changes not yet numbered: what the numbering step and the webhook dispatcher need."""
    return _feed(runtime, "alert_pending_feed")


def _feed(runtime: Runtime, name: str) -> AlertFeed:
    feed = runtime.state.get(name)
    if feed is None:
        feed = runtime.state[name] = AlertFeed()
    assert isinstance(feed, AlertFeed)
    return feed


async def listen_for_changes(runtime: Runtime) -> None:
    """Background task: LISTEN on the change channels and wake the feeds; reconnects after failures."""
    feed, pending = feed_of(runtime), pending_feed_of(runtime)
    backoff = 0.5

    def listening() -> None:
        nonlocal backoff
        backoff = 0.5

    while True:
        try:
            await ChangeLog(runtime.engine).listen(feed.notify, pending.notify, listening)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("alert change listener failed; polling meanwhile", error=repr(exc))
        # Whatever was missed while disconnected is found by the waiters' next query.
        feed.notify()
        pending.notify()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


# Most changes one numbering step numbers; more pending are numbered by the next step at once.
NUMBERING_BATCH = 1000
# A step woken by a committed change starts at least this long after the step before it started, so that under a
# stream of changes one step (one transaction) numbers several; a change after a quiet spell is numbered at once.
NUMBERING_GATHER_S = 0.1


def number_changes(poll_interval_s: float) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """Background task: number committed alert changes for the streams (see `store.changes`), woken by every
    committed change on any replica (at once, or `NUMBERING_GATHER_S` after the step before began, with what
    else committed meanwhile) and, should a notification be lost, every `poll_interval_s`. Each replica runs one;
    their steps take turns on the counter row, and one step numbers everything committed by then."""

    async def number_alert_changes(runtime: Runtime) -> None:
        pending, changes = pending_feed_of(runtime), ChangeLog(runtime.engine)
        backoff = 0.5
        # Only steps a committed change woke start a gather (a step of the poll timer, or the first, does not: a
        # change after a quiet spell is numbered at once); `by_change`: whether the coming step is one.
        gathering, by_change = Gathering(NUMBERING_GATHER_S), False
        while True:
            woken = pending.next_change()
            gathering.began(by_change)
            try:
                while await changes.number_pending(limit=NUMBERING_BATCH) == NUMBERING_BATCH:
                    pass
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("numbering alert changes failed; will retry", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            await pending.wait(poll_interval_s, woken)
            by_change = woken.is_set()
            await gathering.settle(by_change)

    return number_alert_changes


def to_sse(change: AlertChange) -> ServerSentEvent:
    """One change as an SSE event: named by its kind (`sales-alert.raised`, `sales-alert.updated`), so a
    browser can listen per kind, with the same document as the change's webhook body as its data."""
    kind = change_kind(change.event_type)
    return ServerSentEvent(
        id=str(change.seq),
        event=f"sales-alert.{kind}",
        data=change_message(change.payload, kind, change.created_at),
    )


async def alert_events(
    runtime: Runtime,
    settings: ReturnsSettings,
    *,
    last_event_id: int | None,
    sku: str | None,
    alert_type: str | None,
    still_authorized: Callable[[], bool],
) -> AsyncIterator[ServerSentEvent]:
    """Replays every change after `last_event_id` (or starts at the present), then follows live changes.

    Each connection lives at most `sse_max_connection_s`, so a replica can be drained and a stuck proxy
    connection cannot live forever; the client reconnects with Last-Event-ID and misses nothing.
    `still_authorized` is asked before every read of the change log (at least every poll interval): once the
    caller's key is revoked, or loses the scope, the stream ends and a reconnection is refused."""
    with runtime.metrics.streams.open("alerts"):
        feed = feed_of(runtime)
        log_of_changes = ChangeLog(runtime.engine)
        cursor = last_event_id if last_event_id is not None else await log_of_changes.latest_seq()
        yield ServerSentEvent(comment="connected", retry=settings.sse_retry_ms)
        deadline = time.monotonic() + settings.sse_max_connection_s
        last_sent = time.monotonic()
        while time.monotonic() < deadline:
            if not still_authorized():
                log.info("alert stream closed: its API key was revoked or lost the scope")
                yield ServerSentEvent(comment="key revoked")
                return
            woken = feed.next_change()
            changes = await log_of_changes.changes_after(
                cursor, limit=settings.sse_batch_size, sku=sku, alert_type=alert_type
            )
            for change in changes:
                cursor = change.seq
                yield to_sse(change)
                last_sent = time.monotonic()
            if len(changes) == settings.sse_batch_size:
                continue
            if time.monotonic() - last_sent >= settings.sse_heartbeat_s:
                yield ServerSentEvent(comment="heartbeat")
                last_sent = time.monotonic()
            wait_s = min(settings.sse_poll_interval_s, settings.sse_heartbeat_s, deadline - time.monotonic())
            await feed.wait(max(0.0, wait_s), woken)
