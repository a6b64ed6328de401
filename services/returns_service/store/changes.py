"""SQL of the alert change log as the streams read it (outside any unit of work: a stream holds no
transaction open), the step that numbers committed changes, and the LISTEN connection that hears them.

Why numbers are given after commit: a stream resumes after the last number it sent, so a number must never
become visible after a greater one. Taken when the change is written (a sequence), numbers commit in any order;
the earlier cure, one lock held by every writer of a change to its commit, put every alert write of every replica
in one line. Instead a change is written unnumbered (its `change_id` identifies it), and `number_pending` numbers
the committed ones in a short transaction of its own that holds the single row of `alert_change_counter` until it
commits: numbering steps take turns, each numbers after the last committed number, so committed numbers always
form a prefix with no hole a later commit could fill. Writers never wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, Text, bindparam, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.returns_service import tables
from shared.db import DriverStatement, driver_connection

alert_changes = tables.alert_changes
counter = tables.alert_change_counter

# Numbered alert changes are announced on this channel (payload: the last number), so the SSE streams of every
# replica wake at once; PostgreSQL delivers NOTIFY only on commit.
CHANGES_CHANNEL = "returns_alert_changes"
# Written (not yet numbered) changes are announced here: it wakes the numbering step and the webhook dispatchers
# (the deliveries were queued with the change).
PENDING_CHANNEL = "returns_alert_changes_pending"


def _number_pending() -> Select[Any]:
    """Numbers the committed, unnumbered changes after the counter's last number (its row locked by
    `_LOCK_COUNTER` in an earlier statement of the transaction, so this one's snapshot sees the last numbering step
    committed), at most `:limit` of them in `change_id` order, advances the counter and returns how many it
    numbered. Announced in the same statement when anything was numbered (PostgreSQL delivers it at the
    commit)."""
    last = select(counter.c.last_seq).where(counter.c.id == 1).scalar_subquery()
    pending = (
        select(
            alert_changes.c.change_id,
            func.row_number().over(order_by=alert_changes.c.change_id).label("rn"),
        )
        .where(alert_changes.c.seq.is_(None))
        .order_by(alert_changes.c.change_id)
        .limit(bindparam("limit", type_=Integer))
        .cte("pending")
    )
    numbered = (
        update(alert_changes)
        .where(alert_changes.c.change_id == pending.c.change_id)
        .values(seq=last + pending.c.rn)
        .returning(alert_changes.c.seq)
        .cte("numbered")
    )
    count = select(func.count()).select_from(numbered).scalar_subquery()
    counted = (
        update(counter)
        .where(counter.c.id == 1)
        .values(last_seq=counter.c.last_seq + count)
        .returning(counter.c.last_seq)
        .cte("counted")
    )
    notified = (
        select(func.pg_notify(CHANGES_CHANNEL, cast(counted.c.last_seq, Text)).label("sent"))
        .where(counted.c.last_seq > last)
        .cte("notified")
    )
    return select(counted.c.last_seq - last, select(func.count()).select_from(notified).scalar_subquery())


# Built once: a numbering step runs after every committed change. The lock goes with the BEGIN (the simple protocol
# takes both at once); the numbering runs on the driver (`shared.db.driver_connection`).
_LOCK_COUNTER = f"BEGIN; SELECT 1 FROM {counter.fullname} WHERE id = 1 FOR UPDATE"
_NUMBER_PENDING = DriverStatement.of(_number_pending())


@dataclass(frozen=True)
class AlertChange:
    change_id: int
    seq: int
    alert_id: str
    revision: int
    event_type: str
    type: str
    sku: str | None
    payload: dict[str, Any]
    created_at: datetime


class ChangeLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def latest_seq(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(counter.c.last_seq).where(counter.c.id == 1)) or 0)

    async def number_pending(self, *, limit: int) -> int:
        """Number up to `limit` committed, unnumbered changes after the last number, in the order they were
        written (so one alert's revisions keep their order); returns how many. Announced at commit. Three round
        trips: BEGIN with the counter's lock, the numbering, COMMIT (a failure leaves the transaction open, and
        `driver_connection` discards the connection, which rolls it back)."""
        async with driver_connection(self.engine) as conn:
            # The counter row is held to the commit: a concurrent step waits here, and its next statement (a new
            # snapshot) sees what this one numbered.
            await conn.execute(_LOCK_COUNTER)
            numbered = int(await conn.fetchval(_NUMBER_PENDING.sql, *_NUMBER_PENDING.arguments({"limit": limit})) or 0)
            await conn.execute("COMMIT")
            return numbered

    async def changes_after(
        self, cursor: int, *, limit: int, sku: str | None, alert_type: str | None
    ) -> list[AlertChange]:
        query = select(alert_changes).where(alert_changes.c.seq > cursor).order_by(alert_changes.c.seq).limit(limit)
        if sku is not None:
            query = query.where(alert_changes.c.sku == sku)
        if alert_type is not None:
            query = query.where(alert_changes.c.type == alert_type)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AlertChange(**row._mapping) for row in rows]

    async def listen(
        self, on_numbered: Callable[[], None], on_pending: Callable[[], None], on_listening: Callable[[], None]
    ) -> None:
        """Call `on_pending` for every committed change and `on_numbered` whenever changes were numbered, until the
        connection is lost (then return or raise); `on_listening` once both channels are listened to."""

        def numbered(*_: Any) -> None:
            on_numbered()

        def pending(*_: Any) -> None:
            on_pending()

        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(CHANGES_CHANNEL, numbered)
            await driver.add_listener(PENDING_CHANNEL, pending)
            closed = asyncio.Event()
            driver.add_termination_listener(lambda *_: closed.set())
            on_listening()
            try:
                await closed.wait()
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(CHANGES_CHANNEL, numbered)
                    await driver.remove_listener(PENDING_CHANNEL, pending)
