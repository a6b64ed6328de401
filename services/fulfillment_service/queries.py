"""Read side of the fulfillment API: volumes, spikes and sales orders, filtered, in keyset pages with opaque
cursors; an order's backorders are judged on the day given (the service's today).

Like every read model, these read through the store and only shape its rows into response models.
"""

from __future__ import annotations

from datetime import date

from services.fulfillment_service.domain import SalesOrder
from services.fulfillment_service.schemas import (
    SalesOrderLineRead,
    SalesOrderRead,
    ShipmentLineRead,
    ShipmentRead,
    ShipmentWritten,
    SpikeRead,
    VolumeRead,
)
from services.fulfillment_service.store import (
    OrderFilter,
    SpikeFilter,
    SqlStore,
    StoredOrder,
    StoredShipment,
    VolumeFilter,
)
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


def _order_lines(order: SalesOrder, today: date) -> list[SalesOrderLineRead]:
    return [
        SalesOrderLineRead(
            line_id=line.line_id,
            sku=line.sku,
            quantity=line.quantity,
            requested_on=line.requested_on,
            promised_on=line.promised_on,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
            shipped_quantity=line.shipped,
            open_quantity=order.open_quantity(line),
            backordered_quantity=order.backordered_quantity(line, today),
        )
        for line in order.lines
    ]


def order_read(stored: StoredOrder, tier: str | None, today: date) -> SalesOrderRead:
    order = stored.order
    lines = _order_lines(order, today)
    return SalesOrderRead(
        order_id=order.order_id,
        account_id=order.account_id,
        tier=tier,
        ordered_on=order.ordered_on,
        rush=order.rush,
        status=order.status,
        version=order.version,
        shipped_quantity=sum(line.shipped_quantity for line in lines),
        open_quantity=sum(line.open_quantity for line in lines),
        backordered_quantity=sum(line.backordered_quantity for line in lines),
        as_of=today,
        booked_at=stored.booked_at,
        updated_at=stored.updated_at,
        lines=lines,
    )


def shipment_read(shipment: StoredShipment) -> ShipmentRead:
    return ShipmentRead(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        shipped_on=shipment.shipped_on,
        lines=[ShipmentLineRead(line_id=line.line_id, quantity=line.quantity) for line in shipment.lines],
        order_version=shipment.order_version,
        recorded_at=shipment.recorded_at,
    )


def shipment_written(shipment: StoredShipment, order: SalesOrderRead) -> ShipmentWritten:
    return ShipmentWritten(shipment=shipment_read(shipment), order=order)


async def get_order(store: SqlStore, order_id: str, today: date) -> SalesOrderRead | None:
    stored = await store.order(order_id)
    if stored is None:
        return None
    known = await store.account_tier(stored.order.account_id)
    return order_read(stored, known[0] if known else None, today)


async def list_orders(
    store: SqlStore, where: OrderFilter, *, limit: int, cursor: str | None, today: date
) -> tuple[list[SalesOrderRead], str | None]:
    after = decode_cursor(cursor, str)[0] if cursor is not None else None
    listed = await store.list_orders(where, limit=limit, after=after)
    data = [order_read(item.stored, item.tier, today) for item in listed]
    return data, next_cursor(data, limit, lambda o: (o.order_id,))
