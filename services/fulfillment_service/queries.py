"""Read side of the fulfillment API: volumes and spikes, filtered, in keyset pages with opaque cursors."""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Any

from sqlalchemy import select, tuple_

from services.fulfillment_service import tables
from services.fulfillment_service.schemas import SpikeRead, VolumeRead
from shared.db import UnitOfWork
from shared.errors import invalid

V = tables.volumes
S = tables.spikes


def encode_cursor(*key: Any) -> str:
    raw = json.dumps([k.isoformat() if isinstance(k, date) else k for k in key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type) -> list[Any]:
    """The key a cursor carries, typed by `kinds`; a 422 naming `cursor` when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        return [date.fromisoformat(v) if kind is date else kind(v) for v, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError) as exc:
        raise invalid("query.cursor", "is not a cursor this API returned") from exc


async def list_volumes(
    uow: UnitOfWork,
    *,
    sku: str | None,
    warehouse_id: str | None,
    since: date | None,
    until: date | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[VolumeRead], str | None]:
    query = select(V).order_by(V.c.sku, V.c.day, V.c.warehouse_id).limit(limit)
    if sku is not None:
        query = query.where(V.c.sku == sku)
    if warehouse_id is not None:
        query = query.where(V.c.warehouse_id == warehouse_id)
    if since is not None:
        query = query.where(V.c.day >= since)
    if until is not None:
        query = query.where(V.c.day <= until)
    if cursor is not None:
        after = decode_cursor(cursor, str, date, str)
        query = query.where(tuple_(V.c.sku, V.c.day, V.c.warehouse_id) > tuple_(*after))
    rows = (await uow.session.execute(query)).all()
    data = [VolumeRead.model_validate(row._mapping) for row in rows]
    last = data[-1] if len(data) == limit else None
    return data, encode_cursor(last.sku, last.day, last.warehouse_id) if last else None


async def list_spikes(
    uow: UnitOfWork,
    *,
    sku: str | None,
    since: date | None,
    until: date | None,
    include_retracted: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[SpikeRead], str | None]:
    query = select(S).order_by(S.c.day, S.c.sku).limit(limit)
    if not include_retracted:
        query = query.where(S.c.status == "detected")
    if sku is not None:
        query = query.where(S.c.sku == sku)
    if since is not None:
        query = query.where(S.c.day >= since)
    if until is not None:
        query = query.where(S.c.day <= until)
    if cursor is not None:
        after = decode_cursor(cursor, date, str)
        query = query.where(tuple_(S.c.day, S.c.sku) > tuple_(*after))
    rows = (await uow.session.execute(query)).all()
    data = [SpikeRead.model_validate(row._mapping) for row in rows]
    last = data[-1] if len(data) == limit else None
    return data, encode_cursor(last.day, last.sku) if last else None
