"""Cost-to-serve ledger by hand: a small account with every kind of activity, and each counting rule."""

from datetime import date

import pytest

from services.returns_service.costing import (
    RETURNED_GOODS,
    Activity,
    CostRates,
    LedgerEntry,
    LedgerFacts,
    OrderFact,
    OrderLineFact,
    ShipmentFact,
    ShipmentLineFact,
    build_ledger,
    count_drivers,
    price,
)
from services.returns_service.domain import (
    Complaint,
    ComplaintCategory,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Severity,
)

AS_OF = date(2026, 12, 20)
NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)
RATES = CostRates()  # EUR 12 / 1.5 / 0.05 / 25 / 8 / 40 / 15 / 30


def order(order_id: str, version: int, ordered_on: date, *lines: OrderLineFact, **flags: bool) -> OrderFact:
    return OrderFact(order_id, "ACC-1", version, ordered_on, tuple(lines), **flags)


def shipment(shipment_id: str, order_id: str, shipped_on: date, *lines: tuple[str, float]) -> ShipmentFact:
    return ShipmentFact(shipment_id, order_id, shipped_on, tuple(ShipmentLineFact(i, q) for i, q in lines))


def returned(
    return_id: str, sku: str, quantity: int, on: date, condition: ReturnCondition, **kw: object
) -> ReturnRecord:
    return ReturnRecord(return_id, sku, quantity, "ACC-1", ReturnReason.DEFECTIVE, condition, on, **kw)  # type: ignore[arg-type]


def complaint(complaint_id: str, on: date) -> Complaint:
    return Complaint(complaint_id, "ACC-1", None, ComplaintCategory.DELIVERY, Severity.LOW, "late", on)


PROMISED = date(2026, 11, 10)
SO1_V1 = order(
    "SO-1",
    1,
    date(2026, 11, 2),
    OrderLineFact("L1", "SKU-1", 100, PROMISED, 20, 12),
    OrderLineFact("L2", "SKU-2", 10, PROMISED, 50, 30),
    rush=True,
)
SO1_V2 = order(  # changed: 20 of SKU-2 instead of 10
    "SO-1",
    2,
    date(2026, 11, 2),
    OrderLineFact("L1", "SKU-1", 100, PROMISED, 20, 12),
    OrderLineFact("L2", "SKU-2", 20, PROMISED, 50, 30),
    rush=True,
)
SO2_LINE = OrderLineFact("L1", "SKU-1", 50, date(2026, 12, 1), 20, 12)
SO3_LINE = OrderLineFact("L1", "SKU-1", 10, date(2026, 12, 1), 20, 12)
FACTS = LedgerFacts(
    orders=[
        SO1_V2,
        SO1_V1,  # older version arriving late: ignored
        order("SO-2", 1, date(2026, 11, 20), SO2_LINE),
        order("SO-2", 2, date(2026, 11, 20), SO2_LINE, cancelled=True),  # cancelled after 20 shipped
        order("SO-3", 2, date(2026, 11, 25), SO3_LINE, cancelled=True),  # cancelled, nothing shipped
        order("SO-4", 1, date(2026, 12, 1), OrderLineFact("L1", "SKU-1", 30, date(2026, 12, 28), 20, 12)),
    ],
    shipments=[
        shipment("SH-1", "SO-1", date(2026, 11, 9), ("L1", 100), ("L2", 10)),
        shipment("SH-2", "SO-1", date(2026, 11, 16), ("L2", 10)),  # L2 complete 6 days late: backordered
        shipment("SH-2", "SO-1", date(2026, 11, 16), ("L2", 10)),  # duplicate delivery of the same event
        shipment("SH-3", "SO-2", date(2026, 11, 28), ("L1", 20)),
    ],
    returns=[
        returned(
            "R-1", "SKU-1", 5, date(2026, 11, 20), ReturnCondition.SCRAP, resolution=Resolution.REFUND, order_id="SO-1"
        ),
        returned("R-2", "SKU-2", 2, date(2026, 12, 3), ReturnCondition.RESELLABLE, resolution=Resolution.REPLACEMENT),
    ],
    complaints=[
        complaint("C-1", date(2026, 11, 21)),
        complaint("C-2", date(2026, 12, 5)),
        complaint("C-1", date(2026, 11, 21)),
    ],
)


def pools(entry: LedgerEntry) -> dict[str, tuple[float, float]]:
    return {p.name: (p.count, p.amount) for p in entry.pools}


def test_a_small_account_with_every_kind_of_activity() -> None:
    november, december = build_ledger(FACTS, RATES, AS_OF)
    assert (november.account_id, november.month, november.currency) == ("ACC-1", NOV, "EUR")
    # SO-1 and SO-2 (cancelled, but 20 shipped); SO-3 cancelled unshipped counts nothing.
    # Lines: SO-1's two, SO-2's shipped one. Drops: SH-1, SH-2, SH-3. Units: 100 + 10 + 10 + 20.
    # SO-1 L2 had 10 of 20 by its promised date: one backordered line. SO-1 is a rush order.
    assert pools(november) == {
        "order": (2, 24.0),
        "order_line": (3, 4.5),
        "unit_picked": (140, 7.0),
        "shipment": (3, 75.0),
        "backordered_line": (1, 8.0),
        "rush_order": (1, 40.0),
        "return_line": (1, 15.0),
        "complaint": (1, 30.0),
        RETURNED_GOODS: (5, 60.0),  # R-1 scrapped: 5 x unit cost 12
    }
    # shipped: 100 x 20 + 10 x 50 + 10 x 50 + 20 x 20 = 3400, less R-1's refund of 5 x 20
    assert november.revenue == 3300
    # 100 x 12 + 20 x 30 + 20 x 12 = 2040, less the 5 x 12 that came back with R-1
    assert november.cost_of_goods == 1980
    assert november.cost_to_serve == 263.5
    assert november.contribution == 3300 - 1980 - 263.5
    assert november.contribution_pct == pytest.approx(100 * 1056.5 / 3300)
    assert november.returned_units == 5
    assert november.unpriced_units == 0
    # December: SO-4 (one line, due 28 December: not late yet), R-2 resellable replacement, C-2.
    assert {k: v for k, v in pools(december).items() if v != (0, 0)} == {
        "order": (1, 12.0),
        "order_line": (1, 1.5),
        "return_line": (1, 15.0),
        "complaint": (1, 30.0),
    }
    assert (december.revenue, december.cost_of_goods) == (0, 0)  # a replacement keeps the sale
    assert december.cost_to_serve == 58.5
    assert december.contribution == -58.5
    assert december.contribution_pct is None


def test_arrival_order_and_duplicates_change_nothing() -> None:
    shuffled = LedgerFacts(
        orders=[*reversed(FACTS.orders), SO1_V1, SO1_V2],
        shipments=list(reversed(FACTS.shipments)),
        returns=list(FACTS.returns) * 2,
        complaints=list(reversed(FACTS.complaints)),
    )
    assert build_ledger(shuffled, RATES, AS_OF) == build_ledger(FACTS, RATES, AS_OF)


def test_a_rate_change_reprices_every_month_from_the_same_counts() -> None:
    counted = count_drivers(FACTS, AS_OF)
    dearer = CostRates(currency="USD", shipment=50)
    november = price(counted[0], dearer)
    assert november.currency == "USD"
    assert november.pool(Activity.SHIPMENT).amount == 150
    assert november.cost_to_serve == 263.5 + 75


def test_backorder_counts_only_once_the_promised_day_has_passed() -> None:
    facts = LedgerFacts(orders=[SO1_V2], shipments=[shipment("SH-1", "SO-1", date(2026, 11, 9), ("L1", 100))])
    on_the_day = count_drivers(facts, PROMISED)[0].drivers
    day_after = count_drivers(facts, date(2026, 11, 11))[0].drivers
    assert on_the_day.backordered_line == 0
    assert day_after.backordered_line == 1  # L2: nothing shipped by 10 November


def test_a_shipment_waits_for_its_order() -> None:
    early = shipment("SH-1", "SO-1", date(2026, 11, 9), ("L1", 100))
    assert count_drivers(LedgerFacts(shipments=[early]), AS_OF) == []
    (row,) = count_drivers(LedgerFacts(orders=[SO1_V2], shipments=[early]), AS_OF)
    assert (row.drivers.shipment, row.revenue) == (1, 2000)


def test_units_without_a_price_or_cost_are_reported_not_valued_at_zero_silently() -> None:
    unpriced = order("SO-9", 1, date(2026, 11, 2), OrderLineFact("L1", "SKU-9", 10, PROMISED))
    facts = LedgerFacts(orders=[unpriced], shipments=[shipment("SH-9", "SO-9", date(2026, 11, 3), ("L1", 10))])
    (row,) = count_drivers(facts, AS_OF)
    assert (row.revenue, row.cost_of_goods, row.unpriced_units) == (0, 0, 10)


def test_a_return_without_its_order_is_valued_at_the_newest_known_line_of_its_sku() -> None:
    older = order("SO-A", 1, date(2026, 10, 1), OrderLineFact("L1", "SKU-1", 1, PROMISED, 18, 10))
    newer = order("SO-B", 1, date(2026, 10, 5), OrderLineFact("L1", "SKU-1", 1, PROMISED, 21, 13))
    ret = returned("R-9", "SKU-1", 2, date(2026, 11, 3), ReturnCondition.REFURBISH, resolution=Resolution.CREDIT)
    rows = count_drivers(LedgerFacts(orders=[newer, older], returns=[ret]), AS_OF)
    november = next(r for r in rows if r.month == NOV)
    assert (november.revenue, november.cost_of_goods) == (-42, -26)  # credit: 2 x 21 and 2 x 13 reversed
    assert (november.written_off_units, november.written_off_cost) == (2, 26)  # refurbish is written off


def test_a_return_with_no_resolution_reverses_the_sale_like_a_refund() -> None:
    ret = returned("R-1", "SKU-1", 1, date(2026, 11, 20), ReturnCondition.RESELLABLE, order_id="SO-1")
    november = count_drivers(LedgerFacts(orders=[SO1_V2], returns=[ret]), AS_OF)[0]
    assert (november.revenue, november.cost_of_goods, november.written_off_cost) == (-20, -12, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("currency", "eur", "currency"), ("order", -1.0, "order"), ("shipment", float("nan"), "shipment")],
)
def test_invalid_rates_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CostRates(**{field: value})  # type: ignore[arg-type]
