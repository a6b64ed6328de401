"""Live alert changes: the in-process wake-up fed by PostgreSQL NOTIFY, and the resumable SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from fastapi.sse import ServerSentEvent
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.returns_service import tables
from services.returns_service.settings import ReturnsSettings
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.stream")

C = tables.alert_changes

# Committed alert changes are announced on this channel (payload: the change seq), so the SSE streams
# and webhook dispatchers of every replica wake at once; PostgreSQL delivers NOTIFY only on commit.
CHANGES_CHANNEL = "returns_alert_changes"


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

    def on_notify(*_: Any) -> None:
        feed.notify()

    while True:
        try:
            async with runtime.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.add_listener(CHANGES_CHANNEL, on_notify)
                backoff = 0.5
                closed = asyncio.Event()
                driver.add_termination_listener(_setter(closed))
                try:
                    await closed.wait()
                finally:
                    if not driver.is_closed():
                        await driver.remove_listener(CHANGES_CHANNEL, on_notify)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("alert change listener failed; polling meanwhile", error=repr(exc))
        feed.notify()  # whatever was missed while disconnected is found by the waiters' next query
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


def _setter(event: asyncio.Event) -> Callable[..., None]:
    return lambda *_: event.set()


async def latest_seq(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.coalesce(func.max(C.c.seq), 0))) or 0)


async def changes_after(
    engine: AsyncEngine, cursor: int, *, limit: int, sku: str | None, alert_type: str | None
) -> list[Any]:
    query = select(C).where(C.c.seq > cursor).order_by(C.c.seq).limit(limit)
    if sku is not None:
        query = query.where(C.c.sku == sku)
    if alert_type is not None:
        query = query.where(C.c.type == alert_type)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


def to_sse(change: Any) -> ServerSentEvent:
    change_kind = "raised" if change.event_type.endswith(".raised.v1") else "updated"
    payload = change.payload
    return ServerSentEvent(
        id=str(change.seq),
        data={"type": f"sales-alert.{payload['type']}", "change": change_kind, "data": payload},
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
    feed = feed_of(runtime)
    cursor = last_event_id if last_event_id is not None else await latest_seq(runtime.engine)
    yield ServerSentEvent(comment="connected", retry=settings.sse_retry_ms)
    deadline = time.monotonic() + settings.sse_max_connection_s
    last_sent = time.monotonic()
    while time.monotonic() < deadline:
        if not still_authorized():
            log.info("alert stream closed: its API key was revoked or lost the scope")
            yield ServerSentEvent(comment="key revoked")
            return
        changes = await changes_after(
            runtime.engine, cursor, limit=settings.sse_batch_size, sku=sku, alert_type=alert_type
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
