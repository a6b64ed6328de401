"""The facts cost-to-serve is counted from (orders, shipments; returns and complaints are the service's own
records) and the activity rates that price them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from enum import StrEnum

from ..domain import Complaint, ReturnRecord


class Activity(StrEnum):
    """The activities time-driven activity-based costing counts, one cost pool each."""

    ORDER = "order"  # an order processed
    ORDER_LINE = "order_line"  # a line entered and picked separately
    UNIT_PICKED = "unit_picked"  # a unit shipped
    SHIPMENT = "shipment"  # a drop: one delivery
    BACKORDERED_LINE = "backordered_line"  # a line not fully shipped by its promised date
    RUSH_ORDER = "rush_order"  # an expedited order
    RETURN_LINE = "return_line"  # a return handled
    COMPLAINT = "complaint"  # a complaint handled


# The pool of returned goods written off at unit cost (everything not resellable); not an activity rate.
RETURNED_GOODS = "returned_goods"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class CostRates:
    """Cost of one occurrence of each activity, in `currency` (ISO 4217).

    The defaults are the documented starting point (a mid-sized distributor's order desk, warehouse and
    customer service, per occurrence); each business sets its own with `PUT /v1/cost-rates`. Rates price
    the counted drivers when the ledger is read, so a change re-prices every month, history included.
    """

    currency: str = "EUR"
    order: float = 12.0
    order_line: float = 1.5
    unit_picked: float = 0.05
    shipment: float = 25.0
    backordered_line: float = 8.0
    rush_order: float = 40.0
    return_line: float = 15.0
    complaint: float = 30.0

    def __post_init__(self) -> None:
        if not _CURRENCY.match(self.currency):
            raise ValueError("currency: must be a three-letter ISO 4217 code")
        for field in fields(self):
            if field.name != "currency":
                value = getattr(self, field.name)
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{field.name}: must be a finite amount >= 0")

    def rate(self, activity: Activity) -> float:
        value: float = getattr(self, activity.value)
        return value


@dataclass(frozen=True, slots=True)
class OrderLineFact:
    line_id: str
    sku: str
    quantity: float
    promised_on: date
    unit_price: float | None = None  # None: unknown, the line's revenue and cost cannot be counted
    unit_cost: float | None = None


@dataclass(frozen=True, slots=True)
class OrderFact:
    """A sales order as of one version (the `salesops.orders` events carry the whole order)."""

    order_id: str
    account_id: str
    version: int
    ordered_on: date
    lines: tuple[OrderLineFact, ...]
    rush: bool = False
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class ShipmentLineFact:
    line_id: str
    quantity: float


@dataclass(frozen=True, slots=True)
class ShipmentFact:
    """One delivery (drop) of an order."""

    shipment_id: str
    order_id: str
    shipped_on: date
    lines: tuple[ShipmentLineFact, ...]


@dataclass(frozen=True)
class LedgerFacts:
    """Everything the ledger is a function of; duplicates and older order versions may be included."""

    orders: Sequence[OrderFact] = ()
    shipments: Sequence[ShipmentFact] = ()
    returns: Sequence[ReturnRecord] = ()
    complaints: Sequence[Complaint] = ()


def month_of(day: date) -> date:
    """The month a day falls in, named by its first day."""
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> int:
    """Number of months in the inclusive span [first, last] (both month starts); 0 when last < first."""
    return max((last.year - first.year) * 12 + last.month - first.month + 1, 0)
