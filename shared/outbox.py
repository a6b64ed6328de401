"""Transactional outbox: event rows written with the state change, measured against what the broker accepts.
The relay that publishes them is in `shared.relay`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

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
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from shared.events import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, InvalidEvent, parse_envelope
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


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event already encoded as the outbox stores it: `payload` is the CloudEvent's JSON, as
    `CloudEvent.to_json` writes it."""

    event_id: str
    event_type: str
    topic: str
    key: str
    payload: bytes


def check_size(event: EncodedEvent, max_bytes: int) -> None:
    """Measure the event as the producer will: one it must refuse is never stored (`EventTooLarge`)."""
    size = record_size(event.key.encode(), event.payload, HEADERS)
    if size > max_bytes:
        raise EventTooLarge(parse_envelope(event.payload), size, max_bytes)


def encode_event(event: CloudEvent, topic: str, key: str, *, max_bytes: int | None = None) -> EncodedEvent:
    """The event as the outbox stores it, for a statement that writes its outbox row itself; measured as the
    producer will measure it (`EventTooLarge`) when `max_bytes` is given."""
    encoded = EncodedEvent(event.id, event.type, topic, key, event.to_json())
    if max_bytes is not None:
        check_size(encoded, max_bytes)
    return encoded


_ENCODED_INSERTS: dict[tuple[str | None, str], TextClause] = {}


def _encoded_insert(table: Table) -> TextClause:
    statement = _ENCODED_INSERTS.get((table.schema, table.name))
    if statement is None:
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        statement = text(
            f"INSERT INTO {name} (event_id, event_type, topic, key, payload)"
            " SELECT event_id, event_type, topic, key, payload FROM unnest(cast(:event_ids AS text[]),"
            " cast(:event_types AS text[]), cast(:topics AS text[]), cast(:keys AS text[]),"
            " cast(:payloads AS bytea[])) WITH ORDINALITY AS event(event_id, event_type, topic, key, payload, position)"
            # Ids are the relay's publishing order: they follow the order given.
            " ORDER BY position"
        )
        _ENCODED_INSERTS[(table.schema, table.name)] = statement
    return statement


async def record_encoded_events(
    session: AsyncSession, table: Table, events: Sequence[EncodedEvent], *, max_bytes: int | None = None
) -> None:
    """Write events already encoded in the caller's transaction, in one statement whatever their number (in
    their order, so per key they keep it); every one is measured as the producer will measure it, so no row the
    producer must refuse is ever stored (`EventTooLarge`, nothing written)."""
    if not events:
        return
    if max_bytes is not None:
        for ev in events:
            check_size(ev, max_bytes)
    await session.execute(
        _encoded_insert(table),
        {
            "event_ids": [ev.event_id for ev in events],
            "event_types": [ev.event_type for ev in events],
            "topics": [ev.topic for ev in events],
            "keys": [ev.key for ev in events],
            "payloads": [ev.payload for ev in events],
        },
    )


async def record_events(
    session: AsyncSession,
    table: Table,
    events: Sequence[tuple[CloudEvent, str, str]],
    *,
    max_bytes: int | None = None,
) -> None:
    """Write the events of a unit of work in the caller's transaction, in one statement whatever their number and
    in their order (`record_encoded_events`); every one is measured as the producer will measure it, so no row the
    producer must refuse is ever stored (`EventTooLarge`, nothing written)."""
    await record_encoded_events(
        session,
        table,
        [EncodedEvent(ev.id, ev.type, topic, key, ev.to_json()) for ev, topic, key in events],
        max_bytes=max_bytes,
    )


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
