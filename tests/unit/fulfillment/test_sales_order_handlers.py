"""Sales-order handlers against an in-memory store: booking is idempotent, every change, shipment and the
cancellation publishes the whole order one version up, refusals publish nothing, and the account tier kept from
accounts events (newest version wins) is stamped on the events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.fulfillment_service import handlers
from services.fulfillment_service.domain import (
    BookOrder,
    ChangeOrder,
    LineChange,
    OrderLine,
    RecordShipment,
    SalesOrder,
    ShipLine,
)
from shared.errors import ProblemError
from shared.events import AccountChangedData, EventType, InvalidEvent, SalesOrderData, ShipmentRecordedData
from tests.fakes import RecordingPublisher
from tests.fakes.fulfillment import FakeOrderStore

ORDERED = date(2026, 11, 30)
PROMISED = date(2026, 12, 14)
TODAY = date(2026, 12, 10)


def booking(quantity: int = 100, order_id: str = "SO-1", account_id: str = "ACC-1") -> BookOrder:
    lines = (
        OrderLine("1", "SKU-1", quantity, PROMISED, PROMISED, unit_price=19.5, unit_cost=11.0),
        OrderLine("2", "SKU-2", 30, PROMISED, date(2026, 12, 21)),
    )
    body: dict[str, Any] = {"order_id": order_id, "account_id": account_id, "lines": [quantity, 30]}
    return BookOrder(SalesOrder(order_id, account_id, ORDERED, False, lines), body)


def shipment(*lines: tuple[str, int], shipment_id: str = "SH-1", order_id: str = "SO-1") -> RecordShipment:
    body = {"order_id": order_id, "shipment_id": shipment_id, "lines": [list(line) for line in lines]}
    return RecordShipment(order_id, shipment_id, TODAY, tuple(ShipLine(i, q) for i, q in lines), body)


def account(version: int, segment: str, account_id: str = "ACC-1") -> AccountChangedData:
    return AccountChangedData(
        account_id=account_id,
        name="Acme",
        segment=segment,  # type: ignore[arg-type]
        version=version,
        changed_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


async def booked(store: FakeOrderStore) -> RecordingPublisher:
    publisher = RecordingPublisher()
    await handlers.book_order(store, publisher, booking())
    return publisher


def fields_of(problem: pytest.ExceptionInfo[ProblemError]) -> list[str]:
    return [error["field"] for error in problem.value.errors or []]


async def test_booking_publishes_the_whole_order_at_version_1() -> None:
    store, publisher = FakeOrderStore(), RecordingPublisher()
    written = await handlers.book_order(store, publisher, booking())
    assert written.changed
    [event] = publisher.events
    assert (event.type, event.key, event.subject) == (EventType.SALES_ORDER_BOOKED, "SO-1", "SO-1")
    data: SalesOrderData = event.data
    assert (data.version, data.status, data.tier, data.account_id) == (1, "open", None, "ACC-1")
    assert data.booked_at == written.stored.booked_at
    lines = [(li.line_id, li.quantity, li.shipped_quantity, li.open_quantity, li.promised_on) for li in data.lines]
    assert lines == [("1", 100, 0, 100, PROMISED), ("2", 30, 0, 30, date(2026, 12, 21))]
    assert (data.lines[0].unit_price, data.lines[0].unit_cost) == (19.5, 11.0)


async def test_an_identical_booking_answers_the_stored_order_and_publishes_nothing() -> None:
    store = FakeOrderStore()
    await booked(store)
    again = RecordingPublisher()
    written = await handlers.book_order(store, again, booking())
    assert (written.changed, written.stored.order.version, again.events) == (False, 1, [])


async def test_the_same_order_id_with_another_body_is_a_conflict() -> None:
    store = FakeOrderStore()
    await booked(store)
    other = RecordingPublisher()
    with pytest.raises(ProblemError) as problem:
        await handlers.book_order(store, other, booking(quantity=99))
    assert problem.value.status == 409
    assert other.events == []
    assert store.orders["SO-1"].order.lines[0].quantity == 100


async def test_an_unsound_booking_is_a_422_naming_the_line_and_stores_nothing() -> None:
    store, publisher = FakeOrderStore(), RecordingPublisher()
    bad = booking()
    early = OrderLine("3", "SKU-3", 1, date(2026, 11, 1), PROMISED)
    command = BookOrder(SalesOrder("SO-1", "ACC-1", ORDERED, False, (*bad.order.lines, early)), bad.body)
    with pytest.raises(ProblemError) as problem:
        await handlers.book_order(store, publisher, command)
    assert (problem.value.status, fields_of(problem)) == (422, ["lines.2.requested_on"])
    assert (store.orders, publisher.events) == ({}, [])


async def test_a_change_publishes_the_next_version_and_a_no_op_publishes_nothing() -> None:
    store = FakeOrderStore()
    await booked(store)
    publisher = RecordingPublisher()
    change = ChangeOrder(
        "SO-1", (LineChange("1", quantity=120), LineChange("3", sku="SKU-3", quantity=4, requested_on=PROMISED))
    )
    written = await handlers.change_order(store, publisher, change)
    assert store.locked == ["SO-1"]
    [event] = publisher.events
    assert (event.type, event.data.version) == (EventType.SALES_ORDER_CHANGED, 2)
    assert [(li.line_id, li.quantity) for li in event.data.lines] == [("1", 120), ("2", 30), ("3", 4)]
    # The store holds what was published: the changed and the added line were both written.
    assert [li.quantity for li in store.orders["SO-1"].order.lines] == [120, 30, 4]
    assert written.stored.order.version == 2

    again = RecordingPublisher()
    same = await handlers.change_order(store, again, change)
    assert (same.changed, same.stored.order.version, again.events) == (False, 2, [])


async def test_changing_an_unknown_order_is_a_404() -> None:
    with pytest.raises(ProblemError) as problem:
        await handlers.change_order(FakeOrderStore(), RecordingPublisher(), ChangeOrder("SO-404"))
    assert problem.value.status == 404


async def test_cancel_publishes_once_and_a_cancelled_order_refuses_changes_and_shipments() -> None:
    store = FakeOrderStore()
    await booked(store)
    publisher = RecordingPublisher()
    await handlers.cancel_order(store, publisher, "SO-1")
    await handlers.cancel_order(store, publisher, "SO-1")
    [event] = publisher.events
    assert (event.type, event.data.version, event.data.status) == (EventType.SALES_ORDER_CANCELLED, 2, "cancelled")
    assert [li.open_quantity for li in event.data.lines] == [0, 0]

    with pytest.raises(ProblemError) as changed:
        await handlers.change_order(store, publisher, ChangeOrder("SO-1", (LineChange("1", quantity=1),)))
    with pytest.raises(ProblemError) as shipped:
        await handlers.record_shipment(store, publisher, shipment(("1", 1)), TODAY)
    assert (changed.value.status, shipped.value.status) == (409, 409)
    assert len(publisher.events) == 1


async def test_a_shipment_publishes_the_order_after_the_drop_and_is_idempotent() -> None:
    store = FakeOrderStore()
    await booked(store)
    publisher = RecordingPublisher()
    written = await handlers.record_shipment(store, publisher, shipment(("1", 60)), TODAY)
    assert (written.order.changed, written.shipment.order_version) == (True, 2)
    [event] = publisher.events
    data: ShipmentRecordedData = event.data
    assert (event.type, event.key, data.version, data.status) == (
        EventType.SHIPMENT_RECORDED,
        "SO-1",
        2,
        "partially_shipped",
    )
    assert [(li.shipped_quantity, li.open_quantity) for li in data.lines] == [(60, 40), (0, 30)]
    assert (data.shipment.shipment_id, [(s.line_id, s.sku, s.quantity) for s in data.shipment.lines]) == (
        "SH-1",
        [("1", "SKU-1", 60)],
    )

    retry = RecordingPublisher()
    again = await handlers.record_shipment(store, retry, shipment(("1", 60)), TODAY)
    assert (again.order.changed, again.shipment.shipment_id, retry.events) == (False, "SH-1", [])
    assert store.orders["SO-1"].order.lines[0].shipped == 60  # counted once

    with pytest.raises(ProblemError) as different:
        await handlers.record_shipment(store, retry, shipment(("1", 61)), TODAY)
    assert different.value.status == 409


async def test_shipping_more_than_is_open_is_refused_naming_the_line_and_changes_nothing() -> None:
    store = FakeOrderStore()
    await booked(store)
    publisher = RecordingPublisher()
    await handlers.record_shipment(store, publisher, shipment(("1", 60)), TODAY)
    with pytest.raises(ProblemError) as problem:
        await handlers.record_shipment(store, publisher, shipment(("2", 5), ("1", 41), shipment_id="SH-2"), TODAY)
    assert (problem.value.status, fields_of(problem)) == (409, ["lines.1.quantity"])
    assert "SH-2" not in store.shipments
    assert [line.shipped for line in store.orders["SO-1"].order.lines] == [60, 0]
    assert len(publisher.events) == 1


async def test_versions_grow_by_one_across_booking_change_shipment_and_cancel() -> None:
    store, publisher = FakeOrderStore(), RecordingPublisher()
    await handlers.book_order(store, publisher, booking())
    await handlers.change_order(store, publisher, ChangeOrder("SO-1", (LineChange("2", quantity=35),)))
    await handlers.record_shipment(store, publisher, shipment(("1", 100)), TODAY)
    await handlers.cancel_order(store, publisher, "SO-1")
    assert [(e.type, e.data.version) for e in publisher.events] == [
        (EventType.SALES_ORDER_BOOKED, 1),
        (EventType.SALES_ORDER_CHANGED, 2),
        (EventType.SHIPMENT_RECORDED, 3),
        (EventType.SALES_ORDER_CANCELLED, 4),
    ]


async def test_the_newest_account_version_wins_and_its_tier_is_stamped_on_order_events() -> None:
    store = FakeOrderStore()
    await handlers.on_account_changed(store, account(2, "strategic"))
    await handlers.on_account_changed(store, account(1, "stable"))  # late, older: ignored
    await handlers.on_account_changed(store, account(2, "emerging"))  # same version again: ignored
    assert store.tiers["ACC-1"] == ("strategic", 2)
    publisher = await booked(store)
    assert publisher.events[0].data.tier == "strategic"

    await handlers.on_account_changed(store, account(3, "integrated"))
    later = RecordingPublisher()
    await handlers.cancel_order(store, later, "SO-1")
    assert later.events[0].data.tier == "integrated"


async def test_an_account_id_no_order_can_carry_is_poison() -> None:
    with pytest.raises(InvalidEvent) as poison:
        await handlers.on_account_changed(FakeOrderStore(), account(1, "stable", account_id="A" * 101))
    assert poison.value.reason == "invalid-data"
    assert "data.account_id" in poison.value.detail
