"""SQL of the alert change log as the streams read it (outside any unit of work: a stream holds no
transaction open), and the LISTEN connection that hears committed changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.returns_service import tables

alert_changes = tables.alert_changes

# Committed alert changes are announced on this channel (payload: the change seq), so the SSE streams
# and webhook dispatchers of every replica wake at once; PostgreSQL delivers NOTIFY only on commit.
CHANGES_CHANNEL = "returns_alert_changes"


@dataclass(frozen=True)
class AlertChange:
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
            return int(await conn.scalar(select(func.coalesce(func.max(alert_changes.c.seq), 0))) or 0)

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

    async def listen(self, on_change: Callable[[], None], on_listening: Callable[[], None]) -> None:
        """Call `on_change` for every committed change until the connection is lost (then return or raise);
        `on_listening` once the channel is listened to."""

        def on_notify(*_: Any) -> None:
            on_change()

        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(CHANGES_CHANNEL, on_notify)
            closed = asyncio.Event()
            driver.add_termination_listener(lambda *_: closed.set())
            on_listening()
            try:
                await closed.wait()
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(CHANGES_CHANNEL, on_notify)
