"""Demand sensing with hand-computed expectations: observed excess, confirmed level shifts, one-off spikes."""

from datetime import date, timedelta

import pytest

from services.planning_service.domain import Item, PlanningParams, SkuInputs, SkuPlan, Spike, plan_sku
from services.planning_service.domain.sensing import shift_days

H = date(2026, 11, 23)  # Monday of the current week


def day(n: int) -> date:
    return H + timedelta(days=n)


def inputs(**kwargs: object) -> SkuInputs:
    return SkuInputs(Item("SKU-1", "x", on_hand=0, safety_stock=0, baseline_weekly_demand=70), **kwargs)  # type: ignore[arg-type]


def sensing(p: SkuPlan) -> list[float]:
    return [w.sensing_adjustment for w in p.weeks]


def test_a_spike_day_this_week_adds_its_observed_excess_only() -> None:
    spike = Spike("SKU-1", day(1), units=30, baseline=10, explained=False)
    p = plan_sku(inputs(spikes=(spike,)), H, 4, today=day(2))
    # 30 ordered against 10 expected that day: 20 more this week, nothing extrapolated to later weeks
    assert sensing(p) == [20, 0, 0, 0]
    assert [w.forecast for w in p.weeks] == [90, 70, 70, 70]


def test_a_one_off_spike_last_week_neither_senses_nor_lifts_the_baseline() -> None:
    history = {H - timedelta(weeks=2): 70.0, H - timedelta(weeks=1): 110.0}
    spike = Spike("SKU-1", day(-2), units=50, baseline=10, explained=False)
    p = plan_sku(inputs(history=history, spikes=(spike,)), H, 2, today=day(-1))
    assert sensing(p) == [0, 0]
    # what it ordered above twice the detector's 10 (30 units) is taken out of last week: 110 -> 80, so the
    # level is 70 + 0.3 * 10 = 73; with the whole spike in it would be 70 + 0.3 * 40 = 82
    assert [w.baseline for w in p.weeks] == pytest.approx([73, 73])
    assert plan_sku(inputs(history=history), H, 1).weeks[0].baseline == pytest.approx(82)


def shift_spikes(*days: int) -> tuple[Spike, ...]:
    return tuple(Spike("SKU-1", day(d), units=30, baseline=10, explained=False) for d in days)


def test_a_level_shift_confirmed_over_three_days_moves_the_forecast_to_the_run_rate() -> None:
    recent = {day(d): 10.0 for d in range(-7, -3)} | {day(d): 30.0 for d in range(-3, 0)}
    p = plan_sku(inputs(spikes=shift_spikes(-3, -2, -1), recent_days=recent), H, 6, today=day(-1))
    # 30 a day since the shift began = 210 a week, 140 above the baseline: held four weeks, then halving
    assert sensing(p) == [140, 140, 140, 140, 70, 35]


def test_the_run_rate_counts_every_day_since_the_shift_began_and_only_the_remaining_days_of_this_week() -> None:
    recent = {day(-3): 30.0, day(-2): 30.0, day(-1): 30.0, day(0): 6.0, day(1): 30.0}  # missing days: 0
    spikes = shift_spikes(-3, -2, -1, 1)
    p = plan_sku(inputs(spikes=spikes, recent_days=recent), H, 2, today=day(2))
    rate = (30 * 4 + 6 + 0) / 6  # day -3 .. day 2
    gap = 7 * rate - 70
    # this week: day 1's observed excess (30 - 10) plus the gap over the 4 days still to come
    assert sensing(p) == pytest.approx([20 + gap * 4 / 7, gap])


def test_two_spike_days_do_not_confirm_a_shift() -> None:
    p = plan_sku(inputs(spikes=shift_spikes(-3, -1)), H, 3, today=day(-1))
    assert sensing(p) == [0, 0, 0]


def test_without_daily_volumes_the_spike_units_give_the_rate_until_the_spikes_go_quiet() -> None:
    assert sensing(plan_sku(inputs(spikes=shift_spikes(-3, -2, -1)), H, 2, today=day(-1))) == [140, 140]
    quiet = plan_sku(inputs(spikes=shift_spikes(-31, -30, -29)), H, 2, today=day(-1))
    assert sensing(quiet) == [0, 0]


def test_sensing_never_lowers_and_explained_spikes_are_left_to_the_promotion() -> None:
    low = tuple(Spike("SKU-1", day(d), units=5, baseline=1, explained=False) for d in (-3, -2, -1))
    assert sensing(plan_sku(inputs(spikes=low), H, 2, today=day(-1))) == [0, 0]
    explained = tuple(Spike("SKU-1", day(d), 30, 10, explained=True) for d in (-3, -2, -1, 1))
    assert sensing(plan_sku(inputs(spikes=explained), H, 2, today=day(2))) == [0, 0]


def test_weight_and_confirmation_are_parameters() -> None:
    params = PlanningParams(sensing_weight=0.5, sensing_confirm_days=2, sensing_weeks=1, sensing_decay=0.5)
    p = plan_sku(inputs(spikes=shift_spikes(-2, -1)), H, 3, today=day(-1), params=params)
    assert sensing(p) == [70, 35, 17.5]


@pytest.mark.parametrize(
    ("days", "runs"),
    [
        ([1, 2, 3], [[1, 2, 3]]),
        ([1, 5, 9], []),  # never three within seven days
        ([1, 4, 7, 20, 21, 22, 23], [[1, 4, 7], [20, 21, 22, 23]]),
        ([9, 1, 3, 3], []),
    ],
)
def test_shift_days(days: list[int], runs: list[list[int]]) -> None:
    assert shift_days([day(d) for d in days], 3, 7) == [[day(d) for d in run] for run in runs]
