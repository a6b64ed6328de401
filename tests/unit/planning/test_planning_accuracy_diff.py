"""Forecast accuracy metrics and the plan diff used to publish only real changes."""

from datetime import date, timedelta

import pytest

from services.planning_service.domain import (
    Accuracy,
    Item,
    SkuInputs,
    SkuPlan,
    WeekChange,
    accuracy,
    diff_plans,
    plan_sku,
)

H = date(2026, 11, 23)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def test_wmape_bias_and_mae_over_weeks_present_in_both() -> None:
    snapshots = {week(-3): 100.0, week(-2): 100.0, week(-1): 50.0, week(-9): 999.0}
    actuals = {week(-3): 80.0, week(-2): 120.0, week(-1): 50.0, week(0): 10.0}
    result = accuracy(snapshots, actuals)
    # |20| + |20| + 0 = 40 over 250 ordered; the errors cancel in the bias
    assert result.weeks_compared == 3
    assert result.wmape == pytest.approx(0.16)
    assert result.bias == pytest.approx(0.0)
    assert result.mae == pytest.approx(40 / 3)


def test_over_forecasting_shows_as_positive_bias() -> None:
    assert accuracy({week(0): 100.0, week(1): 100.0}, {week(0): 50.0, week(1): 50.0}) == Accuracy(2, 1.0, 1.0, 50.0)


def test_no_orders_or_no_overlap_leave_ratios_undefined() -> None:
    assert accuracy({week(0): 5.0}, {week(0): 0.0}) == Accuracy(1, None, None, 5.0)
    assert accuracy({week(0): 5.0}, {week(1): 3.0}) == Accuracy(0, None, None, None)


def plan(seed: float, start: date = H, weeks: int = 3) -> SkuPlan:
    return plan_sku(SkuInputs(Item("SKU-1", "W", 0, 0, baseline_weekly_demand=seed)), start, weeks)


def test_identical_plans_have_no_changes() -> None:
    assert diff_plans(plan(50), plan(50)) == []


def test_changed_weeks_are_listed_per_field() -> None:
    changes = diff_plans(plan(50, weeks=1), plan(60, weeks=1))
    assert changes == [
        WeekChange(H, "forecast", 50, 60),
        WeekChange(H, "mps_quantity", 50, 60),
        WeekChange(H, "atp", 50, 60),  # the week's production is free to promise
    ]


def test_a_first_plan_or_a_new_week_reports_every_field_without_before() -> None:
    assert len(diff_plans(None, plan(50))) == 3 * 6
    rolled = diff_plans(plan(50), plan(50, start=week(1)))
    assert {(c.week_start, c.before) for c in rolled} == {(week(3), None)}
