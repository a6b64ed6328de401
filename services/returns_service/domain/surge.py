"""The return-surge rule: quality returns of a SKU over a trailing window against the units shipped in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .model import (
    QUALITY_REASONS,
    Account,
    AlertType,
    Priority,
    PromotionRef,
    ReturnReason,
    ReturnRecord,
    Segment,
    priority_for,
)


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
