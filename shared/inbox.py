"""Inbox: the events each consumer has processed, written in the handler's transaction to skip duplicates."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import CloudEvent


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def claim(session: AsyncSession, table: Table, consumer: str, event: CloudEvent) -> bool:
    """Mark the event as processed by this consumer; False when it already was (a duplicate)."""
    result = await session.execute(
        insert(table)
        .values(consumer=consumer, event_id=event.id, event_type=event.type)
        .on_conflict_do_nothing()
        .returning(table.c.event_id)
    )
    return result.first() is not None
