"""Market mapping (which tier an account behaves like) and unprofitable accounts, over trailing windows.

Both read priced ledger entries; the window is the `window_months` months ending with the month of
`as_of` (the current month included, as far as it has run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..domain import AlertType, Segment
from .facts import Activity, add_months, month_of
from .ledger import LedgerEntry, Pool, contribution_pct, entries_between
from .whale import sum_totals

# The alert types cost findings raise are the service's own alert types.
CostAlertType = AlertType


def window(as_of: date, months: int) -> tuple[date, date]:
    """First and last month of the trailing window ending with `as_of`'s month."""
    last = month_of(as_of)
    return add_months(last, -(months - 1)), last


@dataclass(frozen=True, slots=True)
class BehaviourProfile:
    """How an account behaved over the window: the evidence market mapping reads."""

    account_id: str
    window_start: date
    window_end: date
    months: int
    active_months: int  # months with at least one order
    orders: int
    revenue: float
    revenue_share: float  # of the revenue of every account in the window (0 when there is none)
    units_shipped: float
    returned_units: float
    complaints: int
    cost_to_serve: float
    contribution: float

    @property
    def regularity(self) -> float:
        """Share of the window's months in which the account ordered."""
        return self.active_months / self.months

    @property
    def cost_to_serve_ratio(self) -> float:
        """Cost-to-serve per unit of revenue; infinite without revenue."""
        return self.cost_to_serve / self.revenue if self.revenue > 0 else math.inf

    @property
    def return_rate(self) -> float:
        """Units returned per unit shipped; 0 with neither, infinite with returns but nothing shipped."""
        if self.units_shipped > 0:
            return self.returned_units / self.units_shipped
        return math.inf if self.returned_units > 0 else 0.0

    @property
    def complaint_rate(self) -> float:
        """Complaints per order; infinite with complaints but no order."""
        if self.orders > 0:
            return self.complaints / self.orders
        return math.inf if self.complaints > 0 else 0.0


def behaviour_profiles(entries: Iterable[LedgerEntry], as_of: date, window_months: int) -> list[BehaviourProfile]:
    """One profile per account with ledger entries in the window, sorted by account id."""
    start, _ = window(as_of, window_months)
    by_account: dict[str, list[LedgerEntry]] = {}
    for entry in entries_between(entries, start, month_of(as_of)):
        by_account.setdefault(entry.account_id, []).append(entry)
    revenue_all = sum(sum(e.revenue for e in rows) for _, rows in sorted(by_account.items()))
    return [
        behaviour_profile(account_id, rows, as_of, window_months, revenue_all)
        for account_id, rows in sorted(by_account.items())
    ]


def behaviour_profile(
    account_id: str, entries: Iterable[LedgerEntry], as_of: date, window_months: int, revenue_all: float
) -> BehaviourProfile:
    """One account's profile over the window from its own entries; `revenue_all` is the revenue of every
    account in the same window (the denominator of its revenue share)."""
    start, end = window(as_of, window_months)
    rows = sorted(
        (e for e in entries_between(entries, start, end) if e.account_id == account_id), key=lambda e: e.month
    )
    totals = sum_totals(rows)
    return BehaviourProfile(
        account_id=account_id,
        window_start=start,
        window_end=end,
        months=window_months,
        active_months=sum(1 for e in rows if e.pool(Activity.ORDER).count > 0),
        orders=int(sum(e.pool(Activity.ORDER).count for e in rows)),
        revenue=totals.revenue,
        revenue_share=totals.revenue / revenue_all if revenue_all > 0 else 0.0,
        units_shipped=sum(e.pool(Activity.UNIT_PICKED).count for e in rows),
        returned_units=totals.returned_units,
        complaints=int(sum(e.pool(Activity.COMPLAINT).count for e in rows)),
        cost_to_serve=totals.cost_to_serve,
        contribution=totals.contribution,
    )


@dataclass(frozen=True, slots=True)
class MarketMappingRule:
    """Suggests the tier an account behaves like; the first tier whose every criterion holds wins:

    - strategic: at least `strategic_min_revenue_share` of all revenue, cost-to-serve at most
      `strategic_max_cost_to_serve_ratio` of its revenue, and healthy;
    - integrated: orders in at least `integrated_min_regularity` of the months, cost-to-serve at most
      `integrated_max_cost_to_serve_ratio` of revenue, and healthy;
    - emerging: cost-to-serve at most `emerging_max_cost_to_serve_ratio` of revenue and a contribution
      that is not negative;
    - stable: everything else (transactional, or costly to serve for what it buys).
    Healthy: returned units at most `max_return_rate` of units shipped and complaints at most
    `max_complaint_rate` per order. Fewer than `min_orders` orders in the window: no suggestion.
    """

    window_months: int = 6
    min_orders: int = 3
    strategic_min_revenue_share: float = 0.10
    strategic_max_cost_to_serve_ratio: float = 0.10
    integrated_min_regularity: float = 0.8
    integrated_max_cost_to_serve_ratio: float = 0.15
    emerging_max_cost_to_serve_ratio: float = 0.25
    max_return_rate: float = 0.05
    max_complaint_rate: float = 0.10

    def __post_init__(self) -> None:
        if self.window_months < 1 or self.min_orders < 1:
            raise ValueError("window_months and min_orders must be >= 1")
        values = (
            self.strategic_min_revenue_share,
            self.strategic_max_cost_to_serve_ratio,
            self.integrated_min_regularity,
            self.integrated_max_cost_to_serve_ratio,
            self.emerging_max_cost_to_serve_ratio,
            self.max_return_rate,
            self.max_complaint_rate,
        )
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("thresholds must be finite and >= 0")


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str  # e.g. "strategic.revenue_share"
    value: float
    threshold: float
    at_least: bool  # True: value >= threshold passes; False: value <= threshold passes

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold


@dataclass(frozen=True, slots=True)
class TierSuggestion:
    account_id: str
    assigned: Segment | None
    suggested: Segment | None  # None: too little history to judge
    criteria: tuple[Criterion, ...]  # every criterion evaluated, in rule order
    profile: BehaviourProfile

    @property
    def mismatch(self) -> bool:
        return self.assigned is not None and self.suggested is not None and self.assigned != self.suggested

    @property
    def alert_type(self) -> CostAlertType:
        return CostAlertType.SEGMENT_MISMATCH

    @property
    def subject(self) -> str:
        return self.account_id

    def evidence(self) -> dict[str, Any]:
        """What the alert says: the tiers and which criteria held (figures move daily; verdicts do not)."""
        return {
            "assigned": self.assigned,
            "suggested": self.suggested,
            "criteria": [[c.name, c.passed] for c in self.criteria],
        }


def suggest_tier(profile: BehaviourProfile, assigned: Segment | None, rule: MarketMappingRule) -> TierSuggestion:
    p = profile
    healthy = [
        ("return_rate", p.return_rate, rule.max_return_rate, False),
        ("complaint_rate", p.complaint_rate, rule.max_complaint_rate, False),
    ]
    tiers: list[tuple[Segment, list[tuple[str, float, float, bool]]]] = [
        (
            Segment.STRATEGIC,
            [
                ("revenue_share", p.revenue_share, rule.strategic_min_revenue_share, True),
                ("cost_to_serve_ratio", p.cost_to_serve_ratio, rule.strategic_max_cost_to_serve_ratio, False),
                *healthy,
            ],
        ),
        (
            Segment.INTEGRATED,
            [
                ("regularity", p.regularity, rule.integrated_min_regularity, True),
                ("cost_to_serve_ratio", p.cost_to_serve_ratio, rule.integrated_max_cost_to_serve_ratio, False),
                *healthy,
            ],
        ),
        (
            Segment.EMERGING,
            [
                ("cost_to_serve_ratio", p.cost_to_serve_ratio, rule.emerging_max_cost_to_serve_ratio, False),
                ("contribution", p.contribution, 0.0, True),
            ],
        ),
    ]
    criteria = tuple(
        Criterion(f"{tier.value}.{name}", value, threshold, at_least)
        for tier, checks in tiers
        for name, value, threshold, at_least in checks
    )
    if p.orders < rule.min_orders:
        return TierSuggestion(p.account_id, assigned, None, criteria, p)
    suggested = next(
        (tier for tier, _ in tiers if all(c.passed for c in criteria if c.name.startswith(f"{tier.value}."))),
        Segment.STABLE,
    )
    return TierSuggestion(p.account_id, assigned, suggested, criteria, p)


def suggest_tiers(
    entries: Iterable[LedgerEntry], segments: Mapping[str, Segment], as_of: date, rule: MarketMappingRule
) -> dict[str, TierSuggestion]:
    """A suggestion per account active in the window, to show beside its assigned segment."""
    return {
        p.account_id: suggest_tier(p, segments.get(p.account_id), rule)
        for p in behaviour_profiles(entries, as_of, rule.window_months)
    }


def find_segment_mismatches(
    entries: Iterable[LedgerEntry], segments: Mapping[str, Segment], as_of: date, rule: MarketMappingRule
) -> list[TierSuggestion]:
    """Accounts with an assigned segment that behave like another tier, sorted by account id."""
    return [s for s in suggest_tiers(entries, segments, as_of, rule).values() if s.mismatch]


@dataclass(frozen=True, slots=True)
class UnprofitableRule:
    """An account is unprofitable when its contribution over the trailing `window_months` is negative. An account
    with fewer than `min_orders` orders in the window is not judged: without its sales, returns and complaints
    alone would make every such account look unprofitable. Nor is one with fewer than `min_shipments` drops in
    the window: an order's revenue counts once it ships, while the cost of processing it counts when booked, so
    a freshly booked, profitable order would otherwise look like a loss until its first delivery."""

    window_months: int = 3
    min_orders: int = 1
    min_shipments: int = 1

    def __post_init__(self) -> None:
        if self.window_months < 1:
            raise ValueError("window_months must be >= 1")
        if self.min_orders < 0 or self.min_shipments < 0:
            raise ValueError("min_orders and min_shipments must be >= 0")


@dataclass(frozen=True, slots=True)
class UnprofitableFinding:
    account_id: str
    segment: Segment | None
    window_start: date
    window_end: date
    revenue: float
    cost_of_goods: float
    cost_to_serve: float
    contribution: float
    contribution_pct: float | None
    largest_pools: tuple[Pool, ...]  # the three costliest pools: the behaviour to change first

    @property
    def alert_type(self) -> CostAlertType:
        return CostAlertType.ACCOUNT_UNPROFITABLE

    @property
    def subject(self) -> str:
        return self.account_id

    def evidence(self) -> dict[str, Any]:
        """What the alert says: the window and the pools driving the loss, not the day's exact figures."""
        return {
            "segment": self.segment,
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "largest_pools": [p.name for p in self.largest_pools],
        }


def find_unprofitable(
    entries: Sequence[LedgerEntry], segments: Mapping[str, Segment], as_of: date, rule: UnprofitableRule
) -> list[UnprofitableFinding]:
    """Accounts whose contribution over the trailing window is below zero, sorted by account id."""
    start, end = window(as_of, rule.window_months)
    by_account: dict[str, list[LedgerEntry]] = {}
    for entry in entries_between(entries, start, end):
        by_account.setdefault(entry.account_id, []).append(entry)
    findings = []
    for account_id, rows in sorted(by_account.items()):
        totals = sum_totals(sorted(rows, key=lambda e: e.month))
        orders = sum(e.pool(Activity.ORDER).count for e in rows)
        shipments = sum(e.pool(Activity.SHIPMENT).count for e in rows)
        if totals.contribution >= 0 or orders < rule.min_orders or shipments < rule.min_shipments:
            continue
        costly = sorted((p for p in totals.pools if p.amount > 0), key=lambda p: (-p.amount, p.name))[:3]
        findings.append(
            UnprofitableFinding(
                account_id=account_id,
                segment=segments.get(account_id),
                window_start=start,
                window_end=end,
                revenue=totals.revenue,
                cost_of_goods=totals.cost_of_goods,
                cost_to_serve=totals.cost_to_serve,
                contribution=totals.contribution,
                contribution_pct=contribution_pct(totals.contribution, totals.revenue),
                largest_pools=tuple(costly),
            )
        )
    return findings
