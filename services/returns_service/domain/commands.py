"""What the returns desk asks of the service, as plain values: the API turns each request into one of these, so
handlers never see an HTTP schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .alerts import AlertAction
from .model import ComplaintCategory, ReturnCondition, ReturnReason, Segment, Severity


@dataclass(frozen=True, slots=True)
class RecordReturn:
    """Record a return; `body` is the request as JSON values: stored, compared on a retry and announced."""

    return_id: str
    sku: str
    account_id: str
    quantity: int
    reason: ReturnReason
    condition: ReturnCondition
    returned_on: date
    body: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RecordReturn:
        return cls(
            return_id=body["return_id"],
            sku=body["sku"],
            account_id=body["account_id"],
            quantity=int(body["quantity"]),
            reason=ReturnReason(body["reason"]),
            condition=ReturnCondition(body["condition"]),
            returned_on=date.fromisoformat(body["returned_on"]),
            body=dict(body),
        )


@dataclass(frozen=True, slots=True)
class RecordComplaint:
    """Record a complaint; `body` as for a return."""

    complaint_id: str
    account_id: str
    sku: str | None
    category: ComplaintCategory
    severity: Severity
    description: str
    received_on: date
    body: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RecordComplaint:
        return cls(
            complaint_id=body["complaint_id"],
            account_id=body["account_id"],
            sku=body.get("sku"),
            category=ComplaintCategory(body["category"]),
            severity=Severity(body["severity"]),
            description=body["description"],
            received_on=date.fromisoformat(body["received_on"]),
            body=dict(body),
        )


@dataclass(frozen=True, slots=True)
class PutAccount:
    """Create or replace an account and its service tier."""

    account_id: str
    name: str
    segment: Segment
    owner_email: str | None = None


@dataclass(frozen=True, slots=True)
class AcknowledgeAlert:
    """Someone (`by`: the API key's name) has seen the alert and is handling it."""

    alert_id: str
    by: str

    @property
    def action(self) -> AlertAction:
        return AlertAction.ACKNOWLEDGE


@dataclass(frozen=True, slots=True)
class ResolveAlert:
    """Someone (`by`) has dealt with the alert's cause."""

    alert_id: str
    by: str

    @property
    def action(self) -> AlertAction:
        return AlertAction.RESOLVE
