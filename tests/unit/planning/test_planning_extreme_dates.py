"""Date arithmetic of the planning core at the edges of the calendar: nothing overflows, and a promotion
running for decades costs no more than one covering the history the baseline reads."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.planning_service.domain import (
    Item,
    Launch,
    Promotion,
    PromotionItem,
    SkuInputs,
    Spike,
    baseline_level,
    plan_many,
    plan_sku,
)
from services.planning_service.domain.forecast import promotion_history_weeks
from services.planning_service.domain.weeks import shift_days
from shared.types import MAX_DATE, MIN_DATE

H = date(2026, 11, 23)


def inputs(sku: str = "SKU-1", **kwargs: object) -> SkuInputs:
    item = Item(sku, sku, on_hand=0, safety_stock=0, baseline_weekly_demand=70)
    return SkuInputs(item, **kwargs)  # type: ignore[arg-type]


def test_shift_days_holds_at_the_ends_of_the_calendar() -> None:
    assert shift_days(date.max, 7 * 52) == date.max
    assert shift_days(date.min, -1) == date.min
    assert shift_days(date(2026, 12, 31), 1) == date(2027, 1, 1)
    assert shift_days(MAX_DATE, 7 * 52) == date(2200, 12, 30)


@pytest.mark.parametrize(
    ("starts_on", "ends_on"),
    [
        (date.min, date.max),
        (date(9999, 12, 1), date.max),
        (date.min, date(1, 1, 9)),
        (MIN_DATE, MAX_DATE),
        (MAX_DATE - timedelta(days=6), MAX_DATE),
    ],
)
def test_a_promotion_with_a_dip_at_any_date_plans_without_overflow(starts_on: date, ends_on: date) -> None:
    promotion = Promotion("P", starts_on, ends_on, (PromotionItem("SKU-1", 50),), 20, 52)
    history = {H - timedelta(weeks=w): 70.0 for w in range(1, 60)}
    plan = plan_sku(inputs(history=history), H, promotions=[promotion])
    assert len(plan.weeks) == 26
    assert all(w.forecast >= 0 for w in plan.weeks)
    assert baseline_level(inputs(history=history), H, [promotion]) >= 0


def test_launches_spikes_and_returns_at_the_ends_of_the_calendar_are_outside_the_horizon() -> None:
    far = inputs(
        spikes=(Spike("SKU-1", date.max, 1e6, 70, False), Spike("SKU-1", date.min, 1e6, 70, False)),
        resellable_returns={date.max: 5.0, date.min: 5.0},
        replacements={date.max: 5.0},
    )
    launches = [Launch("L", "SKU-1", date.max, "SKU-2", 100, 52)]
    (plan,) = plan_many([far, inputs("SKU-2")], H, launches=launches)[:1]
    assert [w.returns_receipts for w in plan.weeks] == [0.0] * 26
    assert [w.sensing_adjustment for w in plan.weeks] == [0.0] * 26


def test_a_promotion_of_two_centuries_distorts_only_the_weeks_the_baseline_reads() -> None:
    promotion = Promotion("P", MIN_DATE, MAX_DATE, tuple(PromotionItem(f"SKU-{i}", 10) for i in range(1000)), 20, 52)
    distorted = promotion_history_weeks([promotion], H)
    weeks = distorted["SKU-1"]
    assert len(weeks) == 156  # three years of history: older weeks carry no weight in the level
    assert min(weeks) == (H - timedelta(weeks=156)).toordinal()
    assert max(weeks) == (H - timedelta(weeks=1)).toordinal()
    # Only the weeks the baseline reads are distorted (1,000 SKUs x 156 weeks, not x 10,000 weeks of the span).
    assert all(len(w) == 156 for w in distorted.values())
