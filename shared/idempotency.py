"""Idempotent creates keyed by the client's own id: an identical retry returns the stored resource, the same
id with a different body is a conflict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Row, Table, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from shared.errors import conflict

_STATEMENTS: dict[tuple[str, str, tuple[str, ...], bool], TextualSelect] = {}


def fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a request body, to tell an identical retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _insert_once(table: Table, key: str, columns: Sequence[str], locked: bool) -> TextualSelect:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING <every column>` of `columns` (plus the body and its digest),
    built once per table and column set; `locked` takes a transaction-level advisory lock (`:lock_key`) before
    the insert, in the same statement."""
    cache_key = (table.fullname, key, tuple(columns), locked)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        names = [*columns, "body", "request_hash"]
        values = ", ".join(f":{name}" for name in names)
        source = f"SELECT {values} FROM locked" if locked else f"VALUES ({values})"
        prefix = "WITH locked AS (SELECT pg_advisory_xact_lock(:lock_key)) " if locked else ""
        clause: TextClause = text(
            f"{prefix}INSERT INTO {table.fullname} ({', '.join(names)}) {source} "
            f"ON CONFLICT ({key}) DO NOTHING RETURNING {', '.join(column.name for column in table.c)}"
        ).bindparams(
            *(bindparam(name, type_=table.c[name].type) for name in names),
            *([bindparam("lock_key", type_=BigInteger)] if locked else []),
        )
        statement = _STATEMENTS[cache_key] = clause.columns(*table.c)
    return statement


async def create_once(
    session: AsyncSession,
    table: Table,
    *,
    key: str,
    values: Mapping[str, Any],
    body: Mapping[str, Any],
    what: str,
    lock_key: int | None = None,
) -> tuple[Row[Any], bool]:
    """Insert the row whose primary key column `key` is `values[key]`, storing `body` and its fingerprint.

    Returns the row and whether it was created. A concurrent identical create waits on the unique index and
    then finds the committed row, so it too answers with the stored resource. With `lock_key`, the
    transaction-level advisory lock of that key is taken first, in the same round trip (whether or not the row
    is created).
    """
    digest = fingerprint(body)
    statement = _insert_once(table, key, list(values), lock_key is not None)
    params = {**values, "body": dict(body), "request_hash": digest}
    if lock_key is not None:
        params["lock_key"] = lock_key
    inserted = (await session.execute(statement, params)).first()
    if inserted is not None:
        return inserted, True
    ident = values[key]
    existing = (await session.execute(select(table).where(table.c[key] == ident))).one()
    if existing.request_hash != digest:
        raise conflict(f"{what} '{ident}' already exists with a different body", **{key: ident})
    return existing, False
