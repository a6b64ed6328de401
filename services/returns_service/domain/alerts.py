"""One open alert per (type, subject): when a finding raises an alert, updates the open one or changes nothing,
and how a finding reads as the alert's sku, accounts and details."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from .complaints import CriticalComplaintFinding
from .conflicts import CapacityConflictFinding
from .model import AlertType
from .promises import PromiseAtRiskFinding
from .surge import ReturnSurgeFinding

Finding = ReturnSurgeFinding | CriticalComplaintFinding | CapacityConflictFinding | PromiseAtRiskFinding


class Evidence(Protocol):
    """What the one-open-alert decision reads of a finding (the cost findings have it too)."""

    @property
    def alert_type(self) -> AlertType: ...

    @property
    def subject(self) -> str: ...

    def evidence(self) -> dict[str, Any]: ...


class DecisionKind(StrEnum):
    RAISE = "raise"
    UPDATE = "update"
    NONE = "none"


def fingerprint(finding: Evidence) -> str:
    """A stable digest of what the finding says; an open alert changes only when this does."""
    payload = {"type": finding.alert_type.value, "subject": finding.subject, **finding.evidence()}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    alert_type: AlertType
    subject: str  # the SKU (return surge, capacity conflict), the complaint id or the order line
    fingerprint: str


@dataclass(frozen=True, slots=True)
class AlertDecision:
    kind: DecisionKind
    alert_id: str | None  # the open alert to update; None for raise and none-without-alert
    fingerprint: str | None
    finding: Evidence | None


def decide_alert(
    open_alert: OpenAlert | None, finding: Evidence | None, *, resolved_fingerprint: str | None = None
) -> AlertDecision:
    """One open alert per (type, subject): no alert yet -> raise; changed evidence -> update it;
    the same evidence -> nothing (no flood). No finding -> nothing: an alert is not withdrawn
    automatically because evidence fell below a threshold; people close alerts.

    `resolved_fingerprint` is the evidence of the subject's last alert when a person resolved it: that evidence
    does not raise the alert again (the person has dealt with it); different evidence does."""
    if finding is None:
        return AlertDecision(DecisionKind.NONE, open_alert.alert_id if open_alert else None, None, None)
    digest = fingerprint(finding)
    if open_alert is None:
        if digest == resolved_fingerprint:
            return AlertDecision(DecisionKind.NONE, None, digest, finding)
        return AlertDecision(DecisionKind.RAISE, None, digest, finding)
    if (open_alert.alert_type, open_alert.subject) != (finding.alert_type, finding.subject):
        raise ValueError("open alert and finding are about different (type, subject)")
    if open_alert.fingerprint == digest:
        return AlertDecision(DecisionKind.NONE, open_alert.alert_id, digest, finding)
    return AlertDecision(DecisionKind.UPDATE, open_alert.alert_id, digest, finding)


class AlertState(StrEnum):
    """Where an alert stands for the people working it: new, seen and being handled, or closed."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def state_of(status: str, acknowledged_at: datetime | None) -> AlertState:
    """The state from the alert's lifecycle `status` (open or resolved) and whether someone acknowledged it.
    An acknowledged alert is still open to new evidence: it is updated, not raised anew."""
    if status == AlertState.RESOLVED.value:
        return AlertState.RESOLVED
    return AlertState.ACKNOWLEDGED if acknowledged_at is not None else AlertState.OPEN


class AlertAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class Transition(StrEnum):
    CHANGE = "change"  # a new revision, announced on every channel
    ALREADY = "already"  # the alert is already there: nothing changes, the caller gets it as it is
    REFUSED = "refused"  # the action makes no sense in this state


def decide_action(state: AlertState, action: AlertAction) -> Transition:
    """Acknowledging marks an open alert as being handled; resolving closes an open or acknowledged one.
    Repeating either is harmless; acknowledging a resolved alert is refused (it would reopen nothing)."""
    target = AlertState.ACKNOWLEDGED if action is AlertAction.ACKNOWLEDGE else AlertState.RESOLVED
    if state is target:
        return Transition.ALREADY
    if state is AlertState.RESOLVED:
        return Transition.REFUSED
    return Transition.CHANGE


def change_kind(event_type: str) -> str:
    """`raised` for an alert's first change, `updated` for every later one (from the event type's name)."""
    return "raised" if ".raised." in event_type else "updated"


def change_message(alert: Mapping[str, Any], change: str, at: datetime) -> dict[str, Any]:
    """The document one alert change is sent as, the same on every push channel (webhook body, SSE `data`):
    the webhook type `sales-alert.<alert type>`, the change kind, when it happened and the alert."""
    return {"type": f"sales-alert.{alert['type']}", "change": change, "timestamp": at.isoformat(), "data": alert}


@dataclass(frozen=True, slots=True)
class AlertContent:
    """What an alert says, as the CRM reads it: its SKU, the accounts involved and the details."""

    sku: str | None
    accounts: list[dict[str, Any]]
    details: dict[str, Any]

    @property
    def account_ids(self) -> list[str]:
        return [account["account_id"] for account in self.accounts]


def describe(finding: Finding) -> AlertContent:
    """The alert's sku, accounts and details for a finding (JSON-ready values)."""
    if isinstance(finding, ReturnSurgeFinding):
        affected = [
            {"account_id": a.account_id, "name": a.name, "segment": a.segment} for a in finding.affected_accounts
        ]
        details: dict[str, Any] = {
            "rate": finding.rate,
            "quality_units": finding.quality_units,
            "quality_return_count": finding.quality_return_count,
            "shipped_units": finding.shipped_units,
            "window_start": finding.window_start.isoformat(),
            "window_end": finding.window_end.isoformat(),
            "top_reasons": [
                {"reason": r.reason.value, "units": r.units, "returns": r.returns} for r in finding.top_reasons
            ],
            "affected_accounts": [
                {**acc, "units": a.units, "returns": a.returns}
                for acc, a in zip(affected, finding.affected_accounts, strict=True)
            ],
            "active_promotions": [
                {
                    "promotion_id": p.promotion_id,
                    "name": p.name,
                    "starts_on": p.starts_on.isoformat(),
                    "ends_on": p.ends_on.isoformat(),
                    "account_segments": sorted(p.account_segments),
                }
                for p in finding.active_promotions
            ],
        }
        return AlertContent(finding.sku, affected, details)
    if isinstance(finding, CriticalComplaintFinding):
        account = {"account_id": finding.account_id, "name": finding.account_name, "segment": finding.segment}
        details = {
            "complaint_id": finding.complaint_id,
            "category": finding.category.value,
            "severity": finding.severity.value,
            "description": finding.description,
            "received_on": finding.received_on.isoformat(),
        }
        return AlertContent(finding.sku, [account], details)
    if isinstance(finding, PromiseAtRiskFinding):
        return _describe_promise(finding)
    details = {
        "promotion_ids": list(finding.promotion_ids),
        "weeks": [{"week_start": w.week_start.isoformat(), "shortfall": w.shortfall} for w in finding.weeks],
        "total_shortfall": finding.total_shortfall,
        "target_segments": list(finding.target_segments),
    }
    return AlertContent(finding.sku, [], details)


def _describe_promise(finding: PromiseAtRiskFinding) -> AlertContent:
    line, account = finding.line, finding.account
    entry = {"account_id": line.account_id, "name": account.name if account else None, "segment": finding.segment}
    details: dict[str, Any] = {
        "order_id": line.order_id,
        "line_id": line.line_id,
        "account_id": line.account_id,
        "tier": line.tier,
        "owner_email": account.owner_email if account else None,
        "quantity": line.quantity,
        "quantity_short": line.quantity_short,
        "promised_on": line.promised_on.isoformat(),
        "earliest_on": line.earliest_on.isoformat() if line.earliest_on else None,
        "plan_version": line.plan_version,
        "drivers": [{"event_id": d.event_id, "type": d.type, "summary": d.summary} for d in line.drivers],
    }
    return AlertContent(line.sku, [entry], details)
