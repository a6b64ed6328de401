"""Sales orders: what sales committed to an account, line by line, and what has shipped since.

Pure rules on plain values: booking, changing lines, cancelling, recording a shipment (one drop), and the
open, shipped and backordered quantities of a line on a given day. Every accepted change gives the order
its next `version`; a refusal names the field and says whether the request is invalid in itself (422) or
conflicts with the order as it stands (409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any, Literal

MAX_LINES_PER_ORDER = 500


class OrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Refusal:
    """Why a command cannot be applied. `invalid`: the request contradicts itself or names what does not
    exist (422); `conflict`: it contradicts the order as it stands (409)."""

    field: str
    message: str
    kind: Literal["invalid", "conflict"] = "invalid"


class OrderRefused(Exception):
    def __init__(self, refusals: Sequence[Refusal]) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in refusals))
        self.refusals = tuple(refusals)

    @property
    def kind(self) -> Literal["invalid", "conflict"]:
        """A request wrong in itself is refused as such, even where it also contradicts the order."""
        return "invalid" if any(r.kind == "invalid" for r in self.refusals) else "conflict"


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_id: str
    sku: str
    quantity: int
    requested_on: date
    promised_on: date
    unit_price: float | None = None
    unit_cost: float | None = None
    shipped: int = 0


@dataclass(frozen=True)
class SalesOrder:
    order_id: str
    account_id: str
    ordered_on: date
    rush: bool
    lines: tuple[OrderLine, ...]
    cancelled: bool = False
    version: int = 1

    @property
    def status(self) -> OrderStatus:
        if self.cancelled:
            return OrderStatus.CANCELLED
        if all(line.shipped >= line.quantity for line in self.lines):
            return OrderStatus.SHIPPED
        if any(line.shipped > 0 for line in self.lines):
            return OrderStatus.PARTIALLY_SHIPPED
        return OrderStatus.OPEN

    def open_quantity(self, line: OrderLine) -> int:
        """What is still to ship; nothing once the order is cancelled."""
        return 0 if self.cancelled else max(line.quantity - line.shipped, 0)

    def backordered_quantity(self, line: OrderLine, today: date) -> int:
        """A line not fully shipped by the end of its promised day is backordered, for what is still open,
        until it ships."""
        return self.open_quantity(line) if today > line.promised_on else 0

    def line(self, line_id: str) -> OrderLine | None:
        return next((line for line in self.lines if line.line_id == line_id), None)


@dataclass(frozen=True)
class BookOrder:
    """Book a sales order. `body` is the validated request as JSON values (with `promised_on` filled in):
    its fingerprint tells an identical retry from a different request with the same id."""

    order: SalesOrder
    body: Mapping[str, Any]


@dataclass(frozen=True)
class LineChange:
    """A line of a change request: the fields given change; a `line_id` the order lacks adds a line (then
    `sku`, `quantity` and `requested_on` are required)."""

    line_id: str
    sku: str | None = None
    quantity: int | None = None
    requested_on: date | None = None
    promised_on: date | None = None
    unit_price: float | None = None
    unit_cost: float | None = None
    # Which optional fields the request carried, so an explicit null clears a price.
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ChangeOrder:
    order_id: str
    lines: tuple[LineChange, ...] = ()
    rush: bool | None = None


@dataclass(frozen=True)
class ShipLine:
    line_id: str
    quantity: int


@dataclass(frozen=True)
class RecordShipment:
    """A delivery of an order (one drop). `body` is the validated request with the order id: the shipment is
    idempotent on `shipment_id`."""

    order_id: str
    shipment_id: str
    shipped_on: date
    lines: tuple[ShipLine, ...]
    body: Mapping[str, Any]


def _date_refusals(where: str, line: OrderLine, ordered_on: date) -> list[Refusal]:
    refusals = []
    if line.requested_on < ordered_on:
        refusals.append(Refusal(f"{where}.requested_on", f"must be on or after ordered_on ({ordered_on})"))
    if line.promised_on < ordered_on:
        refusals.append(Refusal(f"{where}.promised_on", f"must be on or after ordered_on ({ordered_on})"))
    return refusals


def check_booking(order: SalesOrder) -> None:
    """Raise OrderRefused naming every line that breaks a rule the request schema cannot express."""
    refusals: list[Refusal] = []
    seen: set[str] = set()
    for index, line in enumerate(order.lines):
        if line.line_id in seen:
            refusals.append(Refusal(f"lines.{index}.line_id", f"line {line.line_id!r} appears more than once"))
        seen.add(line.line_id)
        refusals += _date_refusals(f"lines.{index}", line, order.ordered_on)
    if len(order.lines) > MAX_LINES_PER_ORDER:
        refusals.append(Refusal("lines", f"at most {MAX_LINES_PER_ORDER} lines per order"))
    if refusals:
        raise OrderRefused(refusals)


def _changed_line(index: int, current: OrderLine, change: LineChange) -> tuple[OrderLine, list[Refusal]]:
    where = f"lines.{index}"
    refusals: list[Refusal] = []
    if change.sku is not None and change.sku != current.sku:
        message = f"a line's SKU cannot change (line {current.line_id!r} is {current.sku!r})"
        refusals.append(Refusal(f"{where}.sku", message))
    quantity = current.quantity if change.quantity is None else change.quantity
    if quantity < current.shipped:
        refusals.append(
            Refusal(
                f"{where}.quantity",
                f"line {current.line_id!r} has already shipped {current.shipped}; the quantity cannot go below it",
                "conflict",
            )
        )
    updated = replace(
        current,
        quantity=quantity,
        requested_on=change.requested_on or current.requested_on,
        promised_on=change.promised_on or current.promised_on,
        unit_price=change.unit_price if "unit_price" in change.given else current.unit_price,
        unit_cost=change.unit_cost if "unit_cost" in change.given else current.unit_cost,
    )
    return updated, refusals


def _added_line(index: int, change: LineChange) -> tuple[OrderLine | None, list[Refusal]]:
    where = f"lines.{index}"
    missing = [
        Refusal(f"{where}.{name}", f"is required for a new line ({change.line_id!r} is not on the order)")
        for name, value in (("sku", change.sku), ("quantity", change.quantity), ("requested_on", change.requested_on))
        if value is None
    ]
    if missing or change.sku is None or change.quantity is None or change.requested_on is None:
        return None, missing
    line = OrderLine(
        line_id=change.line_id,
        sku=change.sku,
        quantity=change.quantity,
        requested_on=change.requested_on,
        promised_on=change.promised_on or change.requested_on,
        unit_price=change.unit_price,
        unit_cost=change.unit_cost,
    )
    return line, []


def apply_change(order: SalesOrder, change: ChangeOrder) -> SalesOrder:
    """The order with the change applied and its next version, or the order itself when nothing changes.

    Raises OrderRefused: a cancelled order cannot change (409); a quantity below what has shipped (409); a
    new line without sku, quantity or requested_on, a changed SKU, a date before the order date, too many
    lines (422).
    """
    if order.cancelled:
        message = f"order {order.order_id!r} is cancelled and cannot change"
        raise OrderRefused([Refusal("order_id", message, "conflict")])
    lines = list(order.lines)
    positions = {line.line_id: position for position, line in enumerate(lines)}
    refusals: list[Refusal] = []
    seen: set[str] = set()
    for index, change_line in enumerate(change.lines):
        if change_line.line_id in seen:
            refusals.append(Refusal(f"lines.{index}.line_id", f"line {change_line.line_id!r} appears more than once"))
            continue
        seen.add(change_line.line_id)
        position = positions.get(change_line.line_id)
        if position is None:
            added, problems = _added_line(index, change_line)
            refusals += problems
            if added is not None:
                positions[added.line_id] = len(lines)
                lines.append(added)
                refusals += _date_refusals(f"lines.{index}", added, order.ordered_on)
        else:
            updated, problems = _changed_line(index, lines[position], change_line)
            lines[position] = updated
            refusals += problems + _date_refusals(f"lines.{index}", updated, order.ordered_on)
    if len(lines) > MAX_LINES_PER_ORDER:
        message = f"an order holds at most {MAX_LINES_PER_ORDER} lines ({len(lines)} after the change)"
        refusals.append(Refusal("lines", message))
    if refusals:
        raise OrderRefused(refusals)
    changed = replace(order, lines=tuple(lines), rush=order.rush if change.rush is None else change.rush)
    if changed == order:
        return order
    return replace(changed, version=order.version + 1)


def cancel(order: SalesOrder) -> SalesOrder:
    """The cancelled order at its next version (the order itself when already cancelled). A fully shipped
    order has nothing left to cancel (409)."""
    if order.cancelled:
        return order
    if order.status is OrderStatus.SHIPPED:
        raise OrderRefused([Refusal("order_id", f"order {order.order_id!r} has shipped in full", "conflict")])
    return replace(order, cancelled=True, version=order.version + 1)


# A warehouse's local date may be a day ahead of the service's UTC date.
SHIPPED_ON_SLACK_DAYS = 1


def ship(order: SalesOrder, shipment: RecordShipment, today: date) -> SalesOrder:
    """The order after the shipment, at its next version.

    Raises OrderRefused: a cancelled order ships nothing (409); more than a line's open quantity (409, naming
    the line); a line the order lacks, a line twice, a shipment dated before the order or in the future (422).
    """
    if order.cancelled:
        raise OrderRefused([Refusal("order_id", f"order {order.order_id!r} is cancelled", "conflict")])
    refusals: list[Refusal] = []
    if shipment.shipped_on < order.ordered_on:
        refusals.append(Refusal("shipped_on", f"must be on or after the order's ordered_on ({order.ordered_on})"))
    if (shipment.shipped_on - today).days > SHIPPED_ON_SLACK_DAYS:
        refusals.append(Refusal("shipped_on", f"must not be in the future (today is {today})"))
    shipped: dict[str, int] = {}
    for index, ship_line in enumerate(shipment.lines):
        where = f"lines.{index}"
        line = order.line(ship_line.line_id)
        if line is None:
            refusals.append(Refusal(f"{where}.line_id", f"order {order.order_id!r} has no line {ship_line.line_id!r}"))
        elif ship_line.line_id in shipped:
            refusals.append(Refusal(f"{where}.line_id", f"line {ship_line.line_id!r} appears more than once"))
        elif ship_line.quantity > order.open_quantity(line):
            refusals.append(
                Refusal(
                    f"{where}.quantity",
                    f"line {line.line_id!r} has {order.open_quantity(line)} open; cannot ship {ship_line.quantity}",
                    "conflict",
                )
            )
        shipped.setdefault(ship_line.line_id, ship_line.quantity)
    if refusals:
        raise OrderRefused(refusals)
    lines = tuple(replace(line, shipped=line.shipped + shipped.get(line.line_id, 0)) for line in order.lines)
    return replace(order, lines=lines, version=order.version + 1)
