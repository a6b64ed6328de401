"""Returns rules: when returns and complaints become sales alerts (return surge, critical complaint, capacity
conflict), how urgent they are for the account's service tier, and when an open alert changes.

`model` is the vocabulary and records, `surge`, `complaints` and `conflicts` the three alert rules, `alerts`
the one-open-alert decision, `commands` what the desk asks, `delivery` the webhook delivery policy."""

from .alerts import AlertContent, AlertDecision, DecisionKind, Finding, OpenAlert, decide_alert, describe, fingerprint
from .commands import PutAccount, RecordComplaint, RecordReturn
from .complaints import CriticalComplaintFinding, evaluate_complaint
from .conflicts import CapacityConflictFinding, WeekShortfall, evaluate_capacity_conflict
from .model import (
    PRIORITY_SEGMENTS,
    QUALITY_REASONS,
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    Priority,
    PromotionRef,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Segment,
    Severity,
    priority_for,
)
from .surge import AffectedAccount, ReasonCount, ReturnSurgeFinding, ReturnSurgeRule, evaluate_return_surge

__all__ = [
    "PRIORITY_SEGMENTS",
    "QUALITY_REASONS",
    "Account",
    "AffectedAccount",
    "AlertContent",
    "AlertDecision",
    "AlertType",
    "CapacityConflictFinding",
    "Complaint",
    "ComplaintCategory",
    "CriticalComplaintFinding",
    "DecisionKind",
    "Finding",
    "OpenAlert",
    "Priority",
    "PromotionRef",
    "PutAccount",
    "ReasonCount",
    "RecordComplaint",
    "RecordReturn",
    "Resolution",
    "ReturnCondition",
    "ReturnReason",
    "ReturnRecord",
    "ReturnSurgeFinding",
    "ReturnSurgeRule",
    "Segment",
    "Severity",
    "WeekShortfall",
    "decide_alert",
    "describe",
    "evaluate_capacity_conflict",
    "evaluate_complaint",
    "evaluate_return_surge",
    "fingerprint",
    "priority_for",
]
