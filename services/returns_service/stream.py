"""Live alert changes: the in-process wake-up fed by PostgreSQL NOTIFY, and the resumable SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import structlog
from fastapi.sse import ServerSentEvent

from services.returns_service.domain import change_kind, change_message
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import AlertChange, ChangeLog
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

    async def wait(self, timeout: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=timeout)


def feed_of(runtime: Runtime) -> AlertFeed:
    feed = runtime.state.get("alert_feed")
    if feed is None:
        feed = runtime.state["alert_feed"] = AlertFeed()
    assert isinstance(feed, AlertFeed)
    return feed


async def listen_for_changes(runtime: Runtime) -> None:
    """Background task: LISTEN on the changes channel and wake the feed; reconnects after failures."""
    feed = feed_of(runtime)
    backoff = 0.5

    def listening() -> None:
        nonlocal backoff
        backoff = 0.5

    while True:
        try:
            await ChangeLog(runtime.engine).listen(feed.notify, listening)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("alert change listener failed; polling meanwhile", error=repr(exc))
        feed.notify()  # whatever was missed while disconnected is found by the waiters' next query
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


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
            await feed.wait(max(0.0, wait_s))
