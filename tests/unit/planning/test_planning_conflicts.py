"""The capacity-conflict rule with plain values: who is named, and when a conflict counts as changed."""

from datetime import date

import numpy as np

from services.planning_service.domain import CapacityConflict
from services.planning_service.domain.conflicts import (
    ConflictChange,
    capacity_conflicts,
    conflict_change,
    conflict_key,
)

WEEKS = [date(2026, 11, 23), date(2026, 11, 30), date(2026, 12, 7)]


def conflict(*promotion_ids: str, shortfall: float = 40.0) -> CapacityConflict:
    return CapacityConflict("SKU-1", promotion_ids, ((WEEKS[2], shortfall),), shortfall)


def test_only_promotions_lifting_a_short_week_are_named() -> None:
    shortfall = np.array([0.0, 0.0, 40.0])
    lifts = [("BF", np.array([False, False, True])), ("EARLY", np.array([True, False, False]))]
    assert capacity_conflicts("SKU-1", shortfall, WEEKS, lifts) == (
        CapacityConflict("SKU-1", ("BF",), ((WEEKS[2], 40.0),), 40.0),
    )


def test_no_shortfall_is_no_conflict() -> None:
    assert capacity_conflicts("SKU-1", np.zeros(3), WEEKS, [("BF", np.ones(3, dtype=np.bool_))]) == ()


def test_float_noise_and_promotion_order_do_not_change_a_conflict() -> None:
    assert conflict_key(conflict("A", "B", shortfall=40.0)) == conflict_key(conflict("B", "A", shortfall=40.0000000001))
    assert conflict_change(conflict("A", "B"), conflict("B", "A", shortfall=40.0000000001)) == ConflictChange()


def test_a_new_or_changed_conflict_is_detected_and_dropped_promotions_resolved() -> None:
    assert conflict_change(None, conflict("A")) == ConflictChange(detected=conflict("A"))
    assert conflict_change(conflict("A"), conflict("A", shortfall=41)) == ConflictChange(
        detected=conflict("A", shortfall=41)
    )
    assert conflict_change(conflict("A", "B", "C"), conflict("B")) == ConflictChange(
        detected=conflict("B"), dropped=("A", "C")
    )


def test_a_conflict_that_disappears_is_resolved_and_none_stays_none() -> None:
    assert conflict_change(conflict("A"), None) == ConflictChange(resolved=conflict("A"))
    assert conflict_change(None, None) == ConflictChange()
