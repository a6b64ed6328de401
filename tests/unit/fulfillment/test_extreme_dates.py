"""Spike windows at the edges of the calendar: re-judging a day never steps past the first or last date."""

from __future__ import annotations

from datetime import date, timedelta

from services.fulfillment_service.domain import SpikeRule, days_to_reevaluate, detect_spikes, shift_days


def test_the_days_to_re_judge_stop_at_the_last_date() -> None:
    rule = SpikeRule()
    assert days_to_reevaluate([date.max], rule, until=date.max) == [date.max]
    last_week = [date.max - timedelta(days=i) for i in range(6, -1, -1)]
    assert days_to_reevaluate([last_week[0]], rule, until=date.max) == last_week


def test_the_history_window_of_the_first_dates_starts_at_the_first_date() -> None:
    rule = SpikeRule()
    assert shift_days(date.min, -rule.window_days) == date.min
    assert shift_days(date(1, 1, 10), -rule.window_days) == date.min
    totals = {date.min + timedelta(days=i): 10.0 for i in range(30)}
    verdicts = detect_spikes(totals, days_to_reevaluate([date.min], rule, until=max(totals)), rule)
    assert set(verdicts) == set(totals)
