"""Week-by-week comparison of two plans of one SKU, so only real changes are published."""

from __future__ import annotations

from datetime import date
from typing import Any

from .model import PlanWeek, SkuPlan, WeekChange

# Gross requirements and cumulative ATP follow from these; booked orders and ATP can move on their own (an
# order within the forecast, a receipt week shifting supply).
COMPARED_FIELDS = ("forecast", "mps_quantity", "projected_available", "capacity_shortfall", "booked_orders", "atp")
CHANGE_TOLERANCE = 1e-9


def diff_plans(old: SkuPlan | None, new: SkuPlan) -> list[WeekChange]:
    """Changes of the compared fields in the new plan's weeks; a week the old plan lacked reports every field.

    Weeks that rolled out of the horizon are not changes and are not listed.
    """
    before_by_week = {week.week_start: week for week in old.weeks} if old is not None else {}
    changes = []
    for week in new.weeks:
        previous = before_by_week.get(week.week_start)
        for name in COMPARED_FIELDS:
            after: float = getattr(week, name)
            before: float | None = None if previous is None else getattr(previous, name)
            if before is None or abs(after - before) > CHANGE_TOLERANCE:
                changes.append(WeekChange(week.week_start, name, before, after))
    return changes


_COMPARED = tuple((name, PlanWeek._fields.index(name)) for name in COMPARED_FIELDS)


def week_changes(old: SkuPlan | None, new: SkuPlan) -> list[dict[str, Any]]:
    """`diff_plans` as plain values, in the same order: `{"week_start", "field", "before", "after"}` per change,
    the shape a revision stores and `mps.revised` carries (a full re-plan builds hundreds of thousands)."""
    # the weeks as plain tuples: the compared fields are read by position
    weeks: tuple[tuple[Any, ...], ...] = new.weeks
    if old is None:
        return [
            {"week_start": week[0], "field": name, "before": None, "after": float(week[index])}
            for week in weeks
            for name, index in _COMPARED
        ]
    before_by_week: dict[date, tuple[Any, ...]] = {week[0]: week for week in old.weeks}
    changes: list[dict[str, Any]] = []
    for week in weeks:
        previous = before_by_week.get(week[0])
        if previous is None:
            changes.extend(
                {"week_start": week[0], "field": name, "before": None, "after": float(week[index])}
                for name, index in _COMPARED
            )
            continue
        if week == previous:
            continue
        for name, index in _COMPARED:
            after, before = week[index], previous[index]
            if abs(after - before) > CHANGE_TOLERANCE:
                changes.append({"week_start": week[0], "field": name, "before": float(before), "after": float(after)})
    return changes
