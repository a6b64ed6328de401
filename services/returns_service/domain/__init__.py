"""Returns rules: when returns and complaints become sales alerts (return surge, critical complaint,
capacity conflict), how urgent they are for the account's service tier, and when an open alert changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any


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


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


class DecisionKind(StrEnum):
    RAISE = "raise"
    UPDATE = "update"
    NONE = "none"


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


@dataclass(frozen=True, slots=True)
class ReturnSurgeRule:
    """Alert when quality returns in [today - window_days + 1, today] reach `rate_threshold` of the units
    shipped in that window AND number at least `min_returns` return records (records, not units: five
    customers returning one unit each is stronger evidence than one customer returning five)."""

    window_days: int = 14
    rate_threshold: float = 0.05
    min_returns: int = 5

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.min_returns < 1 or self.rate_threshold < 0:
            raise ValueError("window_days and min_returns must be >= 1 and rate_threshold >= 0")

    def window(self, today: date) -> tuple[date, date]:
        return today - timedelta(days=self.window_days - 1), today


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: ReturnReason
    units: int
    returns: int


@dataclass(frozen=True, slots=True)
class AffectedAccount:
    account_id: str
    segment: Segment | None  # None: the account is not (yet) known to the returns service
    name: str | None
    units: int
    returns: int


@dataclass(frozen=True, slots=True)
class ReturnSurgeFinding:
    sku: str
    window_start: date
    window_end: date
    rate: float | None  # quality_units / shipped_units; None when nothing shipped in the window
    quality_units: int
    quality_return_count: int
    shipped_units: float
    top_reasons: tuple[ReasonCount, ...]
    affected_accounts: tuple[AffectedAccount, ...]
    active_promotions: tuple[PromotionRef, ...]
    priority: Priority

    @property
    def alert_type(self) -> AlertType:
        return AlertType.RETURN_SURGE

    @property
    def subject(self) -> str:
        return self.sku

    def evidence(self) -> dict[str, Any]:
        # The window dates are left out: the window slides daily, and the same figures on a later day
        # are not news to the CRM.
        return {
            "quality_units": self.quality_units,
            "quality_return_count": self.quality_return_count,
            "shipped_units": self.shipped_units,
            "top_reasons": [[r.reason.value, r.units, r.returns] for r in self.top_reasons],
            "affected_accounts": [[a.account_id, a.segment, a.units, a.returns] for a in self.affected_accounts],
            "active_promotions": [p.promotion_id for p in self.active_promotions],
            "priority": self.priority.value,
        }


def evaluate_return_surge(
    sku: str,
    returns: Sequence[ReturnRecord],
    shipped_units_in_window: float,
    accounts: Mapping[str, Account],
    active_promotions: Sequence[PromotionRef],
    today: date,
    rule: ReturnSurgeRule,
) -> ReturnSurgeFinding | None:
    """The surge finding for `sku` on `today`, or None below either threshold.

    Only returns of `sku` with a quality reason dated inside the window count. With nothing shipped in
    the window the rate is undefined (None) and counts as exceeded: the returned goods were shipped
    earlier, and `min_returns` quality returns are a signal in their own right.
    """
    start, end = rule.window(today)
    quality = [r for r in returns if r.sku == sku and r.reason in QUALITY_REASONS and start <= r.returned_on <= end]
    if len(quality) < rule.min_returns:
        return None
    quality_units = sum(r.quantity for r in quality)
    rate = quality_units / shipped_units_in_window if shipped_units_in_window > 0 else None
    if rate is not None and rate < rule.rate_threshold:
        return None

    by_reason: dict[ReturnReason, list[int]] = {}
    by_account: dict[str, list[int]] = {}
    for r in quality:
        by_reason.setdefault(r.reason, []).append(r.quantity)
        by_account.setdefault(r.account_id, []).append(r.quantity)
    top_reasons = tuple(
        sorted(
            (ReasonCount(reason, sum(q), len(q)) for reason, q in by_reason.items()),
            key=lambda c: (-c.units, c.reason.value),
        )
    )
    affected = []
    for account_id, quantities in by_account.items():
        account = accounts.get(account_id)
        affected.append(
            AffectedAccount(
                account_id=account_id,
                segment=account.segment if account else None,
                name=account.name if account else None,
                units=sum(quantities),
                returns=len(quantities),
            )
        )
    affected.sort(key=lambda a: (-a.units, a.account_id))
    promotions = tuple(
        sorted(
            (p for p in active_promotions if p.is_active_for(sku, today)),
            key=lambda p: (p.starts_on, p.promotion_id),
        )
    )
    return ReturnSurgeFinding(
        sku=sku,
        window_start=start,
        window_end=end,
        rate=rate,
        quality_units=quality_units,
        quality_return_count=len(quality),
        shipped_units=shipped_units_in_window,
        top_reasons=top_reasons,
        affected_accounts=tuple(affected),
        active_promotions=promotions,
        priority=priority_for(a.segment for a in affected),
    )


@dataclass(frozen=True, slots=True)
class CriticalComplaintFinding:
    complaint_id: str
    account_id: str
    account_name: str | None
    segment: Segment | None
    sku: str | None
    category: ComplaintCategory
    severity: Severity
    description: str
    received_on: date
    priority: Priority

    @property
    def alert_type(self) -> AlertType:
        return AlertType.CRITICAL_COMPLAINT

    @property
    def subject(self) -> str:
        # Each complaint is its own alert: two critical complaints are two problems, not one updated.
        return self.complaint_id

    def evidence(self) -> dict[str, Any]:
        return {
            "complaint_id": self.complaint_id,
            "account_id": self.account_id,
            "segment": self.segment,
            "sku": self.sku,
            "category": self.category.value,
            "severity": self.severity.value,
            "description": self.description,
            "received_on": self.received_on.isoformat(),
            "priority": self.priority.value,
        }


def evaluate_complaint(complaint: Complaint, account: Account | None) -> CriticalComplaintFinding | None:
    """Critical severity from anyone, or high severity from a strategic or integrated account.
    An unknown account is treated as no priority tier."""
    segment = account.segment if account else None
    critical = complaint.severity is Severity.CRITICAL
    if not critical and not (complaint.severity is Severity.HIGH and segment in PRIORITY_SEGMENTS):
        return None
    return CriticalComplaintFinding(
        complaint_id=complaint.complaint_id,
        account_id=complaint.account_id,
        account_name=account.name if account else None,
        segment=segment,
        sku=complaint.sku,
        category=complaint.category,
        severity=complaint.severity,
        description=complaint.description,
        received_on=complaint.received_on,
        priority=priority_for([segment], Priority.HIGH if critical else Priority.NORMAL),
    )


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


Finding = ReturnSurgeFinding | CriticalComplaintFinding | CapacityConflictFinding


def fingerprint(finding: Finding) -> str:
    """A stable digest of what the finding says; an open alert changes only when this does."""
    payload = {"type": finding.alert_type.value, "subject": finding.subject, **finding.evidence()}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    alert_type: AlertType
    subject: str  # the SKU (return surge, capacity conflict) or the complaint id
    fingerprint: str


@dataclass(frozen=True, slots=True)
class AlertDecision:
    kind: DecisionKind
    alert_id: str | None  # the open alert to update; None for raise and none-without-alert
    fingerprint: str | None
    finding: Finding | None


def decide_alert(open_alert: OpenAlert | None, finding: Finding | None) -> AlertDecision:
    """One open alert per (type, subject): no alert yet -> raise; changed evidence -> update it;
    the same evidence -> nothing (no flood). No finding -> nothing: an alert is not withdrawn
    automatically because evidence fell below a threshold; people close alerts."""
    if finding is None:
        return AlertDecision(DecisionKind.NONE, open_alert.alert_id if open_alert else None, None, None)
    digest = fingerprint(finding)
    if open_alert is None:
        return AlertDecision(DecisionKind.RAISE, None, digest, finding)
    if (open_alert.alert_type, open_alert.subject) != (finding.alert_type, finding.subject):
        raise ValueError("open alert and finding are about different (type, subject)")
    if open_alert.fingerprint == digest:
        return AlertDecision(DecisionKind.NONE, open_alert.alert_id, digest, finding)
    return AlertDecision(DecisionKind.UPDATE, open_alert.alert_id, digest, finding)
