"""The returns desk's vocabulary: reasons, conditions, severities, the service tiers of accounts, and the
records the alert rules read (returns, complaints, accounts and the service's copy of promotions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class ReturnReason(StrEnum):
    DEFECTIVE = "defective"
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    NO_LONGER_NEEDED = "no_longer_needed"
    LATE_DELIVERY = "late_delivery"
    OTHER = "other"


class ReturnCondition(StrEnum):
    RESELLABLE = "resellable"
    REFURBISH = "refurbish"
    SCRAP = "scrap"


class Resolution(StrEnum):
    REFUND = "refund"
    REPLACEMENT = "replacement"
    CREDIT = "credit"


class ComplaintCategory(StrEnum):
    QUALITY = "quality"
    DELIVERY = "delivery"
    SERVICE = "service"
    BILLING = "billing"
    OTHER = "other"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Segment(StrEnum):
    """The service-differentiation tiers of an account."""

    STRATEGIC = "strategic"
    INTEGRATED = "integrated"
    EMERGING = "emerging"
    STABLE = "stable"


class AlertType(StrEnum):
    RETURN_SURGE = "return-surge"
    CRITICAL_COMPLAINT = "critical-complaint"
    CAPACITY_CONFLICT = "capacity-conflict"
    PROMISE_AT_RISK = "promise-at-risk"
    ACCOUNT_UNPROFITABLE = "account-unprofitable"
    SEGMENT_MISMATCH = "segment-mismatch"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


QUALITY_REASONS: frozenset[ReturnReason] = frozenset(
    {ReturnReason.DEFECTIVE, ReturnReason.DAMAGED, ReturnReason.NOT_AS_DESCRIBED}
)
# The tiers whose problems sales must hear about first: their contracts promise differentiated service.
PRIORITY_SEGMENTS: frozenset[Segment] = frozenset({Segment.STRATEGIC, Segment.INTEGRATED})


@dataclass(frozen=True, slots=True)
class ReturnRecord:
    return_id: str
    sku: str
    quantity: int
    account_id: str
    reason: ReturnReason
    condition: ReturnCondition
    returned_on: date
    resolution: Resolution | None = None
    order_id: str | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError("quantity must be > 0")


@dataclass(frozen=True, slots=True)
class Complaint:
    complaint_id: str
    account_id: str
    sku: str | None
    category: ComplaintCategory
    severity: Severity
    description: str
    received_on: date


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    name: str
    segment: Segment
    owner_email: str | None = None


@dataclass(frozen=True, slots=True)
class PromotionRef:
    """The returns service's own copy of a promotion (event-carried state)."""

    promotion_id: str
    skus: frozenset[str]
    starts_on: date
    ends_on: date  # inclusive
    name: str = ""
    account_segments: frozenset[str] = frozenset()
    cancelled: bool = False

    def is_active_for(self, sku: str, today: date) -> bool:
        """Running or still to come: the promotions sales can still act on."""
        return not self.cancelled and sku in self.skus and self.ends_on >= today


def priority_for(segments: Iterable[str | None], base: Priority = Priority.NORMAL) -> Priority:
    """HIGH when the base is already HIGH or any account involved is strategic or integrated; else base.
    Unknown accounts (segment None) do not raise the priority."""
    if base is Priority.HIGH or any(segment in PRIORITY_SEGMENTS for segment in segments):
        return Priority.HIGH
    return base
