"""Capacity conflicts: a SKU whose plan cannot cover its demand names the promotions that lift it in a short
week; a conflict is announced again only when it really changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from .model import CapacityConflict

# Shortfalls are compared to this many decimals, so float noise from a re-plan is not a new conflict.
SHORTFALL_DECIMALS = 6


def capacity_conflicts(
    sku: str,
    shortfall: npt.NDArray[np.float64],
    starts: Sequence[date],
    uplift_weeks: Iterable[tuple[str, npt.NDArray[np.bool_]]],
) -> tuple[CapacityConflict, ...]:
    """One conflict per SKU with a shortfall (`shortfall` per horizon week), naming the promotions whose
    uplift weeks (`uplift_weeks`: promotion id, weeks it lifts the SKU) meet a short week."""
    short = shortfall > 0
    if not short.any():
        return ()
    promotion_ids = sorted({pid for pid, lifted in uplift_weeks if (lifted & short).any()})
    weeks = tuple((starts[w], float(shortfall[w])) for w in np.nonzero(short)[0].tolist())
    return (CapacityConflict(sku, tuple(promotion_ids), weeks, float(shortfall[short].sum())),)


def conflict_key(conflict: CapacityConflict) -> tuple[Any, ...]:
    """What a conflict is, for "has it changed": its promotions and its shortfall per week."""
    return (
        tuple(sorted(conflict.promotion_ids)),
        tuple((week, round(shortfall, SHORTFALL_DECIMALS)) for week, shortfall in conflict.weeks),
    )


@dataclass(frozen=True, slots=True)
class ConflictChange:
    """What a re-plan does to a SKU's open conflict.

    `detected`: store it and announce it (it appeared, or its promotions, weeks or shortfalls changed).
    `dropped`: promotions no longer part of a conflict that goes on; announce them resolved.
    `resolved`: the conflict that disappeared; remove it and announce it resolved with its promotions.
    """

    detected: CapacityConflict | None = None
    dropped: tuple[str, ...] = ()
    resolved: CapacityConflict | None = None


def conflict_change(previous: CapacityConflict | None, current: CapacityConflict | None) -> ConflictChange:
    """Compare the stored (last announced) conflict of a SKU with the one its new plan has."""
    if current is None:
        return ConflictChange(resolved=previous)
    if previous is not None and conflict_key(previous) == conflict_key(current):
        return ConflictChange()
    dropped = tuple(sorted(set(previous.promotion_ids) - set(current.promotion_ids))) if previous else ()
    return ConflictChange(detected=current, dropped=dropped)
