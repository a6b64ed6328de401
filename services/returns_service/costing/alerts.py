"""How cost findings read as sales alerts: the account, the figures behind the verdict and the priority.

`account-unprofitable` is urgent (high) for a strategic or integrated account, whose service costs most to
keep; `segment-mismatch` is urgent when an account sold a priority tier behaves like a lower one."""

from __future__ import annotations

import math
from typing import Any

from ..domain import Account, AlertContent, Priority, Segment, priority_for
from .ledger import Pool
from .mapping import TierSuggestion, UnprofitableFinding

TIER_RANK = {Segment.STRATEGIC: 0, Segment.INTEGRATED: 1, Segment.EMERGING: 2, Segment.STABLE: 3}


def _account(account_id: str, account: Account | None, segment: Segment | None) -> dict[str, Any]:
    return {"account_id": account_id, "name": account.name if account else None, "segment": segment}


def _number(value: float) -> float | None:
    """JSON has no infinity: a ratio without a denominator is shown as null."""
    return round(value, 6) if math.isfinite(value) else None


def _pool(pool: Pool) -> dict[str, Any]:
    return {"pool": pool.name, "count": pool.count, "amount": round(pool.amount, 2)}


def unprofitable_priority(finding: UnprofitableFinding) -> Priority:
    return priority_for([finding.segment])


def unprofitable_content(finding: UnprofitableFinding, account: Account | None, currency: str) -> AlertContent:
    details = {
        "window_start": finding.window_start.isoformat(),
        "window_end": finding.window_end.isoformat(),
        "currency": currency,
        "revenue": round(finding.revenue, 2),
        "cost_of_goods": round(finding.cost_of_goods, 2),
        "cost_to_serve": round(finding.cost_to_serve, 2),
        "contribution": round(finding.contribution, 2),
        "contribution_pct": None if finding.contribution_pct is None else round(finding.contribution_pct, 2),
        "largest_pools": [_pool(p) for p in finding.largest_pools],
    }
    return AlertContent(None, [_account(finding.account_id, account, finding.segment)], details)


def mismatch_priority(suggestion: TierSuggestion) -> Priority:
    """High when a strategic or integrated account behaves like a lower tier (its promises cost too much)."""
    assigned, suggested = suggestion.assigned, suggestion.suggested
    if assigned is None or suggested is None or TIER_RANK[suggested] <= TIER_RANK[assigned]:
        return Priority.NORMAL
    return priority_for([assigned])


def mismatch_content(suggestion: TierSuggestion, account: Account | None) -> AlertContent:
    p = suggestion.profile
    details = {
        "assigned_segment": suggestion.assigned,
        "suggested_segment": suggestion.suggested,
        "window_start": p.window_start.isoformat(),
        "window_end": p.window_end.isoformat(),
        "profile": {
            "orders": p.orders,
            "active_months": p.active_months,
            "months": p.months,
            "regularity": _number(p.regularity),
            "revenue": round(p.revenue, 2),
            "revenue_share": _number(p.revenue_share),
            "cost_to_serve_ratio": _number(p.cost_to_serve_ratio),
            "return_rate": _number(p.return_rate),
            "complaint_rate": _number(p.complaint_rate),
            "contribution": round(p.contribution, 2),
        },
        "criteria": [
            {
                "criterion": c.name,
                "value": _number(c.value),
                "threshold": c.threshold,
                "at_least": c.at_least,
                "passed": c.passed,
            }
            for c in suggestion.criteria
        ],
    }
    return AlertContent(None, [_account(suggestion.account_id, account, suggestion.assigned)], details)
