"""Whale curve, totals per segment, market mapping and unprofitable accounts, by hand."""

from dataclasses import replace
from datetime import date

import pytest

from services.returns_service.costing import (
    AccountMonth,
    BehaviourProfile,
    CostAlertType,
    CostRates,
    Drivers,
    LedgerEntry,
    MarketMappingRule,
    UnprofitableRule,
    behaviour_profiles,
    find_segment_mismatches,
    find_unprofitable,
    price,
    suggest_tier,
    suggest_tiers,
    totals_by_account,
    totals_by_segment,
    whale_curve,
)
from services.returns_service.domain import Segment

NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)
RATES = CostRates()
SEGMENTS = {"A": Segment.STRATEGIC, "B": Segment.STABLE, "C": Segment.STABLE}


def month(
    account_id: str, on: date, revenue: float, cogs: float, drivers: Drivers, written_off: float = 0
) -> LedgerEntry:
    row = AccountMonth(
        account_id, on, drivers, revenue, cogs, 10 if written_off else 0, 10 if written_off else 0, written_off, 0
    )
    return price(row, RATES)


# A: big and cheap to serve. cost-to-serve 2 x 12 + 4 x 1.5 + 400 x 0.05 + 2 x 25 = 100; contribution 3900
A_NOV = month("A", NOV, 10_000, 6_000, Drivers(order=2, order_line=4, unit_picked=400, shipment=2))
# B: rush orders, split drops, returns. 3 x 12 + 3 x 1.5 + 50 x 0.05 + 6 x 25 + 3 x 40 + 2 x 15 + 30 + 70
# written off = 443; contribution 1000 - 700 - 443 = -143
B_NOV = month(
    "B",
    NOV,
    1_000,
    700,
    Drivers(order=3, order_line=3, unit_picked=50, shipment=6, rush_order=3, return_line=2, complaint=1),
    written_off=70,
)
# C: one plain order. 12 + 1.5 + 5 + 25 = 43.5; contribution 756.5
C_NOV = month("C", NOV, 2_000, 1_200, Drivers(order=1, order_line=1, unit_picked=100, shipment=1))
ENTRIES = [A_NOV, B_NOV, C_NOV]


def test_hand_priced_entries() -> None:
    assert (A_NOV.cost_to_serve, A_NOV.contribution) == (100, 3900)
    assert (B_NOV.cost_to_serve, B_NOV.contribution) == (443, -143)
    assert (C_NOV.cost_to_serve, C_NOV.contribution) == (43.5, 756.5)


def test_whale_curve_ranks_by_contribution_and_rises_above_the_total_before_falling_back() -> None:
    curve = whale_curve(totals_by_account(ENTRIES, SEGMENTS))
    assert [(p.rank, p.account_id, p.segment) for p in curve] == [
        (1, "A", Segment.STRATEGIC),
        (2, "C", Segment.STABLE),
        (3, "B", Segment.STABLE),
    ]
    assert [p.cumulative_contribution for p in curve] == [3900, 4656.5, 4513.5]
    assert [p.cumulative_share for p in curve] == pytest.approx([3900 / 4513.5, 4656.5 / 4513.5, 1.0])


def test_whale_curve_has_no_share_when_the_total_is_not_positive() -> None:
    curve = whale_curve(totals_by_account([B_NOV], SEGMENTS))
    assert [p.cumulative_share for p in curve] == [None]


def test_totals_per_segment() -> None:
    strategic, stable = totals_by_segment(totals_by_account(ENTRIES, SEGMENTS))
    assert (strategic.segment, strategic.accounts, strategic.totals.contribution) == (Segment.STRATEGIC, 1, 3900)
    assert (stable.segment, stable.accounts) == (Segment.STABLE, 2)
    assert (stable.totals.revenue, stable.totals.cost_to_serve, stable.totals.contribution) == (3000, 486.5, 613.5)
    assert stable.totals.contribution_pct == pytest.approx(100 * 613.5 / 3000)
    shipments = next(p for p in stable.totals.pools if p.name == "shipment")
    assert (shipments.count, shipments.rate, shipments.amount) == (7, 25, 175)


def test_totals_by_account_keep_to_the_months_asked_and_name_unassigned_accounts() -> None:
    december = month("D", DEC, 100, 50, Drivers(order=1))
    rows = totals_by_account([*ENTRIES, december], SEGMENTS, first=DEC, last=date(2026, 12, 31))
    assert [(r.account_id, r.segment, r.totals.revenue) for r in rows] == [("D", None, 100)]
    (unassigned,) = totals_by_segment(rows)
    assert unassigned.segment is None


def test_an_account_whose_rush_orders_and_returns_cost_more_than_it_earns_is_unprofitable() -> None:
    (finding,) = find_unprofitable(ENTRIES, SEGMENTS, date(2026, 12, 10), UnprofitableRule(window_months=3))
    assert (finding.account_id, finding.segment, finding.contribution) == ("B", Segment.STABLE, -143)
    assert (finding.window_start, finding.window_end) == (date(2026, 10, 1), DEC)
    assert [p.name for p in finding.largest_pools] == ["shipment", "rush_order", "returned_goods"]
    assert finding.alert_type is CostAlertType.ACCOUNT_UNPROFITABLE
    assert finding.evidence() == {
        "segment": Segment.STABLE,
        "window": ["2026-10-01", "2026-12-01"],
        "largest_pools": ["shipment", "rush_order", "returned_goods"],
    }
    # November has left a one-month window in December: nothing to report
    assert find_unprofitable(ENTRIES, SEGMENTS, date(2026, 12, 10), UnprofitableRule(window_months=1)) == []


PROFILE = BehaviourProfile(
    account_id="X",
    window_start=date(2026, 7, 1),
    window_end=DEC,
    months=6,
    active_months=6,
    orders=12,
    revenue=100_000,
    revenue_share=0.3,
    units_shipped=5_000,
    returned_units=50,
    complaints=0,
    cost_to_serve=5_000,
    contribution=20_000,
)
RULE = MarketMappingRule()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Segment.STRATEGIC),  # a big, cheap-to-serve, healthy account
        ({"cost_to_serve": 12_000}, Segment.INTEGRATED),  # 12 % of revenue: regular, but not cheap enough
        ({"cost_to_serve": 12_000, "active_months": 3}, Segment.EMERGING),  # irregular too
        ({"returned_units": 500}, Segment.EMERGING),  # 10 % returned: not healthy
        ({"complaints": 2}, Segment.EMERGING),  # 2 complaints in 12 orders: over 10 % per order
        ({"cost_to_serve": 30_000}, Segment.STABLE),  # 30 % of revenue
        ({"cost_to_serve": 20_000, "contribution": -1}, Segment.STABLE),  # loses money
        ({"orders": 2}, None),  # too little history
    ],
)
def test_market_mapping_suggests_the_first_tier_whose_criteria_all_hold(
    changes: dict[str, float], expected: Segment | None
) -> None:
    suggestion = suggest_tier(replace(PROFILE, **changes), Segment.STRATEGIC, RULE)  # type: ignore[arg-type]
    assert suggestion.suggested == expected
    assert suggestion.mismatch == (expected is not None and expected != Segment.STRATEGIC)


def test_a_suggestion_carries_every_criterion_as_evidence() -> None:
    suggestion = suggest_tier(replace(PROFILE, cost_to_serve=12_000), Segment.STRATEGIC, RULE)
    verdicts = {c.name: c.passed for c in suggestion.criteria}
    assert verdicts["strategic.revenue_share"] is True
    assert verdicts["strategic.cost_to_serve_ratio"] is False
    assert verdicts["integrated.regularity"] is True
    assert suggestion.alert_type is CostAlertType.SEGMENT_MISMATCH
    assert suggestion.evidence()["suggested"] == Segment.INTEGRATED
    ratio = next(c for c in suggestion.criteria if c.name == "strategic.cost_to_serve_ratio")
    assert (ratio.value, ratio.threshold, ratio.at_least) == (0.12, 0.10, False)


def test_profiles_from_the_ledger_and_the_mismatch_they_reveal() -> None:
    rule = MarketMappingRule(window_months=2, min_orders=1)
    profiles = {p.account_id: p for p in behaviour_profiles(ENTRIES, DEC, 2)}
    b = profiles["B"]
    assert (b.orders, b.active_months, b.units_shipped, b.returned_units, b.complaints) == (3, 1, 50, 10, 1)
    assert b.revenue_share == pytest.approx(1000 / 13_000)
    assert (b.regularity, b.cost_to_serve_ratio, b.return_rate) == (0.5, 0.443, 0.2)
    suggestions = suggest_tiers(ENTRIES, SEGMENTS, DEC, rule)
    assert suggestions["A"].suggested == Segment.STRATEGIC  # 10000 / 13000 of revenue at 1 % cost-to-serve
    assert suggestions["B"].suggested == Segment.STABLE
    assert suggestions["C"].suggested == Segment.STRATEGIC  # 15 % of revenue at 2 % cost-to-serve
    assert [s.account_id for s in find_segment_mismatches(ENTRIES, SEGMENTS, DEC, rule)] == ["C"]


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="window_months"):
        MarketMappingRule(window_months=0)
    with pytest.raises(ValueError, match="thresholds"):
        MarketMappingRule(max_return_rate=-0.1)
    with pytest.raises(ValueError, match="window_months"):
        UnprofitableRule(window_months=0)


def test_an_account_without_orders_in_the_window_is_not_judged_unprofitable() -> None:
    returns_only = month("R", NOV, 0, 0, Drivers(return_line=2, complaint=1))
    rule = UnprofitableRule(window_months=3)
    assert find_unprofitable([returns_only], {}, date(2026, 12, 10), rule) == []
    judged = find_unprofitable(
        [returns_only], {}, date(2026, 12, 10), UnprofitableRule(window_months=3, min_orders=0, min_shipments=0)
    )
    assert [f.account_id for f in judged] == ["R"]


def test_an_account_whose_orders_have_not_shipped_yet_is_not_judged_unprofitable() -> None:
    booked = month("N", NOV, 0, 0, Drivers(order=1, order_line=2, rush_order=1))
    rule = UnprofitableRule(window_months=3)
    assert booked.contribution < 0  # processing is counted when booked, revenue only once shipped
    assert find_unprofitable([booked], {}, date(2026, 12, 10), rule) == []
    shipped = month("N", NOV, 0, 0, Drivers(order=1, order_line=2, rush_order=1, shipment=1))
    assert [f.account_id for f in find_unprofitable([shipped], {}, date(2026, 12, 10), rule)] == ["N"]
