"""Booked orders per week, forecast consumption and APICS available-to-promise, with hand-computed figures."""

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from services.planning_service.domain.atp import available_to_promise, available_to_promise_one
from services.planning_service.domain.mps import net_requirements
from services.planning_service.domain.orders import (
    OrderLine,
    Tier,
    booked_by_tier,
    booked_matrix,
    booked_orders,
    consume_forecast,
    latest_lines,
)

H = date(2026, 11, 23)  # a Monday: the current ISO week
BOOKED = datetime(2026, 11, 1, 9, 0)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def line(order_id: str, quantity: float, promised_on: date, **overrides: object) -> OrderLine:
    values: dict[str, object] = {
        "order_id": order_id,
        "line_id": "1",
        "account_id": "ACC-1",
        "tier": Tier.STABLE,
        "sku": "SKU-1",
        "open_quantity": quantity,
        "promised_on": promised_on,
        "booked_at": BOOKED,
    }
    values.update(overrides)
    return OrderLine(**values)  # type: ignore[arg-type]


def mps_record(
    on_hand: float, forecast: list[float], orders: list[float], lot_size: float, safety_stock: float = 0
) -> tuple[list[float], list[float]]:
    """The textbook MPS record through the planning core's own netting: (mps, projected on hand)."""
    weeks = len(forecast)
    gross = consume_forecast(np.array(forecast), np.array(orders), np.zeros(weeks))
    netting = net_requirements(
        gross[None, :],
        np.zeros((1, weeks)),
        np.array([on_hand]),
        np.array([safety_stock]),
        np.array([lot_size]),
        np.array([np.inf]),
        np.zeros((1, weeks), dtype=np.bool_),
        np.full((1, weeks), np.nan),
    )
    return netting.mps_quantity[0].tolist(), netting.projected_available[0].tolist()


def test_textbook_example_industrial_pumps_reproduced_exactly() -> None:
    # W. J. Stevenson, "Operations Management" (McGraw-Hill), chapter "Aggregate Planning and Master
    # Scheduling", the industrial-pumps master schedule example: 64 pumps on hand; forecast 120 pumps for
    # June and 160 for July spread evenly (30 and 40 a week); committed customer orders 33, 20, 10, 4, 2 in
    # weeks 1-5; lot size 70, produced when projected on hand would go negative.
    forecast = [30, 30, 30, 30, 40, 40, 40, 40]
    orders = [33, 20, 10, 4, 2, 0, 0, 0]
    mps, projected = mps_record(64, forecast, orders, lot_size=70)
    # week 1 subtracts the orders (33), not the forecast (30): orders beyond the forecast consume more
    assert projected == [31, 1, 41, 11, 41, 1, 31, 61]
    assert mps == [0, 0, 70, 0, 70, 0, 70, 70]
    atp = available_to_promise_one(64, np.array(mps), np.array(orders))
    # week 1: 64 + 0 - (33 + 20) = 11; week 3: 70 - (10 + 4) = 56; week 5: 70 - 2 = 68; weeks 7, 8: 70
    assert atp.atp[0].tolist() == [11, 0, 56, 0, 68, 0, 70, 70]
    assert atp.cumulative_atp[0].tolist() == [11, 11, 67, 67, 135, 135, 205, 275]
    assert atp.receipt_weeks[0].tolist() == [True, False, True, False, True, False, True, True]
    assert atp.oversold[0] == 0


def test_same_chapter_problem_with_a_minimum_of_ten_on_hand() -> None:
    # The chapter's end-of-chapter variant, computed by hand: 60 on hand, production "when projected on
    # hand would be less than 10" (safety stock 10), the same forecast and orders, lot size 70.
    forecast = [30, 30, 30, 30, 40, 40, 40, 40]
    orders = [33, 20, 10, 4, 2, 0, 0, 0]
    mps, projected = mps_record(60, forecast, orders, lot_size=70, safety_stock=10)
    assert mps == [0, 70, 0, 70, 0, 70, 0, 70]
    assert projected == [27, 67, 37, 77, 37, 67, 27, 57]
    atp = available_to_promise_one(60, np.array(mps), np.array(orders))
    # week 1: 60 - 33 = 27 (week 2 holds the next receipt); week 2 spans weeks 2-3: 70 - (20 + 10) = 40;
    # week 4 spans weeks 4-5: 70 - (4 + 2) = 64; weeks 6 and 8: 70
    assert atp.atp[0].tolist() == [27, 40, 0, 64, 0, 70, 0, 70]
    assert atp.cumulative_atp[0].tolist() == [27, 67, 67, 131, 131, 201, 201, 271]


def test_look_ahead_takes_a_later_deficit_from_earlier_receipt_weeks() -> None:
    # Discrete ATP: w0 20 - 10 = 10; w1 50 - (15 + 20) = 15; w3 30 - (45 + 5) = -20; w5 40 - 10 = 30.
    # Look-ahead from the back: w3's -20 takes all of w1's 15 and 5 of w0's 10.
    atp = available_to_promise_one(20, np.array([0, 50, 0, 30, 0, 40]), np.array([10, 15, 20, 45, 5, 10]))
    assert atp.atp[0].tolist() == [5, 0, 0, 0, 0, 30]
    assert atp.cumulative_atp[0].tolist() == [5, 5, 5, 5, 5, 35]
    assert atp.oversold[0] == 0


def test_commitments_no_supply_covers_in_time_are_oversold_and_served_from_the_next_receipt() -> None:
    atp = available_to_promise_one(5, np.array([0, 0, 20]), np.array([10, 0, 0]))
    assert atp.oversold[0] == 5
    assert atp.atp[0].tolist() == [0, 0, 15]  # 5 of the week-2 receipt ship late to the week-0 order
    assert atp.cumulative_atp[0].tolist() == [0, 0, 15]


def test_forecast_is_never_subtracted_and_weeks_without_receipts_have_no_atp() -> None:
    atp = available_to_promise_one(100, np.array([0, 0, 0]), np.array([0, 0, 0]))
    assert atp.atp[0].tolist() == [100, 0, 0]
    assert atp.cumulative_atp[0].tolist() == [100, 100, 100]


def test_rows_are_independent_skus() -> None:
    receipts = np.array([[0, 50, 0, 30, 0, 40], [0, 0, 0, 0, 0, 20.0]])
    committed = np.array([[10, 15, 20, 45, 5, 10], [10, 0, 0, 0, 0, 0.0]])
    both = available_to_promise(np.array([20.0, 5.0]), receipts, committed)
    for row, on_hand in enumerate([20.0, 5.0]):
        alone = available_to_promise_one(on_hand, receipts[row], committed[row])
        assert both.atp[row].tolist() == alone.atp[0].tolist()
        assert both.cumulative_atp[row].tolist() == alone.cumulative_atp[0].tolist()
        assert both.oversold[row] == alone.oversold[0]


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shapes"):
        available_to_promise(np.array([1.0]), np.zeros((1, 3)), np.zeros((1, 4)))


def test_forecast_consumption_takes_the_larger_of_forecast_and_orders_plus_replacements() -> None:
    gross = consume_forecast(np.array([100.0, 100, 100]), np.array([40.0, 130, 0]), np.array([5.0, 0, 2]))
    assert gross.tolist() == [105, 130, 102]


def test_booked_orders_by_promised_week_past_due_now_and_beyond_the_horizon_left_out() -> None:
    lines = [
        line("SO-1", 10, H - timedelta(days=3)),  # past due: owed now
        line("SO-2", 20, H + timedelta(days=6)),  # Sunday of week 0
        line("SO-3", 30, week(2) + timedelta(days=2), tier=Tier.STRATEGIC),
        line("SO-4", 40, week(4)),  # beyond a 4-week horizon
        line("SO-5", 0, week(1)),  # fully shipped
    ]
    assert booked_orders(lines, H, 4).tolist() == [30, 0, 30, 0]
    by_tier = booked_by_tier(lines, H, 4)
    assert by_tier[Tier.STABLE.rank - 1].tolist() == [30, 0, 0, 0]
    assert by_tier[Tier.STRATEGIC.rank - 1].tolist() == [0, 0, 30, 0]


def test_only_the_newest_version_of_a_line_counts_whatever_the_arrival_order() -> None:
    v1 = line("SO-1", 10, week(1), version=1)
    v2 = line("SO-1", 25, week(2), version=2)
    cancelled = line("SO-1", 0, week(2), version=3)
    for arrival in ([v1, v2], [v2, v1], [v2, v1, v2, v1]):
        assert booked_orders(arrival, H, 3).tolist() == [0, 0, 25]
    assert booked_orders([cancelled, v1, v2], H, 3).tolist() == [0, 0, 0]
    assert latest_lines([v1, v2, v1]) == [v2]


def test_booked_matrix_rows_follow_the_plan_rows() -> None:
    lines = [line("SO-1", 10, week(0)), line("SO-2", 7, week(1), sku="SKU-2"), line("SO-3", 3, week(1), sku="X")]
    matrix = booked_matrix(lines, {"SKU-2": 0, "SKU-1": 1}, H, 2)
    assert matrix.tolist() == [[0, 7], [10, 0]]


def test_booked_matrix_rows_are_each_sku_s_booked_orders() -> None:
    lines = [
        line("SO-1", 10, H - timedelta(days=9)),  # past due: owed now
        line("SO-2", 4.5, week(1), sku="SKU-2"),
        line("SO-2", 6.25, week(1), sku="SKU-2", version=2),  # the newest version counts
        line("SO-3", 3, week(1) + timedelta(days=6)),
        line("SO-4", 8, week(3)),  # after the horizon
        line("SO-5", 2.5, week(0), sku="SKU-2", tier=Tier.STRATEGIC),
    ]
    matrix = booked_matrix(lines, {"SKU-2": 0, "SKU-1": 1}, H, 3)
    for sku, row in (("SKU-2", 0), ("SKU-1", 1)):
        assert matrix[row].tolist() == booked_orders([ln for ln in lines if ln.sku == sku], H, 3).tolist()
    assert matrix.tolist() == [[2.5, 6.25, 0], [10, 3, 0]]


def test_latest_lines_are_in_priority_order_tier_then_booking() -> None:
    lines = [
        line("A", 1, week(0), tier=Tier.STABLE, booked_at=BOOKED),
        line("B", 1, week(0), tier=Tier.STRATEGIC, booked_at=BOOKED + timedelta(days=5)),
        line("C", 1, week(0), tier=Tier.STRATEGIC, booked_at=BOOKED),
        line("D", 1, week(0), tier=Tier.EMERGING, booked_at=BOOKED),
    ]
    assert [x.order_id for x in latest_lines(lines)] == ["C", "B", "D", "A"]


def test_negative_or_infinite_open_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="open_quantity"):
        line("SO-1", -1, week(0))
    with pytest.raises(ValueError, match="open_quantity"):
        line("SO-1", float("inf"), week(0))
