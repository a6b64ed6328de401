"""ISO-week calendar helpers: week Mondays, week indices in the horizon and days of a span per week."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def shift_days(day: date, days: int) -> date:
    """`day` moved by `days`, held at the first or last representable date rather than overflowing.

    Inputs are bounded to 2000-01-01 … 2199-12-31 where they enter the service, so a dip of 52 weeks after
    the last allowed day still fits; copies stored before that bound existed may lie anywhere, and a plan
    must not fail on them (past date.max nothing is inside any horizon anyway)."""
    return date.fromordinal(min(max(day.toordinal() + days, 1), date.max.toordinal()))


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_index(day: date, horizon_start: date) -> int:
    """Index of the ISO week holding `day`; negative before the horizon (floor division)."""
    return (day - horizon_start).days // 7


def week_starts(horizon_start: date, horizon_weeks: int) -> list[date]:
    return [horizon_start + timedelta(weeks=w) for w in range(horizon_weeks)]


def days_per_week(first: date, last: date, horizon_start: date, horizon_weeks: int) -> FloatArray:
    """How many days of the inclusive span [first, last] fall in each week of the horizon."""
    starts = horizon_start.toordinal() + 7 * np.arange(horizon_weeks)
    low = np.maximum(starts, first.toordinal())
    high = np.minimum(starts + 6, last.toordinal())
    return np.clip(high - low + 1, 0, 7).astype(np.float64)


def days_outside(first: date, last: date, horizon_start: date, horizon_weeks: int) -> tuple[int, int]:
    """Days of [first, last] before the horizon and after its last day."""
    horizon_end = horizon_start + timedelta(weeks=horizon_weeks, days=-1)
    before = max(0, (min(last, horizon_start - timedelta(days=1)) - first).days + 1)
    after = max(0, (last - max(first, horizon_end + timedelta(days=1))).days + 1)
    return before, after


def require_monday(horizon_start: date) -> None:
    if horizon_start.weekday() != 0:
        raise ValueError(f"horizon_start {horizon_start} is not a Monday")
