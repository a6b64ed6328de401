"""Sales-order rules on plain values: open, shipped and backordered quantities worked by hand, versions, and
the refusals (each naming its field, invalid or conflicting)."""

from __future__ import annotations

from datetime import date

import pytest

from services.fulfillment_service.domain import (
    ChangeOrder,
    LineChange,
    OrderLine,
    OrderRefused,
    OrderStatus,
    RecordShipment,
    SalesOrder,
    ShipLine,
    apply_change,
    cancel,
    check_booking,
    ship,
)

ORDERED = date(2026, 11, 30)
PROMISED = date(2026, 12, 14)
TODAY = date(2026, 12, 10)


def an_order(*lines: OrderLine) -> SalesOrder:
    lines = lines or (OrderLine("1", "SKU-1", 100, PROMISED, PROMISED), OrderLine("2", "SKU-2", 30, PROMISED, PROMISED))
    return SalesOrder("SO-1", "ACC-1", ORDERED, False, tuple(lines))


def shipment(*lines: tuple[str, int], shipped_on: date = TODAY, shipment_id: str = "SH-1") -> RecordShipment:
    return RecordShipment("SO-1", shipment_id, shipped_on, tuple(ShipLine(i, q) for i, q in lines), body={})


def refusal_of(exc: pytest.ExceptionInfo[OrderRefused]) -> list[tuple[str, str]]:
    return [(r.field, r.kind) for r in exc.value.refusals]


# ---------------------------------------------------------------- quantities and backorders, by hand


def test_a_partly_shipped_line_is_backordered_only_once_its_promised_day_has_passed() -> None:
    order = ship(an_order(), shipment(("1", 60)), TODAY)
    line = order.lines[0]
    # 100 ordered, 60 shipped on 10 Dec: 40 open. On the promised day it is not late yet; a day later it is.
    assert (line.shipped, order.open_quantity(line)) == (60, 40)
    assert order.backordered_quantity(line, date(2026, 12, 14)) == 0
    assert order.backordered_quantity(line, date(2026, 12, 15)) == 40
    # The untouched line: 30 open, all of it backordered after the 14th.
    assert order.backordered_quantity(order.lines[1], date(2026, 12, 15)) == 30
    # Shipping the remaining 40 on the 16th ends the backorder.
    later = ship(order, shipment(("1", 40), shipped_on=date(2026, 12, 16), shipment_id="SH-2"), date(2026, 12, 16))
    assert later.backordered_quantity(later.lines[0], date(2026, 12, 16)) == 0
    assert later.backordered_quantity(later.lines[1], date(2026, 12, 16)) == 30


def test_a_cancelled_order_has_nothing_open_and_nothing_backordered() -> None:
    order = cancel(ship(an_order(), shipment(("1", 60)), TODAY))
    line = order.lines[0]
    assert (order.open_quantity(line), order.backordered_quantity(line, date(2027, 1, 1))) == (0, 0)
    assert line.shipped == 60  # what shipped stays shipped


def test_status_follows_the_shipments() -> None:
    order = an_order()
    assert order.status is OrderStatus.OPEN
    partly = ship(order, shipment(("1", 100)), TODAY)
    assert partly.status is OrderStatus.PARTIALLY_SHIPPED
    full = ship(partly, shipment(("2", 30), shipment_id="SH-2"), TODAY)
    assert full.status is OrderStatus.SHIPPED
    assert cancel(partly).status is OrderStatus.CANCELLED


# ---------------------------------------------------------------- versions


def test_every_change_shipment_and_cancel_is_one_version_more() -> None:
    order = an_order()
    assert order.version == 1
    changed = apply_change(order, ChangeOrder("SO-1", (LineChange("1", quantity=120, given=frozenset({"quantity"})),)))
    assert (changed.version, changed.lines[0].quantity) == (2, 120)
    shipped = ship(changed, shipment(("1", 10)), TODAY)
    assert shipped.version == 3
    assert cancel(shipped).version == 4


def test_a_change_that_changes_nothing_keeps_the_version() -> None:
    order = an_order()
    same = apply_change(order, ChangeOrder("SO-1", (LineChange("1", quantity=100, promised_on=PROMISED),)))
    assert same is order


def test_cancelling_twice_is_the_same_cancelled_order() -> None:
    cancelled = cancel(an_order())
    assert cancel(cancelled) is cancelled


# ---------------------------------------------------------------- changes


def test_a_change_moves_dates_adds_a_line_and_keeps_line_order() -> None:
    order = an_order()
    change = ChangeOrder(
        "SO-1",
        (
            LineChange("2", promised_on=date(2026, 12, 21)),
            LineChange("3", sku="SKU-3", quantity=5, requested_on=date(2026, 12, 18), unit_price=9.5),
        ),
        rush=True,
    )
    changed = apply_change(order, change)
    assert [line.line_id for line in changed.lines] == ["1", "2", "3"]
    assert changed.lines[1].promised_on == date(2026, 12, 21)
    assert changed.lines[1].requested_on == PROMISED  # the request stays; only the promise moved
    added = changed.lines[2]
    assert (added.sku, added.quantity, added.promised_on, added.unit_price) == ("SKU-3", 5, date(2026, 12, 18), 9.5)
    assert changed.rush is True


def test_an_explicit_null_clears_a_price_and_an_absent_one_keeps_it() -> None:
    order = an_order(OrderLine("1", "SKU-1", 10, PROMISED, PROMISED, unit_price=19.5, unit_cost=11.0))
    cleared = apply_change(
        order, ChangeOrder("SO-1", (LineChange("1", unit_price=None, given=frozenset({"unit_price"})),))
    )
    assert (cleared.lines[0].unit_price, cleared.lines[0].unit_cost) == (None, 11.0)


def test_quantity_cannot_go_below_what_has_shipped() -> None:
    shipped = ship(an_order(), shipment(("1", 60)), TODAY)
    with pytest.raises(OrderRefused) as refused:
        apply_change(shipped, ChangeOrder("SO-1", (LineChange("2", quantity=20), LineChange("1", quantity=59))))
    assert refusal_of(refused) == [("lines.1.quantity", "conflict")]
    assert refused.value.kind == "conflict"
    assert apply_change(shipped, ChangeOrder("SO-1", (LineChange("1", quantity=60),))).lines[0].quantity == 60


def test_a_cancelled_order_cannot_change() -> None:
    with pytest.raises(OrderRefused) as refused:
        apply_change(cancel(an_order()), ChangeOrder("SO-1", (LineChange("1", quantity=5),)))
    assert refusal_of(refused) == [("order_id", "conflict")]


def test_a_new_line_needs_sku_quantity_and_requested_on() -> None:
    with pytest.raises(OrderRefused) as refused:
        apply_change(an_order(), ChangeOrder("SO-1", (LineChange("9", quantity=5),)))
    assert refusal_of(refused) == [("lines.0.sku", "invalid"), ("lines.0.requested_on", "invalid")]


def test_a_line_keeps_its_sku_and_dates_stay_on_or_after_the_order_date() -> None:
    change = ChangeOrder("SO-1", (LineChange("1", sku="SKU-9"), LineChange("2", promised_on=date(2026, 11, 1))))
    with pytest.raises(OrderRefused) as refused:
        apply_change(an_order(), change)
    assert refusal_of(refused) == [("lines.0.sku", "invalid"), ("lines.1.promised_on", "invalid")]


def test_an_invalid_field_is_refused_as_invalid_even_beside_a_conflict() -> None:
    shipped = ship(an_order(), shipment(("1", 60)), TODAY)
    with pytest.raises(OrderRefused) as refused:
        apply_change(shipped, ChangeOrder("SO-1", (LineChange("1", quantity=1), LineChange("9"))))
    assert refused.value.kind == "invalid"


def test_an_order_holds_at_most_500_lines_after_a_change() -> None:
    lines = tuple(OrderLine(str(i), "SKU-1", 1, PROMISED, PROMISED) for i in range(500))
    with pytest.raises(OrderRefused) as refused:
        apply_change(
            an_order(*lines), ChangeOrder("SO-1", (LineChange("new", sku="S", quantity=1, requested_on=PROMISED),))
        )
    assert refusal_of(refused) == [("lines", "invalid")]


# ---------------------------------------------------------------- booking and shipments


def test_booking_refuses_a_repeated_line_id_and_dates_before_the_order() -> None:
    order = an_order(
        OrderLine("1", "SKU-1", 1, PROMISED, PROMISED),
        OrderLine("1", "SKU-2", 1, PROMISED, PROMISED),
        OrderLine("3", "SKU-3", 1, date(2026, 11, 29), PROMISED),
    )
    with pytest.raises(OrderRefused) as refused:
        check_booking(order)
    assert refusal_of(refused) == [("lines.1.line_id", "invalid"), ("lines.2.requested_on", "invalid")]
    check_booking(an_order())  # a sound order passes


def test_a_shipment_cannot_take_more_than_is_open_and_names_the_line() -> None:
    order = ship(an_order(), shipment(("1", 60)), TODAY)
    with pytest.raises(OrderRefused) as refused:
        ship(order, shipment(("2", 30), ("1", 41), shipment_id="SH-2"), TODAY)
    assert refusal_of(refused) == [("lines.1.quantity", "conflict")]
    assert "line '1' has 40 open" in str(refused.value)


def test_a_shipment_names_unknown_and_repeated_lines_and_bad_dates() -> None:
    with pytest.raises(OrderRefused) as refused:
        ship(an_order(), shipment(("7", 1), ("1", 1), ("1", 1), shipped_on=date(2026, 11, 1)), TODAY)
    assert refusal_of(refused) == [
        ("shipped_on", "invalid"),
        ("lines.0.line_id", "invalid"),
        ("lines.2.line_id", "invalid"),
    ]
    with pytest.raises(OrderRefused) as future:
        ship(an_order(), shipment(("1", 1), shipped_on=date(2026, 12, 12)), TODAY)
    assert refusal_of(future) == [("shipped_on", "invalid")]
    # One day ahead is a warehouse's local date, not the future.
    assert ship(an_order(), shipment(("1", 1), shipped_on=date(2026, 12, 11)), TODAY).lines[0].shipped == 1


def test_nothing_ships_from_a_cancelled_order_and_a_shipped_order_cannot_be_cancelled() -> None:
    with pytest.raises(OrderRefused) as refused:
        ship(cancel(an_order()), shipment(("1", 1)), TODAY)
    assert refusal_of(refused) == [("order_id", "conflict")]
    full = ship(an_order(), shipment(("1", 100), ("2", 30)), TODAY)
    with pytest.raises(OrderRefused) as shipped:
        cancel(full)
    assert refusal_of(shipped) == [("order_id", "conflict")]
