"""Idempotent creates keyed by the client's own id: an identical retry returns the stored resource, the same
id with a different body is a conflict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, bindparam, select, text
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import TextualSelect

from shared.db import DriverStatement
from shared.errors import conflict


def canonical_json(body: Mapping[str, Any]) -> str:
    """The body as the JSON text its fingerprint is taken of: sorted keys, no spaces."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a request body, to tell an identical retry from a different request."""
    return _digest(canonical_json(body))


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class InsertOnce:
    """The statements of an idempotent create (`create_once_by_driver`, compiled by `DriverInsertOnce`): `statement`
    creates the row whose primary key column is `key` (or nothing when the key is taken), `existing` reads the
    stored row by key (`:ident`)."""

    key: str
    statement: TextualSelect
    existing: Select[Any]


def insert_once(
    table: Table,
    key: str,
    columns: Sequence[str],
    *,
    then: str = "",
    joined: str = "",
    joined_columns: Mapping[str, tuple[str, Any]] | None = None,
    then_params: Sequence[BindParameter[Any]] = (),
) -> InsertOnce:
    """`INSERT ... ON CONFLICT (key) DO NOTHING RETURNING <every column>` of `columns` (plus the body and its
    digest), as the CTE `created` of one statement that returns what `created` returns. `then` adds further CTEs
    (`, name AS (...)`) that read `created`: they write only when the row is created, in the same statement;
    `then_params` types the parameters they take. `joined` (a join onto `created`) adds `joined_columns` to the
    created row, by label as (SQL, type)."""
    names = [*columns, "body", "request_hash"]
    extra = joined_columns or {}
    selected = "".join(f", {sql} AS {label}" for label, (sql, _) in extra.items())
    clause = text(
        f"""
        WITH created AS (
            INSERT INTO {table.fullname} ({", ".join(names)}) VALUES ({", ".join(f":{n}" for n in names)})
            ON CONFLICT ({key}) DO NOTHING
            RETURNING {", ".join(column.name for column in table.c)}
        ){then}
        SELECT created.*{selected} FROM created{joined}
        """
    ).bindparams(*(bindparam(name, type_=table.c[name].type) for name in names), *then_params)
    statement = clause.columns(*table.c, **{label: type_ for label, (_, type_) in extra.items()})
    return InsertOnce(key, statement, select(table).where(table.c[key] == bindparam("ident")))


@dataclass(frozen=True)
class DriverInsertOnce:
    """`InsertOnce` compiled for the driver (`create_once_by_driver`)."""

    key: str
    statement: DriverStatement
    existing: DriverStatement

    @classmethod
    def of(cls, insert: InsertOnce) -> DriverInsertOnce:
        return cls(insert.key, DriverStatement.of(insert.statement), DriverStatement.of(insert.existing))


async def create_once_by_driver(
    connection: Any,
    insert: DriverInsertOnce,
    *,
    values: Mapping[str, Any],
    body: Mapping[str, Any],
    what: str,
) -> tuple[Mapping[str, Any], bool]:
    """Insert the row whose key is `values[key]` with `insert`, storing `body` and its fingerprint, on an asyncpg
    connection: the insert (with what its `then` writes) is one statement, so outside a transaction it commits on
    its own or not at all, and inside the caller's it is part of that. Returns the row and whether it was created;
    a concurrent identical create waits on the unique index and then finds the committed row, so it too answers
    with the stored resource; the same id with a different body is a 409."""
    canonical = canonical_json(body)
    digest = _digest(canonical)
    # The body is stored as the JSON its fingerprint is taken of (jsonb keeps no key order).
    arguments = insert.statement.arguments({**values, "body": canonical, "request_hash": digest})
    inserted = await connection.fetchrow(insert.statement.sql, *arguments)
    if inserted is not None:
        return inserted, True
    ident = values[insert.key]
    existing = await _stored(connection, insert, ident, digest, what)
    if existing is None:
        # Not created and not there: a concurrent create of the same id rolled back meanwhile.
        raise RuntimeError(f"{what} '{ident}' was neither created nor found")
    return existing, False


async def stored_once_by_driver(
    connection: Any, insert: DriverInsertOnce, *, ident: str, body: Mapping[str, Any], what: str
) -> Mapping[str, Any] | None:
    """The row `insert` stored under `ident` from this very `body`, read without writing anything: what an identical
    retry answers with when the create itself cannot be tried again. None: nothing is stored under `ident`; a row
    stored from another body is a 409, as `create_once_by_driver` answers it."""
    return await _stored(connection, insert, ident, fingerprint(body), what)


async def _stored(
    connection: Any, insert: DriverInsertOnce, ident: str, digest: str, what: str
) -> Mapping[str, Any] | None:
    existing: Mapping[str, Any] | None = await connection.fetchrow(
        insert.existing.sql, *insert.existing.arguments({"ident": ident})
    )
    if existing is not None and existing["request_hash"] != digest:
        raise conflict(f"{what} '{ident}' already exists with a different body", **{insert.key: ident})
    return existing
