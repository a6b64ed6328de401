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
_COMPARED_INDEXES = tuple(index for _, index in _COMPARED)
_ALL_COMPARED = tuple(range(len(COMPARED_FIELDS)))

# One week's changes: its start, the positions in COMPARED_FIELDS of the fields that changed (None: all of them),
# their values before (None: the week is new) and after, in field order.
ChangedWeek = tuple[date, "tuple[int, ...] | None", "list[float] | None", list[float]]


def changed_weeks(old: SkuPlan | None, new: SkuPlan) -> list[ChangedWeek]:
    """`diff_plans` grouped by week, as plain values in the same order (a full re-plan builds hundreds of
    thousands of changes): what a revision stores, and what `week_changes` spells out one change at a time."""
    # the weeks as plain tuples: the compared fields are read by position
    weeks: tuple[tuple[Any, ...], ...] = new.weeks
    before_by_week: dict[date, tuple[Any, ...]] = {week[0]: week for week in old.weeks} if old is not None else {}
    found: list[ChangedWeek] = []
    for week in weeks:
        previous = before_by_week.get(week[0])
        if previous is None:
            found.append((week[0], None, None, [float(week[index]) for index in _COMPARED_INDEXES]))
            continue
        if week == previous:
            continue
        fields: list[int] = []
        befores: list[float] = []
        afters: list[float] = []
        for position, index in enumerate(_COMPARED_INDEXES):
            after, before = week[index], previous[index]
            if abs(after - before) > CHANGE_TOLERANCE:
                fields.append(position)
                befores.append(float(before))
                afters.append(float(after))
        if fields:
            found.append((week[0], None if len(fields) == len(_COMPARED) else tuple(fields), befores, afters))
    return found


def spelled_out(weeks: list[ChangedWeek], names: tuple[str, ...] | list[str] = COMPARED_FIELDS) -> list[dict[str, Any]]:
    """Changes by week (`changed_weeks`) as one `{"week_start", "field", "before", "after"}` per change, the
    shape `mps.revised` carries and the API shows; `names` are the compared fields they were written with."""
    changes: list[dict[str, Any]] = []
    for week_start, fields, befores, afters in weeks:
        named = names if fields is None else [names[position] for position in fields]
        if befores is None:
            changes.extend(
                {"week_start": week_start, "field": name, "before": None, "after": after}
                for name, after in zip(named, afters, strict=True)
            )
        else:
            changes.extend(
                {"week_start": week_start, "field": name, "before": before, "after": after}
                for name, before, after in zip(named, befores, afters, strict=True)
            )
    return changes


def week_changes(old: SkuPlan | None, new: SkuPlan) -> list[dict[str, Any]]:
    """`diff_plans` as plain values, in the same order: `{"week_start", "field", "before", "after"}` per change,
    the shape a revision's event carries."""
    return spelled_out(changed_weeks(old, new))
