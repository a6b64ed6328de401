"""The per-account, per-month cost-to-serve ledger (time-driven activity-based costing).

Counting rules (each driver lands in the month of the date named):
- Orders: the newest version of each order wins; older versions, duplicates and arrival order change
  nothing. An order counts 1 `order` and its lines with a quantity `order_line` (month ordered); a rush
  order also 1 `rush_order`.
- Cancelled orders count only what was shipped before the cancellation: nothing at all when nothing
  shipped; otherwise the order, its lines that shipped anything, its rush flag and its shipments. They
  never count backorders (the customer no longer waits for the rest).
- Shipments: each is one `shipment` (a drop, month shipped); every unit shipped is one `unit_picked` and
  brings revenue (`unit_price`) and cost of goods (`unit_cost`) of its line in the order's newest version.
  A shipment waits for its order: until the order is known it counts nothing.
- Backorders: a line of an open order is one `backordered_line` (month of its promised date) when, on or
  after the day after its promised date (`as_of` decides), less than its quantity shipped by that date.
- Returns (the service's own records): one `return_line` each (month returned). A refund or credit (or no
  resolution recorded) reverses the sale of the returned units: revenue minus `unit_price`, cost of goods
  minus `unit_cost`. A replacement keeps the sale and ships a new unit: the unit returned and the unit sent
  cancel out in cost of goods. Goods not returned `resellable` (refurbish, scrap) are written off at
  `unit_cost` in the `returned_goods` pool. Unit price and cost come from the returned SKU's line on the
  named order, else from the newest order line of that SKU that has them.
- Complaints: one `complaint` each (month received).
Units whose price or cost is unknown are counted as `unpriced_units` instead of being valued at zero
silently. cost-to-serve = every activity pool (count x rate) + returned goods written off;
contribution = revenue - cost of goods - cost-to-serve; contribution % = contribution / revenue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from ..domain import Resolution, ReturnCondition, ReturnRecord
from .facts import (
    RETURNED_GOODS,
    Activity,
    CostRates,
    LedgerFacts,
    OrderFact,
    OrderLineFact,
    ShipmentFact,
    month_of,
)

TOLERANCE = 1e-9
# No resolution recorded counts as a refund: the sale is not assumed to stand.
REVERSING_RESOLUTIONS: frozenset[Resolution | None] = frozenset({Resolution.REFUND, Resolution.CREDIT, None})


@dataclass(frozen=True, slots=True)
class Drivers:
    """How often each activity happened: the behaviour sales can change."""

    order: int = 0
    order_line: int = 0
    unit_picked: float = 0.0
    shipment: int = 0
    backordered_line: int = 0
    rush_order: int = 0
    return_line: int = 0
    complaint: int = 0

    def count(self, activity: Activity) -> float:
        value: float = getattr(self, activity.value)
        return value


@dataclass(frozen=True, slots=True)
class AccountMonth:
    """What one account caused in one month, before pricing: the drivers and the goods' money."""

    account_id: str
    month: date  # first day of the month
    drivers: Drivers
    revenue: float
    cost_of_goods: float
    returned_units: float
    written_off_units: float
    written_off_cost: float
    unpriced_units: float


@dataclass(frozen=True, slots=True)
class Pool:
    name: str  # an Activity value, or RETURNED_GOODS
    count: float  # the driver count (units written off, for returned goods)
    rate: float | None  # None for returned goods, valued at each unit's cost
    amount: float


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    account_id: str
    month: date
    currency: str
    revenue: float
    cost_of_goods: float
    pools: tuple[Pool, ...]  # every activity in Activity order, then returned goods
    cost_to_serve: float
    contribution: float
    contribution_pct: float | None  # None without revenue
    returned_units: float
    unpriced_units: float

    def pool(self, name: str) -> Pool:
        return next(p for p in self.pools if p.name == name)


@dataclass
class _Tally:
    counts: dict[Activity, float] = field(default_factory=lambda: dict.fromkeys(Activity, 0.0))
    revenue: float = 0.0
    cost_of_goods: float = 0.0
    returned_units: float = 0.0
    written_off_units: float = 0.0
    written_off_cost: float = 0.0
    unpriced_units: float = 0.0


T = TypeVar("T")


def latest_facts(items: Iterable[T], key: Callable[[T], str], rank: Callable[[T], tuple[object, ...]]) -> list[T]:
    """One fact per id, the highest `rank` winning (ties settled by the fact's own text, never by arrival
    order), sorted by id so that every sum runs in the same order whatever order the facts came in."""
    best: dict[str, T] = {}
    for item in items:
        held = best.get(key(item))
        if held is None or (rank(item), repr(item)) > (rank(held), repr(held)):
            best[key(item)] = item
    return [best[k] for k in sorted(best)]


def _no_rank(_: object) -> tuple[object, ...]:
    return ()


def count_drivers(facts: LedgerFacts, as_of: date) -> list[AccountMonth]:
    """The rate-free ledger, one row per (account, month) with any activity, sorted by account then month."""
    orders = latest_facts(facts.orders, lambda o: o.order_id, lambda o: (o.version, o.cancelled))
    shipments = latest_facts(facts.shipments, lambda s: s.shipment_id, _no_rank)
    returns = latest_facts(facts.returns, lambda r: r.return_id, _no_rank)
    complaints = latest_facts(facts.complaints, lambda c: c.complaint_id, _no_rank)
    by_id = {order.order_id: order for order in orders}
    tallies: dict[tuple[str, date], _Tally] = {}

    def tally(account_id: str, day: date) -> _Tally:
        return tallies.setdefault((account_id, month_of(day)), _Tally())

    shipped: dict[tuple[str, str], list[tuple[date, float]]] = {}
    for shipment in shipments:
        order = by_id.get(shipment.order_id)
        if order is not None:
            _count_shipment(shipment, order, tally(order.account_id, shipment.shipped_on), shipped)
    for order in orders:
        _count_order(order, shipped, tally, as_of)
    values = _UnitValues(orders)
    for record in returns:
        _count_return(record, values, tally(record.account_id, record.returned_on))
    for complaint in complaints:
        tally(complaint.account_id, complaint.received_on).counts[Activity.COMPLAINT] += 1
    return [_account_month(account_id, month, t) for (account_id, month), t in sorted(tallies.items())]


def _count_shipment(
    shipment: ShipmentFact, order: OrderFact, t: _Tally, shipped: dict[tuple[str, str], list[tuple[date, float]]]
) -> None:
    lines = {line.line_id: line for line in order.lines}
    t.counts[Activity.SHIPMENT] += 1
    for item in shipment.lines:
        t.counts[Activity.UNIT_PICKED] += item.quantity
        shipped.setdefault((order.order_id, item.line_id), []).append((shipment.shipped_on, item.quantity))
        line = lines.get(item.line_id)
        if line is None or line.unit_price is None or line.unit_cost is None:
            t.unpriced_units += item.quantity
        if line is not None and line.unit_price is not None:
            t.revenue += item.quantity * line.unit_price
        if line is not None and line.unit_cost is not None:
            t.cost_of_goods += item.quantity * line.unit_cost


def _count_order(
    order: OrderFact,
    shipped: dict[tuple[str, str], list[tuple[date, float]]],
    tally: Callable[[str, date], _Tally],
    as_of: date,
) -> None:
    def shipped_of(line: OrderLineFact, by: date | None = None) -> float:
        deliveries = shipped.get((order.order_id, line.line_id), [])
        return sum(q for day, q in deliveries if by is None or day <= by)

    if order.cancelled:
        lines = [line for line in order.lines if shipped_of(line) > TOLERANCE]
        if not lines:
            return
    else:
        lines = [line for line in order.lines if line.quantity > TOLERANCE]
    t = tally(order.account_id, order.ordered_on)
    t.counts[Activity.ORDER] += 1
    t.counts[Activity.ORDER_LINE] += len(lines)
    t.counts[Activity.RUSH_ORDER] += 1 if order.rush else 0
    if order.cancelled:
        return
    for line in lines:
        if line.promised_on < as_of and shipped_of(line, by=line.promised_on) < line.quantity - TOLERANCE:
            tally(order.account_id, line.promised_on).counts[Activity.BACKORDERED_LINE] += 1


class _UnitValues:
    """Unit price and cost of returned goods: the order's own line, else the newest known for the SKU."""

    def __init__(self, orders: list[OrderFact]) -> None:
        self._orders = {order.order_id: order for order in orders}
        self._price: dict[str, float] = {}
        self._cost: dict[str, float] = {}
        for order in sorted(orders, key=lambda o: (o.ordered_on, o.order_id)):
            for line in sorted(order.lines, key=lambda x: x.line_id):
                if line.unit_price is not None:
                    self._price[line.sku] = line.unit_price
                if line.unit_cost is not None:
                    self._cost[line.sku] = line.unit_cost

    def of(self, record: ReturnRecord) -> tuple[float | None, float | None]:
        order = self._orders.get(record.order_id) if record.order_id else None
        lines = sorted((x for x in order.lines if x.sku == record.sku), key=lambda x: x.line_id) if order else []
        price = next((x.unit_price for x in lines if x.unit_price is not None), self._price.get(record.sku))
        cost = next((x.unit_cost for x in lines if x.unit_cost is not None), self._cost.get(record.sku))
        return price, cost


def _count_return(record: ReturnRecord, values: _UnitValues, t: _Tally) -> None:
    price, cost = values.of(record)
    units = float(record.quantity)
    t.counts[Activity.RETURN_LINE] += 1
    t.returned_units += units
    reverses = record.resolution in REVERSING_RESOLUTIONS
    writes_off = record.condition is not ReturnCondition.RESELLABLE
    if reverses and price is not None:
        t.revenue -= units * price
    if reverses and cost is not None:
        t.cost_of_goods -= units * cost
    if writes_off:
        t.written_off_units += units
        if cost is not None:
            t.written_off_cost += units * cost
    if ((reverses or writes_off) and cost is None) or (reverses and price is None):
        t.unpriced_units += units


def _account_month(account_id: str, month: date, t: _Tally) -> AccountMonth:
    counts = t.counts
    drivers = Drivers(
        order=int(counts[Activity.ORDER]),
        order_line=int(counts[Activity.ORDER_LINE]),
        unit_picked=counts[Activity.UNIT_PICKED],
        shipment=int(counts[Activity.SHIPMENT]),
        backordered_line=int(counts[Activity.BACKORDERED_LINE]),
        rush_order=int(counts[Activity.RUSH_ORDER]),
        return_line=int(counts[Activity.RETURN_LINE]),
        complaint=int(counts[Activity.COMPLAINT]),
    )
    return AccountMonth(
        account_id=account_id,
        month=month,
        drivers=drivers,
        revenue=t.revenue,
        cost_of_goods=t.cost_of_goods,
        returned_units=t.returned_units,
        written_off_units=t.written_off_units,
        written_off_cost=t.written_off_cost,
        unpriced_units=t.unpriced_units,
    )


def price(row: AccountMonth, rates: CostRates) -> LedgerEntry:
    """The ledger entry of one account-month at the given rates."""
    pools = [Pool(a.value, row.drivers.count(a), rates.rate(a), row.drivers.count(a) * rates.rate(a)) for a in Activity]
    pools.append(Pool(RETURNED_GOODS, row.written_off_units, None, row.written_off_cost))
    cost_to_serve = sum(p.amount for p in pools)
    contribution = row.revenue - row.cost_of_goods - cost_to_serve
    return LedgerEntry(
        account_id=row.account_id,
        month=row.month,
        currency=rates.currency,
        revenue=row.revenue,
        cost_of_goods=row.cost_of_goods,
        pools=tuple(pools),
        cost_to_serve=cost_to_serve,
        contribution=contribution,
        contribution_pct=contribution_pct(contribution, row.revenue),
        returned_units=row.returned_units,
        unpriced_units=row.unpriced_units,
    )


def contribution_pct(contribution: float, revenue: float) -> float | None:
    return 100.0 * contribution / revenue if revenue > TOLERANCE else None


def build_ledger(facts: LedgerFacts, rates: CostRates, as_of: date) -> list[LedgerEntry]:
    """count_drivers priced at `rates`: a function of the set of newest facts, whatever their order."""
    return [price(row, rates) for row in count_drivers(facts, as_of)]


def entries_between(entries: Iterable[LedgerEntry], first: date | None, last: date | None) -> Iterator[LedgerEntry]:
    """Entries whose month lies in [first, last] (either bound open when None; any day names its month)."""
    low = month_of(first) if first else None
    high = month_of(last) if last else None
    for entry in entries:
        if (low is None or entry.month >= low) and (high is None or entry.month <= high):
            yield entry
