"""Promotion rules that need no framework: the commands, what makes a promotion or a launch consistent,
and a promotion's lifecycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any


class PromotionStatus(StrEnum):
    PLANNED = "planned"
    AT_RISK = "at_risk"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RuleViolation:
    field: str
    message: str


@dataclass(frozen=True)
class CreatePromotion:
    """Announce a promotion. `body` is the whole validated request as JSON values: it is stored as it is and
    its fingerprint tells an identical retry from a different request with the same id."""

    promotion_id: str
    starts_on: date
    ends_on: date
    item_skus: tuple[str, ...]
    cannibalized_skus: tuple[str, ...]
    body: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CreatePromotion:
        return cls(
            promotion_id=body["promotion_id"],
            starts_on=date.fromisoformat(body["starts_on"]),
            ends_on=date.fromisoformat(body["ends_on"]),
            item_skus=tuple(item["sku"] for item in body["items"]),
            cannibalized_skus=tuple(c["sku"] for c in body.get("cannibalized", ())),
            body=body,
        )


@dataclass(frozen=True)
class RevisePromotion:
    """Change some fields of a promotion; `changes` holds only the fields the client sent (JSON values)."""

    promotion_id: str
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class CreateLaunch:
    """Announce a product launch; `body` plays the same part as in `CreatePromotion`."""

    launch_id: str
    sku: str
    launch_on: date
    reference_sku: str
    body: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CreateLaunch:
        return cls(
            launch_id=body["launch_id"],
            sku=body["sku"],
            launch_on=date.fromisoformat(body["launch_on"]),
            reference_sku=body["reference_sku"],
            body=body,
        )


def check_promotion(
    *, starts_on: date, ends_on: date, item_skus: Sequence[str], cannibalized_skus: Sequence[str]
) -> list[RuleViolation]:
    """The cross-field rules a schema cannot express. Empty when the promotion is consistent."""
    violations: list[RuleViolation] = []
    if ends_on < starts_on:
        violations.append(RuleViolation("ends_on", f"must be on or after starts_on ({starts_on.isoformat()})"))
    seen: set[str] = set()
    for index, sku in enumerate(item_skus):
        if sku in seen:
            violations.append(RuleViolation(f"items.{index}.sku", f"SKU {sku!r} appears more than once"))
        seen.add(sku)
    seen_cannibalized: set[str] = set()
    for index, sku in enumerate(cannibalized_skus):
        if sku in seen:
            violations.append(RuleViolation(f"cannibalized.{index}.sku", f"SKU {sku!r} is promoted by this promotion"))
        elif sku in seen_cannibalized:
            violations.append(RuleViolation(f"cannibalized.{index}.sku", f"SKU {sku!r} appears more than once"))
        seen_cannibalized.add(sku)
    return violations


def check_launch(*, sku: str, reference_sku: str) -> list[RuleViolation]:
    """A launch follows another SKU's baseline: its own would be empty."""
    if reference_sku == sku:
        return [RuleViolation("reference_sku", "must differ from sku (the new product)")]
    return []


# Fields a revision may not set to null: the promotion would no longer be a promotion without them.
NON_NULLABLE_FIELDS = frozenset(
    {
        "name",
        "starts_on",
        "ends_on",
        "items",
        "post_promo_dip_pct",
        "post_promo_dip_weeks",
        "cannibalized",
        "regions",
        "account_segments",
    }
)


def merge_revision(
    current: Mapping[str, Any], changes: Mapping[str, Any]
) -> tuple[dict[str, Any], list[RuleViolation]]:
    """Apply a partial revision to a stored promotion body.

    Top-level fields are replaced wholesale (a new `items` list replaces the old one, it is not merged item
    by item), so a client always states the complete value of what it revises. The id never changes.
    """
    violations = [
        RuleViolation(name, "may not be null")
        for name in sorted(changes)
        if changes[name] is None and name in NON_NULLABLE_FIELDS
    ]
    if "promotion_id" in changes and changes["promotion_id"] != current.get("promotion_id"):
        violations.append(RuleViolation("promotion_id", "cannot be changed; create a new promotion instead"))
    merged = {**current, **{k: v for k, v in changes.items() if k != "promotion_id"}}
    return merged, violations


@dataclass(frozen=True)
class PromotionSpan:
    """What overlap checks need to know of a promotion: its id, promoted SKUs and inclusive dates."""

    promotion_id: str
    skus: frozenset[str]
    starts_on: date
    ends_on: date


@dataclass(frozen=True)
class OverlapWarning:
    sku: str
    promotion_id: str
    starts_on: date
    ends_on: date
    code: str = "overlapping-promotion"


def overlap_warnings(candidate: PromotionSpan, others: Sequence[PromotionSpan]) -> list[OverlapWarning]:
    """Other live promotions of the same SKU whose dates overlap the candidate's.

    Overlaps are allowed (a retail and an online campaign may run together) but usually a mistake worth
    telling the caller about; sorted by SKU then promotion id so the answer is stable.
    """
    found = [
        OverlapWarning(sku=sku, promotion_id=other.promotion_id, starts_on=other.starts_on, ends_on=other.ends_on)
        for other in others
        if other.promotion_id != candidate.promotion_id
        and other.starts_on <= candidate.ends_on
        and candidate.starts_on <= other.ends_on
        for sku in sorted(candidate.skus & other.skus)
    ]
    return sorted(found, key=lambda w: (w.sku, w.promotion_id))


def is_older_report(stored_plan_version: int | None, incoming_plan_version: int | None) -> bool:
    """Planning's reports about a (promotion, SKU) may arrive out of order: one about an older plan than the
    stored report's changes nothing. Reports without a plan version are never older."""
    return (
        stored_plan_version is not None
        and incoming_plan_version is not None
        and incoming_plan_version < stored_plan_version
    )


def status_after_conflicts(current: PromotionStatus, open_conflicts: int) -> PromotionStatus:
    """A promotion is at risk while planning reports any open capacity conflict; cancelled is final."""
    if current is PromotionStatus.CANCELLED:
        return current
    return PromotionStatus.AT_RISK if open_conflicts > 0 else PromotionStatus.PLANNED


@dataclass(frozen=True)
class SkuConflict:
    """Planning's latest report of one SKU's capacity shortfall for a promotion."""

    sku: str
    weeks: tuple[tuple[date, float], ...]
    total_shortfall: float


def conflict_summary(conflicts: Sequence[SkuConflict]) -> dict[str, Any] | None:
    """The `conflict` shown on a promotion: shortfall per week summed over its SKUs, and each SKU's part."""
    if not conflicts:
        return None
    by_week: dict[date, float] = {}
    for conflict in conflicts:
        for week_start, shortfall in conflict.weeks:
            by_week[week_start] = by_week.get(week_start, 0.0) + shortfall
    ordered = sorted(conflicts, key=lambda c: c.sku)
    return {
        "skus": [c.sku for c in ordered],
        "shortfall": sum(c.total_shortfall for c in ordered),
        "weeks": [{"week_start": w.isoformat(), "shortfall": s} for w, s in sorted(by_week.items())],
        "by_sku": [
            {
                "sku": c.sku,
                "shortfall": c.total_shortfall,
                "weeks": [{"week_start": w.isoformat(), "shortfall": s} for w, s in c.weeks],
            }
            for c in ordered
        ],
    }
