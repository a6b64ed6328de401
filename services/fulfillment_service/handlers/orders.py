"""Sales-order commands and the accounts events: load the order (locked), ask the domain, save, and publish the
whole order at its new version on `salesops.orders`, keyed by order id. Handlers take the store and the unit
of work's publisher as parameters; only the boundary commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import structlog

from services.fulfillment_service.domain.orders import (
    BookOrder,
    ChangeOrder,
    OrderLine,
    OrderRefused,
    RecordShipment,
    SalesOrder,
    apply_change,
    cancel,
    check_booking,
    ship,
)
from services.fulfillment_service.store import OrderStore, StoredOrder, StoredShipment
from shared.errors import ProblemError, conflict, not_found
from shared.events import (
    AccountChangedData,
    EventType,
    InvalidEvent,
    SalesOrderData,
    SalesOrderLineData,
    ShipmentData,
    ShipmentLineData,
    ShipmentRecordedData,
)
from shared.idempotency import fingerprint
from shared.ports import Publisher

log = structlog.get_logger("salesops.fulfillment")

# The longest account id an order can carry (the API's identifier limit, and the column's).
MAX_ACCOUNT_ID_LENGTH = 100


@dataclass(frozen=True)
class WrittenOrder:
    """An order as a command left it, the account's tier as this service knows it, and whether anything was
    written (and so published)."""

    stored: StoredOrder
    tier: str | None
    changed: bool


@dataclass(frozen=True)
class WrittenShipment:
    shipment: StoredShipment
    order: WrittenOrder


def refused(exc: OrderRefused) -> ProblemError:
    """422 when the request is wrong in itself, 409 when it only contradicts the order as it stands; every
    offending field is named."""
    errors = [{"field": r.field, "message": r.message} for r in exc.refusals]
    if exc.kind == "conflict":
        return ProblemError(409, "Conflict", str(exc), errors=errors)
    return ProblemError(422, "Unprocessable Entity", str(exc), errors=errors)


def order_data(stored: StoredOrder, tier: str | None) -> SalesOrderData:
    order = stored.order
    return SalesOrderData.model_validate(
        {
            "order_id": order.order_id,
            "account_id": order.account_id,
            "tier": tier,
            "ordered_on": order.ordered_on,
            "rush": order.rush,
            "status": order.status.value,
            "version": order.version,
            "booked_at": stored.booked_at,
            "lines": [_line_data(order, line) for line in order.lines],
        }
    )


def _line_data(order: SalesOrder, line: OrderLine) -> SalesOrderLineData:
    return SalesOrderLineData(
        line_id=line.line_id,
        sku=line.sku,
        quantity=line.quantity,
        requested_on=line.requested_on,
        promised_on=line.promised_on,
        unit_price=line.unit_price,
        unit_cost=line.unit_cost,
        shipped_quantity=line.shipped,
        open_quantity=order.open_quantity(line),
    )


async def _tier(store: OrderStore, account_id: str) -> str | None:
    known = await store.account_tier(account_id)
    return known[0] if known else None


async def _load_for_update(store: OrderStore, order_id: str) -> StoredOrder:
    stored = await store.order(order_id, lock=True)
    if stored is None:
        raise not_found("sales order", order_id)
    return stored


def _changed_lines(before: SalesOrder, after: SalesOrder) -> list[OrderLine]:
    old = {line.line_id: line for line in before.lines}
    return [line for line in after.lines if old.get(line.line_id) != line]


async def book_order(store: OrderStore, publisher: Publisher, command: BookOrder) -> WrittenOrder:
    """Book an order and announce it at version 1; an identical retry answers with the stored order (as it is
    now) and publishes nothing, the same id with a different body is a 409."""
    try:
        check_booking(command.order)
    except OrderRefused as exc:
        raise refused(exc) from exc
    request_hash = fingerprint(command.body)
    inserted = await store.insert_order(command.order, request_hash=request_hash)
    if inserted is None:
        stored = await store.order(command.order.order_id)
        assert stored is not None  # the insert found it
        if stored.request_hash != request_hash:
            raise conflict(
                f"sales order '{command.order.order_id}' already exists with a different body",
                order_id=command.order.order_id,
            )
        return WrittenOrder(stored, await _tier(store, stored.order.account_id), changed=False)
    tier = await _tier(store, inserted.order.account_id)
    publisher.publish(
        EventType.SALES_ORDER_BOOKED,
        key=inserted.order.order_id,
        subject=inserted.order.order_id,
        data=order_data(inserted, tier),
    )
    return WrittenOrder(inserted, tier, changed=True)


async def change_order(store: OrderStore, publisher: Publisher, command: ChangeOrder) -> WrittenOrder:
    """Change lines (quantity, dates, prices) and add lines; publishes `changed` at the next version when
    anything changed."""
    current = await _load_for_update(store, command.order_id)
    try:
        changed = apply_change(current.order, command)
    except OrderRefused as exc:
        raise refused(exc) from exc
    tier = await _tier(store, current.order.account_id)
    if changed == current.order:
        return WrittenOrder(current, tier, changed=False)
    saved = await store.save_order(changed, _changed_lines(current.order, changed))
    publisher.publish(
        EventType.SALES_ORDER_CHANGED, key=command.order_id, subject=command.order_id, data=order_data(saved, tier)
    )
    return WrittenOrder(saved, tier, changed=True)


async def cancel_order(store: OrderStore, publisher: Publisher, order_id: str) -> WrittenOrder:
    """Cancel what is still open, once: a repeated cancel answers with the cancelled order, publishing nothing."""
    current = await _load_for_update(store, order_id)
    try:
        cancelled = cancel(current.order)
    except OrderRefused as exc:
        raise refused(exc) from exc
    tier = await _tier(store, current.order.account_id)
    if cancelled == current.order:
        return WrittenOrder(current, tier, changed=False)
    saved = await store.save_order(cancelled, [])
    publisher.publish(EventType.SALES_ORDER_CANCELLED, key=order_id, subject=order_id, data=order_data(saved, tier))
    return WrittenOrder(saved, tier, changed=True)


def _same_shipment(stored: StoredShipment, request_hash: str) -> StoredShipment:
    if stored.request_hash != request_hash:
        raise conflict(
            f"shipment '{stored.shipment_id}' already exists with a different body", shipment_id=stored.shipment_id
        )
    return stored


async def record_shipment(
    store: OrderStore, publisher: Publisher, command: RecordShipment, today: date
) -> WrittenShipment:
    """Record one drop against the order's open lines; idempotent on `shipment_id` like a create. Publishes
    `salesops.shipment.recorded.v1` with the order after the drop."""
    current = await _load_for_update(store, command.order_id)
    request_hash = fingerprint(command.body)
    existing = await store.shipment(command.shipment_id)
    if existing is not None:
        same = _same_shipment(existing, request_hash)
        return WrittenShipment(same, WrittenOrder(current, await _tier(store, current.order.account_id), False))
    try:
        shipped = ship(current.order, command, today)
    except OrderRefused as exc:
        raise refused(exc) from exc
    inserted = await store.insert_shipment(command, request_hash=request_hash, order_version=shipped.version)
    if inserted is None:
        # Recorded meanwhile for another order: this order's row lock rules out a retry of the same one.
        raise conflict(
            f"shipment '{command.shipment_id}' already exists with a different body", shipment_id=command.shipment_id
        )
    saved = await store.save_order(shipped, _changed_lines(current.order, shipped))
    tier = await _tier(store, current.order.account_id)
    lines_by_id = {line.line_id: line for line in shipped.lines}
    data = ShipmentRecordedData.model_validate(
        {
            **order_data(saved, tier).model_dump(),
            "shipment": ShipmentData(
                shipment_id=inserted.shipment_id,
                shipped_on=inserted.shipped_on,
                lines=[
                    ShipmentLineData(line_id=line.line_id, sku=lines_by_id[line.line_id].sku, quantity=line.quantity)
                    for line in inserted.lines
                ],
            ),
        }
    )
    publisher.publish(EventType.SHIPMENT_RECORDED, key=command.order_id, subject=command.order_id, data=data)
    return WrittenShipment(inserted, WrittenOrder(saved, tier, changed=True))


async def on_account_changed(store: OrderStore, data: AccountChangedData) -> None:
    """Keep the account's tier from its newest version; an older or repeated version changes nothing."""
    if len(data.account_id) > MAX_ACCOUNT_ID_LENGTH:
        raise InvalidEvent(
            "invalid-data", f"data.account_id: longer than the {MAX_ACCOUNT_ID_LENGTH} characters an order's may be"
        )
    kept = await store.save_account_tier(
        data.account_id, segment=data.segment, version=data.version, changed_at=data.changed_at
    )
    if not kept:
        log.info("older account version ignored", account_id=data.account_id, version=data.version)
