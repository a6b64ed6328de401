"""Week-by-week comparison of two plans of one SKU, so only real changes are published."""

from __future__ import annotations

from .model import SkuPlan, WeekChange

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
