"""Spike rule: hand-computed baselines against flat, noisy, seasonal and shifting histories."""

import math
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fulfillment_service.domain import (
    SpikeRule,
    days_to_reevaluate,
    detect_spike,
    detect_spikes,
)

MONDAY = date(2026, 11, 23)
RULE = SpikeRule()


def history(days: int, value: Callable[[date], float], until: date = MONDAY) -> dict[date, float]:
    """`days` days of figures ending the day before `until`."""
    return {until - timedelta(days=i): value(until - timedelta(days=i)) for i in range(1, days + 1)}


def with_day(series: dict[date, float], day: date, units: float) -> dict[date, float]:
    return {**series, day: units}


def test_rule_defaults_are_the_documented_ones() -> None:
    documented = SpikeRule(
        baseline_weeks=8,
        level_days=14,
        min_history_days=14,
        min_same_weekday=2,
        z_threshold=3.0,
        min_ratio=1.5,
        min_units=10.0,
        min_sigma=1.0,
    )
    assert documented == RULE


def test_flat_history_does_not_spike() -> None:
    flat = history(28, lambda d: 100)
    assert detect_spike(with_day(flat, MONDAY, 100), MONDAY, RULE) is None


def test_above_sigma_but_below_min_ratio_is_not_a_spike() -> None:
    # baseline 100, sigma = sqrt(100) = 10: 140 clears 100 + 3 * 10 but 140 / 100 < 1.5.
    flat = history(28, lambda d: 100)
    assert detect_spike(with_day(flat, MONDAY, 140), MONDAY, RULE) is None


def test_jump_on_flat_history_is_a_spike_with_the_hand_computed_figures() -> None:
    flat = history(28, lambda d: 100)
    spike = detect_spike(with_day(flat, MONDAY, 250), MONDAY, RULE, sku="SKU-1")
    assert spike is not None
    assert spike.sku == "SKU-1"
    assert spike.day == MONDAY
    assert (spike.units, spike.baseline, spike.seasonal_baseline, spike.level) == (250, 100, 100, 100)
    assert spike.sigma == pytest.approx(10.0)
    assert spike.ratio == pytest.approx(2.5)
    assert spike.excess_units == pytest.approx(150)
    assert spike.z_score == pytest.approx(15.0)
    assert spike.explained_by_promotion_id is None


def alternating_weeks(d: date) -> float:
    # Whole weeks alternate 90 / 110, so every weekday has the values [90, 110, 90, 110].
    return 90 if ((MONDAY - d).days - 1) // 7 % 2 else 110


def test_noisy_history_uses_the_mad_of_weekday_residuals() -> None:
    # seasonal = lower median of [90, 90, 110, 110] = 90; level = median of the last 14 days
    # (7 x 110, 7 x 90) = 100; baseline = max = 100. Residuals |x - 90|: 14 zeros and 14 twenties,
    # median 10 -> sigma = 14.826 (above the sqrt(100) = 10 floor). Threshold 100 + 3 * 14.826 = 144.478.
    noisy = history(28, alternating_weeks)
    spike = detect_spike(with_day(noisy, MONDAY, 150), MONDAY, RULE)
    assert spike is not None
    assert (spike.seasonal_baseline, spike.level, spike.baseline) == (90, 100, 100)
    assert spike.sigma == pytest.approx(14.826)
    assert spike.z_score == pytest.approx(50 / 14.826)
    assert spike.ratio == pytest.approx(1.5)
    assert detect_spike(with_day(noisy, MONDAY, 144), MONDAY, RULE) is None


def mondays_triple(d: date) -> float:
    return 300 if d.weekday() == 0 else 100


def test_usual_monday_of_a_weekly_pattern_is_not_a_spike() -> None:
    seasonal = history(56, mondays_triple)
    assert detect_spike(with_day(seasonal, MONDAY, 300), MONDAY, RULE) is None
    # 330 is within counting noise of a Monday: threshold 300 + 3 * sqrt(300) = 351.96.
    assert detect_spike(with_day(seasonal, MONDAY, 330), MONDAY, RULE) is None


def test_monday_volume_on_a_tuesday_is_a_spike() -> None:
    tuesday = MONDAY + timedelta(days=1)
    seasonal = history(56, mondays_triple, until=tuesday)
    spike = detect_spike(with_day(seasonal, tuesday, 300), tuesday, RULE)
    assert spike is not None
    assert (spike.baseline, spike.ratio, spike.z_score) == (100, 3.0, pytest.approx(20.0))


def test_a_real_jump_on_a_monday_is_judged_against_the_monday_baseline() -> None:
    seasonal = history(56, mondays_triple)
    spike = detect_spike(with_day(seasonal, MONDAY, 600), MONDAY, RULE)
    assert spike is not None
    assert (spike.seasonal_baseline, spike.level, spike.baseline) == (300, 100, 300)
    assert spike.sigma == pytest.approx(math.sqrt(300))
    assert spike.ratio == pytest.approx(2.0)
    assert spike.excess_units == pytest.approx(300)


def test_thirteen_days_of_history_is_not_enough() -> None:
    short = history(13, lambda d: 100)
    assert detect_spike(with_day(short, MONDAY, 10_000), MONDAY, RULE) is None


def test_fourteen_days_with_two_same_weekdays_is_enough() -> None:
    minimal = history(14, lambda d: 100)
    assert detect_spike(with_day(minimal, MONDAY, 10_000), MONDAY, RULE) is not None
    stricter = SpikeRule(min_same_weekday=3)
    assert detect_spike(with_day(minimal, MONDAY, 10_000), MONDAY, stricter) is None


def test_no_history_at_all() -> None:
    assert detect_spike({MONDAY: 500}, MONDAY, RULE) is None
    assert detect_spike({}, MONDAY, RULE) is None


def test_days_before_the_first_report_are_not_history() -> None:
    # Ten reported days only: the 46 earlier days of the window are unknown, not zeros.
    series = history(10, lambda d: 1000)
    assert detect_spike(with_day(series, MONDAY, 5000), MONDAY, RULE) is None


def test_missing_days_inside_the_observed_range_count_as_zero() -> None:
    # One report 14 days ago, silence since: 14 days of history, 13 of them zero. Seasonal = lower
    # median of [100, 0] = 0, level 0, baseline 0 (no ratio); sigma falls to min_sigma = 1.
    series = {MONDAY - timedelta(days=14): 100.0, MONDAY: 50.0}
    spike = detect_spike(series, MONDAY, RULE)
    assert spike is not None
    assert (spike.baseline, spike.ratio, spike.sigma, spike.z_score) == (0, None, 1.0, 50.0)
    # An order below min_units on a dormant SKU is not a spike.
    assert detect_spike({**series, MONDAY: 9.0}, MONDAY, RULE) is None


def test_a_day_without_any_report_is_zero_units_and_never_a_spike() -> None:
    assert detect_spike(history(28, lambda d: 100), MONDAY, RULE) is None


def test_corrected_day_is_no_longer_a_spike() -> None:
    flat = history(28, lambda d: 100)
    assert detect_spikes(with_day(flat, MONDAY, 250), [MONDAY], RULE)[MONDAY] is not None
    assert detect_spikes(with_day(flat, MONDAY, 105), [MONDAY], RULE) == {MONDAY: None}


def test_later_days_do_not_change_an_earlier_verdict() -> None:
    flat = history(28, lambda d: 100)
    before = detect_spike(with_day(flat, MONDAY, 250), MONDAY, RULE)
    later = {MONDAY + timedelta(days=i): 1000.0 for i in range(1, 20)}
    assert detect_spike({**with_day(flat, MONDAY, 250), **later}, MONDAY, RULE) == before


def test_a_past_spike_does_not_inflate_the_baseline() -> None:
    spiked = with_day(history(56, lambda d: 100), MONDAY - timedelta(days=7), 1000)
    spike = detect_spike(with_day(spiked, MONDAY, 250), MONDAY, RULE)
    assert spike is not None
    assert (spike.baseline, spike.sigma) == (100, pytest.approx(10.0))


def test_a_past_spike_among_only_two_same_weekdays_does_not_inflate_the_baseline() -> None:
    # The lower median of [100, 1000] is 100; the residual of 900 is one of 14, so the MAD stays 0.
    spiked = with_day(history(14, lambda d: 100), MONDAY - timedelta(days=7), 1000)
    spike = detect_spike(with_day(spiked, MONDAY, 250), MONDAY, RULE)
    assert spike is not None
    assert (spike.baseline, spike.sigma) == (100, pytest.approx(10.0))


def test_a_sustained_rise_is_flagged_for_a_week_then_absorbed() -> None:
    start = MONDAY
    series = history(56, lambda d: 100, until=start)
    series.update({start + timedelta(days=i): 200.0 for i in range(21)})
    verdicts = detect_spikes(series, [start + timedelta(days=i) for i in range(21)], RULE)
    flagged = [day for day, spike in verdicts.items() if spike is not None]
    # Until 7 of the last 14 days are at the new level, the level median is still 100.
    assert flagged == [start + timedelta(days=i) for i in range(7)]


def test_detect_spikes_reports_every_requested_day_in_order() -> None:
    flat = history(28, lambda d: 100)
    series = with_day(flat, MONDAY, 250)
    days = [MONDAY, MONDAY - timedelta(days=1), MONDAY]
    verdicts = detect_spikes(series, days, RULE)
    assert list(verdicts) == [MONDAY - timedelta(days=1), MONDAY]
    assert verdicts[MONDAY - timedelta(days=1)] is None
    assert verdicts[MONDAY] is not None


def test_days_to_reevaluate_covers_the_changed_day_and_the_windows_that_contain_it() -> None:
    rule = SpikeRule(baseline_weeks=2)
    changed = MONDAY
    assert days_to_reevaluate([changed], rule, until=MONDAY + timedelta(days=100)) == [
        MONDAY + timedelta(days=i) for i in range(15)
    ]
    assert days_to_reevaluate([changed], rule, until=MONDAY + timedelta(days=2)) == [
        MONDAY,
        MONDAY + timedelta(days=1),
        MONDAY + timedelta(days=2),
    ]
    assert days_to_reevaluate([], rule, until=MONDAY) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"baseline_weeks": 0}, {"min_history_days": 57}, {"min_sigma": 0}, {"z_threshold": -1}],
)
def test_invalid_rules_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SpikeRule(**kwargs)  # type: ignore[arg-type]


@given(level=st.integers(0, 100_000), length=st.integers(0, 120), offset=st.integers(0, 119))
def test_a_constant_series_never_spikes(level: int, length: int, offset: int) -> None:
    series = {MONDAY + timedelta(days=i): float(level) for i in range(length)}
    assert detect_spike(series, MONDAY + timedelta(days=offset), RULE) is None


@given(
    weekday_levels=st.lists(st.integers(0, 5000), min_size=7, max_size=7),
    weeks=st.integers(2, 12),
    offset=st.integers(0, 83),
)
def test_a_pure_weekly_pattern_never_spikes(weekday_levels: list[int], weeks: int, offset: int) -> None:
    series = {
        MONDAY + timedelta(days=i): float(weekday_levels[(MONDAY + timedelta(days=i)).weekday()])
        for i in range(weeks * 7)
    }
    assert detect_spike(series, MONDAY + timedelta(days=offset), RULE) is None


@given(
    values=st.lists(st.integers(0, 1000), min_size=30, max_size=60),
    extra=st.integers(0, 10_000),
)
def test_raising_the_judged_day_never_retracts_a_spike(values: list[int], extra: int) -> None:
    series = {MONDAY - timedelta(days=len(values) - i): float(v) for i, v in enumerate(values)}
    spike = detect_spike(with_day(series, MONDAY, 500), MONDAY, RULE)
    if spike is not None:
        assert detect_spike(with_day(series, MONDAY, 500 + extra), MONDAY, RULE) is not None
