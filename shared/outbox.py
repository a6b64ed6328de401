"""Transactional outbox: event rows written with the state change, measured against what the broker accepts.
The relay that publishes them is in `shared.relay`."""

from __future__ import annotations

import hashlib

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, InvalidEvent
from shared.kafka import record_size

HEADERS = (("content-type", CLOUDEVENTS_CONTENT_TYPE.encode()),)


def outbox_table(metadata: MetaData) -> Table:
    """A service's outbox, declared together with the relay's bookkeeping (`outbox_relay`) in the same schema."""
    Table(
        "outbox_relay",
        metadata,
        Column("relay", String(100), primary_key=True),
        # The broker the relay last published to: another id means a broker that may have lost those events.
        Column("broker_cluster_id", String(200), nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
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
        # Sends the broker answered with a retriable error about this row (an unreachable broker never counts).
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        # A parked row is set aside: the relay goes on without it until an operator retries or drops it.
        Column("parked_at", DateTime(timezone=True), nullable=True),
        Column("park_reason", Text, nullable=True),
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL AND parked_at IS NULL")),
        Index("ix_outbox_parked", "id", postgresql_where=text("parked_at IS NOT NULL")),
    )


class EventTooLarge(InvalidEvent):
    """An event larger than the broker accepts: what caused it cannot be accepted as it is. A request gets 413
    and stores nothing; an incoming event that would cause it is dead-lettered."""

    def __init__(self, event: CloudEvent, size: int, limit: int) -> None:
        super().__init__(
            "event-too-large",
            f"the {event.type} event for '{event.subject or event.id}' would be {size:,} bytes, more than the "
            f"{limit:,} the broker accepts: send fewer or shorter list entries",
        )
        self.event_type = event.type
        self.size = size
        self.limit = limit


async def record_events(
    session: AsyncSession,
    table: Table,
    events: list[tuple[CloudEvent, str, str]],
    *,
    max_bytes: int | None = None,
) -> None:
    """Write the events in the caller's transaction; every one is measured as the producer will measure it, so
    no row the producer must refuse is ever stored (`EventTooLarge`, nothing written)."""
    rows = []
    for ev, topic, key in events:
        payload = ev.to_json()
        if max_bytes is not None:
            size = record_size(key.encode(), payload, HEADERS)
            if size > max_bytes:
                raise EventTooLarge(ev, size, max_bytes)
        rows.append({"event_id": ev.id, "event_type": ev.type, "topic": topic, "key": key, "payload": payload})
    await session.execute(insert(table), rows)


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
