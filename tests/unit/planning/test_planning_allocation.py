"""Nested allocation by tier, the release window, the promise check and the ATP view, hand-computed."""

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from services.planning_service.domain.allocation import (
    AllocationPolicy,
    committed_levels,
    supply_levels,
    tier_availability,
)
from services.planning_service.domain.model import PlanWeek, SkuPlan
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.domain.promises import (
    Limit,
    PromiseRequest,
    Supply,
    WeekDraw,
    atp_table,
    check_promise,
)

H = date(2026, 11, 23)  # Monday of the current week, and today
BOOKED = datetime(2026, 11, 1, 9, 0)
POLICY = AllocationPolicy({Tier.STRATEGIC: 40, Tier.INTEGRATED: 20, Tier.EMERGING: 10, Tier.STABLE: 0}, release_days=7)
# 50 on hand; 100 a week from week 1. Week 1's protection lapses today (its Monday minus 7 days), so only
# weeks 2 and 3 are protected: 40 strategic, 20 integrated, 10 emerging, 30 open to all.
SUPPLY = Supply("SKU-1", H, 50, (0, 100, 100, 100))


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def line(order_id: str, tier: Tier, quantity: float, promised_on: date) -> OrderLine:
    return OrderLine(order_id, "1", f"ACC-{order_id}", tier, "SKU-1", quantity, promised_on, BOOKED)


def availability(lines: list[OrderLine], today: date = H) -> dict[Tier, list[float]]:
    table = atp_table(SUPPLY, lines, today, POLICY)
    return {tier: [w.available_by_tier[tier] for w in table.weeks] for tier in Tier}


def test_supply_splits_into_the_open_share_and_each_tiers_protected_share() -> None:
    levels = supply_levels(50, np.array([0, 100, 100, 100.0]), SUPPLY.week_starts(), POLICY, H)
    assert levels.tolist() == [
        [50, 100, 30, 30],  # open to all: on hand, the lapsed week 1, 30 % of weeks 2 and 3
        [0, 0, 0, 0],  # stable reserves nothing
        [0, 0, 10, 10],
        [0, 0, 20, 20],
        [0, 0, 40, 40],
    ]


def test_each_tier_uses_its_own_share_and_those_below_never_those_above() -> None:
    assert availability([]) == {
        Tier.STABLE: [50, 150, 180, 210],
        Tier.EMERGING: [50, 150, 190, 230],
        Tier.INTEGRATED: [50, 150, 210, 270],
        Tier.STRATEGIC: [50, 150, 250, 350],
    }


def test_a_higher_tier_beyond_its_share_takes_the_nearest_share_below_before_the_open_one() -> None:
    # strategic 50 in week 2: its own 40, then 10 of integrated's 20; emerging and stable lose nothing
    assert availability([line("S", Tier.STRATEGIC, 50, week(2))]) == {
        Tier.STABLE: [50, 150, 180, 210],
        Tier.EMERGING: [50, 150, 190, 230],
        Tier.INTEGRATED: [50, 150, 200, 260],
        Tier.STRATEGIC: [50, 150, 200, 300],
    }


def test_a_booked_line_beyond_its_tiers_shares_is_kept_at_the_cost_of_the_share_just_above() -> None:
    # stable 185 by week 2 but its shares hold 180 then: 5 come out of emerging's 10. All supply up to
    # week 1 is then needed by that line, so nothing can be promised for weeks 0 and 1.
    lines = [line("S", Tier.STRATEGIC, 50, week(2)), line("T", Tier.STABLE, 185, week(2))]
    assert availability(lines) == {
        Tier.STABLE: [0, 0, 0, 25],
        Tier.EMERGING: [0, 0, 5, 45],
        Tier.INTEGRATED: [0, 0, 15, 75],
        Tier.STRATEGIC: [0, 0, 15, 115],
    }


def test_protection_lapses_release_days_before_the_week_starts() -> None:
    # On week 1's Tuesday, week 2 (Monday week(2), lapsing week(1)) is open to all; week 3 is not yet.
    later = availability([], today=week(1) + timedelta(days=1))
    assert later[Tier.STABLE] == [50, 150, 250, 280]
    assert later[Tier.STRATEGIC] == [50, 150, 250, 350]
    # The day before the lapse the week is still protected.
    assert availability([], today=week(1) - timedelta(days=1))[Tier.STABLE] == [50, 150, 180, 210]


def test_without_a_policy_every_tier_sees_the_cumulative_atp() -> None:
    table = atp_table(SUPPLY, [line("S", Tier.STRATEGIC, 120, week(1))], H)
    cumulative = [w.cumulative_atp for w in table.weeks]
    assert cumulative == [30, 30, 130, 230]
    for tier in Tier:
        assert [w.available_by_tier[tier] for w in table.weeks] == cumulative


def test_atp_table_per_week() -> None:
    lines = [line("S", Tier.STRATEGIC, 120, week(1)), line("T", Tier.STABLE, 40, week(3))]
    table = atp_table(SUPPLY, lines, H, POLICY)
    assert [w.week_start for w in table.weeks] == [week(n) for n in range(4)]
    assert [w.receipts for w in table.weeks] == [0, 100, 100, 100]
    assert [w.booked_orders for w in table.weeks] == [0, 120, 0, 40]
    assert [w.atp for w in table.weeks] == [30, 0, 100, 60]  # w1: 100 - 120 = -20, taken from w0's 50
    assert [w.cumulative_atp for w in table.weeks] == [30, 30, 130, 190]
    assert [w.protected for w in table.weeks] == [False, False, True, True]
    assert [w.protection_lapses_on for w in table.weeks] == [week(n) - timedelta(days=7) for n in range(4)]
    assert table.oversold == 0


def test_promise_within_the_allocation_draws_on_the_latest_receipt_first() -> None:
    check = check_promise(SUPPLY, [], PromiseRequest(Tier.STABLE, 100, week(2) + timedelta(days=2)), H, POLICY)
    assert check.can_promise
    assert check.available == 180
    assert check.available_to_top_tier == 250
    assert check.draws == (WeekDraw(week(2), 30), WeekDraw(week(1), 70))
    assert check.earliest_full_on == week(2) + timedelta(days=2)
    assert check.limited_by is None
    assert check.protected_for_higher_tiers == 70
    assert check.protection_lapses_on == week(1)


def test_promise_limited_by_allocation_names_the_protection_and_the_earliest_full_week() -> None:
    check = check_promise(SUPPLY, [], PromiseRequest(Tier.STABLE, 200, week(2) + timedelta(days=2)), H, POLICY)
    assert not check.can_promise
    assert check.limited_by == Limit.ALLOCATION
    assert check.available == 180
    assert check.earliest_full_on == week(3)  # 210 by week 3
    assert sum(d.quantity for d in check.draws) == 180
    assert any("protected for tiers above stable" in reason for reason in check.reasons)
    # the same quantity is promisable to strategic, whose allocation holds all 250
    assert check_promise(SUPPLY, [], PromiseRequest(Tier.STRATEGIC, 200, week(2)), H, POLICY).can_promise


def test_promise_limited_by_supply_when_no_tier_could_have_it() -> None:
    check = check_promise(SUPPLY, [], PromiseRequest(Tier.STRATEGIC, 300, week(2)), H, POLICY)
    assert not check.can_promise
    assert check.limited_by == Limit.SUPPLY
    assert check.earliest_full_on == week(3)
    too_much = check_promise(SUPPLY, [], PromiseRequest(Tier.STRATEGIC, 351, week(2)), H, POLICY)
    assert too_much.earliest_full_on is None
    assert "no week of the horizon covers the full quantity" in too_much.reasons


def test_promise_never_takes_what_booked_lines_need_whatever_their_tier() -> None:
    # a stable line booked for week 1 keeps its 150 even against a strategic request for week 0
    lines = [line("T", Tier.STABLE, 150, week(1))]
    check = check_promise(SUPPLY, lines, PromiseRequest(Tier.STRATEGIC, 1, week(0)), H, POLICY)
    assert not check.can_promise
    assert check.available == 0
    assert check.earliest_full_on == week(2)


def test_promise_after_the_horizon_is_refused_naming_the_horizon() -> None:
    check = check_promise(SUPPLY, [], PromiseRequest(Tier.STRATEGIC, 1, week(4)), H, POLICY)
    assert not check.can_promise
    assert check.limited_by == Limit.HORIZON
    assert check.earliest_full_on is None


def test_promise_check_for_a_past_date_counts_as_now() -> None:
    check = check_promise(SUPPLY, [], PromiseRequest(Tier.STABLE, 10, H - timedelta(days=3)), H, POLICY)
    assert check.can_promise
    assert check.earliest_full_on == H
    assert check.draws == (WeekDraw(week(0), 10),)


def test_lines_of_another_sku_are_a_wiring_error() -> None:
    stray = OrderLine("X", "1", "ACC", Tier.STABLE, "SKU-2", 1, week(0), BOOKED)
    with pytest.raises(ValueError, match="SKU-2"):
        check_promise(SUPPLY, [stray], PromiseRequest(Tier.STABLE, 1, week(0)), H)


@pytest.mark.parametrize(
    ("reserve", "release_days", "message"),
    [
        ({Tier.STRATEGIC: 60, Tier.INTEGRATED: 50}, 7, "more than 100"),
        ({Tier.STRATEGIC: -1}, 7, "reserve_pct.strategic"),
        ({Tier.STRATEGIC: float("nan")}, 7, "reserve_pct.strategic"),
        ({}, -1, "release_days"),
    ],
)
def test_invalid_policies_are_refused(reserve: dict[Tier, float], release_days: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AllocationPolicy(reserve, release_days)


def test_replacements_rank_with_the_top_tier() -> None:
    levels = supply_levels(0, np.array([100.0]), [week(2)], POLICY, H)
    committed = committed_levels(np.zeros((4, 1)), np.array([50.0]))
    # 50 owed as replacements take strategic's 40 and 10 of integrated's 20
    assert tier_availability(levels, committed)[:, 0].tolist() == [30, 40, 50, 50]


def test_supply_from_a_plan_counts_production_and_resellable_returns_and_owes_replacements() -> None:
    weeks = tuple(
        PlanWeek(week(n), 0, 0, 0, 10, 10, returns, replacement, 0, mps, None, 0)
        for n, (returns, replacement, mps) in enumerate([(2, 1, 0), (0, 0, 40), (3, 0, 10)])
    )
    supply = Supply.from_plan(SkuPlan("SKU-1", weeks), on_hand=7)
    assert supply == Supply("SKU-1", H, 7, (2, 40, 13), (1, 0, 0))


def test_supply_refuses_negative_or_infinite_quantities() -> None:
    with pytest.raises(ValueError, match="finite"):
        Supply("SKU-1", H, -1, (0,))
    with pytest.raises(ValueError, match="finite"):
        Supply("SKU-1", H, 0, (float("inf"),))
