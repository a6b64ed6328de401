"""The promise-at-risk rule: planning's verdict on a booked order line as the account owner's alert, one per
line, and which of planning's promise events still count when they arrive out of order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from .model import Account, AlertType, Priority, priority_for


def promise_subject(order_id: str, line_id: str) -> str:
    """The alert subject of an order line; `/` never occurs in an id, so two lines never share a subject."""
    return f"{order_id}/{line_id}"


@dataclass(frozen=True, slots=True)
class PromiseDriver:
    """An event behind the plan revision (a capacity cut, a promotion, a booked order)."""

    event_id: str
    type: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class PromiseLine:
    """A booked line's promise as planning's revision `plan_version` of the SKU's plan leaves it."""

    order_id: str
    line_id: str
    account_id: str
    tier: str  # the tier planning judged the line under
    sku: str
    quantity: float  # still open
    quantity_short: float
    promised_on: date
    earliest_on: date | None  # the first date the revised plan covers it in full; None: not within the horizon
    plan_version: int
    drivers: tuple[PromiseDriver, ...] = ()

    @property
    def subject(self) -> str:
        return promise_subject(self.order_id, self.line_id)


@dataclass(frozen=True, slots=True)
class PromiseMark:
    """The newest promise event applied to a line: its SKU's plan version and whether it left the line at risk."""

    sku: str
    plan_version: int
    at_risk: bool


@dataclass(frozen=True, slots=True)
class PromiseStep:
    """What to do with an arriving promise event: `apply` it or not (an older one is stale), and whether an
    at-risk is a new break (the line was kept before), which a person's earlier resolution does not cover."""

    apply: bool
    new_break: bool


def decide_promise_step(last: PromiseMark | None, arriving: PromiseMark) -> PromiseStep:
    """Planning publishes a line's events keyed by SKU, in plan-version order; an event of an older version of
    the same SKU's plan than the last one applied is stale and changes nothing (a late at-risk never reopens a
    restored line). Equal versions apply in arrival order (a new tier re-judges promises without a new plan
    version). Versions of different SKUs do not compare: a line that moved to another SKU applies."""
    if last is not None and last.sku == arriving.sku and arriving.plan_version < last.plan_version:
        return PromiseStep(apply=False, new_break=False)
    return PromiseStep(apply=True, new_break=arriving.at_risk and (last is None or not last.at_risk))


@dataclass(frozen=True, slots=True)
class PromiseAtRiskFinding:
    line: PromiseLine
    account: Account | None  # the service's own record of the account; None when it has not been registered
    priority: Priority

    @property
    def alert_type(self) -> AlertType:
        return AlertType.PROMISE_AT_RISK

    @property
    def subject(self) -> str:
        return self.line.subject

    @property
    def sku(self) -> str:
        return self.line.sku

    @property
    def segment(self) -> str:
        """The account's tier as this service owns it; planning's tier until the account is registered here."""
        return self.account.segment.value if self.account is not None else self.line.tier

    def evidence(self) -> dict[str, Any]:
        """What the promise says; a new plan version or other drivers with the same verdict change nothing."""
        line = self.line
        return {
            "order_id": line.order_id,
            "line_id": line.line_id,
            "account_id": line.account_id,
            "tier": line.tier,
            "sku": line.sku,
            "quantity": line.quantity,
            "quantity_short": line.quantity_short,
            "promised_on": line.promised_on.isoformat(),
            "earliest_on": line.earliest_on.isoformat() if line.earliest_on else None,
            "priority": self.priority.value,
        }


def evaluate_promise_at_risk(line: PromiseLine, account: Account | None) -> PromiseAtRiskFinding:
    """A broken promise always alerts its account's owner; HIGH priority for a strategic or integrated
    account (by the tier planning judged it under, or the one registered here)."""
    segments = [line.tier, account.segment.value if account is not None else None]
    return PromiseAtRiskFinding(line, account, priority_for(segments))
