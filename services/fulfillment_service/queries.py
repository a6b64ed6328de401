"""Read side of the fulfillment API: volumes and spikes, filtered, in keyset pages with opaque cursors.

Like every read model, these read through the store and only shape its rows into response models.
"""

from __future__ import annotations

from datetime import date

from services.fulfillment_service.schemas import SpikeRead, VolumeRead
from services.fulfillment_service.store import SpikeFilter, SqlStore, VolumeFilter
from shared.pagination import decode_cursor, next_cursor


async def list_volumes(
    store: SqlStore, where: VolumeFilter, *, limit: int, cursor: str | None
) -> tuple[list[VolumeRead], str | None]:
    after = decode_cursor(cursor, str, date, str) if cursor is not None else None
    rows = await store.list_volumes(where, limit=limit, after=after)
    data = [VolumeRead.model_validate(row) for row in rows]
    return data, next_cursor(data, limit, lambda v: (v.sku, v.day, v.warehouse_id))


async def list_spikes(
    store: SqlStore, where: SpikeFilter, *, limit: int, cursor: str | None
) -> tuple[list[SpikeRead], str | None]:
    after = decode_cursor(cursor, date, str) if cursor is not None else None
    rows = await store.list_spikes(where, limit=limit, after=after)
    data = [SpikeRead.model_validate(row) for row in rows]
    return data, next_cursor(data, limit, lambda s: (s.day, s.sku))
