"""Allocation of available-to-promise by service tier: nested protection with a release window.

The policy reserves `reserve_pct[tier]` of each week's receipts for that tier: only it or a higher tier
may consume that share. The rest (and all on-hand stock) is open to every tier. So a tier may use its own
protected share and those of the tiers below it, never those above (nested protection). Protection of a
week lapses `release_days` before the week starts: from that day on, the week's receipts are open to all
(supply nobody higher claimed in time is not held back any longer). The current week has always started,
so on-hand stock and this week's receipts are never protected.

Supply is split into levels: level 0 is the open share, level `tier.rank` (1 stable ... 4 strategic) the
share protected for that tier. A commitment of a tier sits at its tier's level and may draw on every level
at or below it, in any week up to its due week.

What a tier may still be promised by a week `e` is the exact answer of a transportation problem: by
Hall's theorem, a new quantity q fits beside all commitments iff, for every "staircase" of levels and
weeks (a set closed downwards in both: lower levels, earlier weeks) that contains the tier's level up to
week e, q stays within that staircase's supply minus the commitments that can draw only inside it. Hence

    available(tier, e) = max(0, min over staircases S containing (tier, e) of supply(S) - committed(S))

computed by a dynamic programme over levels (one week threshold per level, non-increasing upwards). With
no protection it is exactly the cumulative ATP with look-ahead. Commitments beyond what their tier's
shares hold (a capacity cut shrinks every share) are still kept: they take from the nearest protected share
above first, so the tier just above them loses its protection before the tiers higher up do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from .orders import TIERS_LOWEST_FIRST, Tier
from .weeks import FloatArray

LEVELS = len(TIERS_LOWEST_FIRST) + 1  # the open share, then one protected share per tier
MAX_RELEASE_DAYS = 366


def _no_reserve() -> dict[Tier, float]:
    return dict.fromkeys(Tier, 0.0)


@dataclass(frozen=True)
class AllocationPolicy:
    """Share (percent) of each week's receipts protected per tier, and the release window in days.

    The default protects nothing: every tier sees the plain ATP until a policy is set.
    """

    reserve_pct: Mapping[Tier, float] = field(default_factory=_no_reserve)
    release_days: int = 7

    def __post_init__(self) -> None:
        unknown = set(self.reserve_pct) - set(Tier)
        if unknown:
            raise ValueError(f"reserve_pct: unknown tiers {sorted(map(str, unknown))}")
        for tier, pct in self.reserve_pct.items():
            if not math.isfinite(pct) or not 0 <= pct <= 100:
                raise ValueError(f"reserve_pct.{tier.value}: must be between 0 and 100")
        if sum(self.reserve_pct.values()) > 100 + 1e-9:
            raise ValueError("reserve_pct: the shares add up to more than 100")
        if not 0 <= self.release_days <= MAX_RELEASE_DAYS:
            raise ValueError(f"release_days: must be between 0 and {MAX_RELEASE_DAYS}")

    def share(self, tier: Tier) -> float:
        """Fraction (0..1) of a protected week's receipts reserved for `tier`."""
        return self.reserve_pct.get(tier, 0.0) / 100.0

    def lapses_on(self, week_start: date) -> date:
        """The day protection of the week starting `week_start` lapses."""
        return week_start - timedelta(days=self.release_days)

    def is_protected(self, week_start: date, today: date) -> bool:
        return today < self.lapses_on(week_start)


NO_PROTECTION = AllocationPolicy()


def supply_levels(
    on_hand: float, receipts: FloatArray, week_starts: Sequence[date], policy: AllocationPolicy, today: date
) -> FloatArray:
    """Supply split into (LEVELS, weeks): row 0 open to all, row `tier.rank` protected for that tier."""
    receipts = np.asarray(receipts, dtype=np.float64)
    if receipts.shape != (len(week_starts),):
        raise ValueError("receipts must have one value per week")
    protected = np.array([policy.is_protected(start, today) for start in week_starts], dtype=np.bool_)
    levels = np.zeros((LEVELS, len(week_starts)))
    reserved_total = np.zeros(len(week_starts))
    for tier in TIERS_LOWEST_FIRST:
        share = np.where(protected, receipts * policy.share(tier), 0.0)
        levels[tier.rank] = share
        reserved_total += share
    levels[0] = receipts - reserved_total
    if len(week_starts):
        levels[0, 0] += on_hand
    return levels


def tier_availability(levels: FloatArray, committed: FloatArray) -> FloatArray:
    """What each tier may still be promised for delivery by each week, shape (tiers, weeks).

    `levels` is supply_levels' split; `committed` (LEVELS, weeks) the commitments due per week at the level
    of their tier (row 0, the open share, holds no commitments). Row `tier.rank - 1` of the result is the
    tier's cumulative availability: non-decreasing over weeks, and never more for a lower tier.
    """
    levels = np.asarray(levels, dtype=np.float64)
    committed = np.asarray(committed, dtype=np.float64)
    if levels.shape != committed.shape or levels.shape[0] != LEVELS:
        raise ValueError("levels and committed must both be shaped (LEVELS, weeks)")
    weeks = levels.shape[1]
    # slack[p, j]: supply minus commitments of level p in weeks < j (j = 0: the level takes no week)
    slack = np.zeros((LEVELS, weeks + 1))
    slack[:, 1:] = np.cumsum(levels - committed, axis=1)
    # above[p, j]: the least any staircase can add from the levels above p, given level p stops at j
    above = np.zeros((LEVELS + 1, weeks + 1))
    for level in range(LEVELS - 1, 0, -1):
        above[level] = np.minimum.accumulate(slack[level] + above[level + 1])
    available = np.zeros((LEVELS - 1, weeks))
    thresholds = np.arange(weeks + 1)
    for level in range(1, LEVELS):
        # One row per due week e: the tier's own level must reach week e, i.e. take weeks < j for j > e.
        own = np.where(thresholds[None, :] > np.arange(weeks)[:, None], slack[level] + above[level + 1], np.inf)
        best = own
        for lower in range(level - 1, -1, -1):
            best = slack[lower] + np.minimum.accumulate(best, axis=1)
        available[level - 1] = np.maximum(best.min(axis=1), 0.0)
    return available


def committed_levels(committed_by_tier: FloatArray, other_commitments: FloatArray | None = None) -> FloatArray:
    """Commitments per (tier row, week) as returned by booked_by_tier, placed at their levels.

    `other_commitments` (weeks,): quantities owed outside sales orders (replacements of returned goods);
    nobody's allocation covers them, so they rank with the top tier and may draw on every share.
    """
    committed_by_tier = np.asarray(committed_by_tier, dtype=np.float64)
    levels = np.zeros((LEVELS, committed_by_tier.shape[1]))
    levels[1:] = committed_by_tier
    if other_commitments is not None:
        levels[-1] += np.asarray(other_commitments, dtype=np.float64)
    return levels
