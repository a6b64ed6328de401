"""The capacity-conflict rule: planning's reported shortfall as an alert, urgent when a promotion targets a
priority tier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .model import AlertType, Priority, PromotionRef, priority_for


@dataclass(frozen=True, slots=True)
class WeekShortfall:
    week_start: date  # the Monday of the ISO week
    shortfall: float


@dataclass(frozen=True, slots=True)
class CapacityConflictFinding:
    sku: str
    promotion_ids: tuple[str, ...]
    weeks: tuple[WeekShortfall, ...]
    total_shortfall: float
    target_segments: tuple[str, ...]
    priority: Priority

    @property
    def alert_type(self) -> AlertType:
        return AlertType.CAPACITY_CONFLICT

    @property
    def subject(self) -> str:
        return self.sku

    def evidence(self) -> dict[str, Any]:
        return {
            "promotion_ids": list(self.promotion_ids),
            "weeks": [[w.week_start.isoformat(), w.shortfall] for w in self.weeks],
            "total_shortfall": self.total_shortfall,
            "priority": self.priority.value,
        }


def evaluate_capacity_conflict(
    sku: str,
    promotion_ids: Iterable[str],
    week_shortfalls: Mapping[date, float],
    promotions: Sequence[PromotionRef],
) -> CapacityConflictFinding | None:
    """The conflict planning reported, or None when no week is short (the conflict is resolved).
    HIGH priority when any of the promotions targets a strategic or integrated segment: those are
    the promises sales must not break."""
    weeks = tuple(WeekShortfall(w, s) for w, s in sorted(week_shortfalls.items()) if s > 0)
    if not weeks:
        return None
    ids = tuple(sorted(set(promotion_ids)))
    known = {p.promotion_id: p for p in promotions}
    segments = tuple(sorted({s for pid in ids if pid in known for s in known[pid].account_segments}))
    return CapacityConflictFinding(
        sku=sku,
        promotion_ids=ids,
        weeks=weeks,
        total_shortfall=sum(w.shortfall for w in weeks),
        target_segments=segments,
        priority=priority_for(segments),
    )
