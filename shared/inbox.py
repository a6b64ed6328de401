"""Inbox: the events each consumer has processed, written in the handler's transaction to skip duplicates."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, DateTime, MetaData, String, Table, TextClause, func, text
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


_CLAIM_MANY: dict[str, TextClause] = {}


def _claim_many_statement(table: Table) -> TextClause:
    statement = _CLAIM_MANY.get(table.fullname)
    if statement is None:
        statement = _CLAIM_MANY[table.fullname] = text(
            f"""
            INSERT INTO {table.fullname} (consumer, event_id, event_type)
            SELECT :consumer, e.event_id, e.event_type
            FROM unnest(CAST(:event_ids AS varchar[]), CAST(:event_types AS varchar[])) AS e (event_id, event_type)
            ON CONFLICT DO NOTHING
            RETURNING event_id
            """
        )
    return statement


async def claim_many(session: AsyncSession, table: Table, consumer: str, events: Sequence[CloudEvent]) -> set[str]:
    """Mark a batch of events as processed by this consumer in one statement; the ids of those that were not
    yet (the others are duplicates). An id that appears twice in the batch is claimed once: the caller
    handles its first occurrence only."""
    if not events:
        return set()
    result = await session.execute(
        _claim_many_statement(table),
        {
            "consumer": consumer,
            "event_ids": [event.id for event in events],
            "event_types": [event.type for event in events],
        },
    )
    return set(result.scalars())
