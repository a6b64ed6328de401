"""The critical-complaint rule: which complaints sales must hear about at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from .model import (
    PRIORITY_SEGMENTS,
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    Priority,
    Segment,
    Severity,
    priority_for,
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


def may_be_critical(severity: Severity) -> bool:
    """Whether a complaint of `severity` can be critical for some account (`evaluate_complaint`): one of any other
    severity never raises an alert, whatever its account."""
    return severity is Severity.CRITICAL or severity is Severity.HIGH


def evaluate_complaint(complaint: Complaint, account: Account | None) -> CriticalComplaintFinding | None:
    """Critical severity from anyone, or high severity from a strategic or integrated account.
    An unknown account is treated as no priority tier."""
    if not may_be_critical(complaint.severity):
        return None
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
