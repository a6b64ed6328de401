"""Idempotent creates keyed by the client's own id: an identical retry returns the stored resource, the same
id with a different body is a conflict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import conflict


def fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a request body, to tell an identical retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_once(
    session: AsyncSession,
    table: Table,
    *,
    key: str,
    values: Mapping[str, Any],
    body: Mapping[str, Any],
    what: str,
) -> tuple[Row[Any], bool]:
    """Insert the row whose primary key column `key` is `values[key]`, storing `body` and its fingerprint.

    Returns the row and whether it was created. A concurrent identical create waits on the unique index and
    then finds the committed row, so it too answers with the stored resource.
    """
    digest = fingerprint(body)
    inserted = (
        await session.execute(
            insert(table)
            .values(**values, body=dict(body), request_hash=digest)
            .on_conflict_do_nothing(index_elements=[table.c[key]])
            .returning(*table.c)
        )
    ).first()
    if inserted is not None:
        return inserted, True
    ident = values[key]
    existing = (await session.execute(select(table).where(table.c[key] == ident))).one()
    if existing.request_hash != digest:
        raise conflict(f"{what} '{ident}' already exists with a different body", **{key: ident})
    return existing, False
