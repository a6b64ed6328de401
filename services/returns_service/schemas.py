"""Request and response models of the returns API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.returns_service.domain import (
    AlertState,
    AlertType,
    ComplaintCategory,
    Priority,
    Resolution,
    ReturnCondition,
    ReturnReason,
    Segment,
    Severity,
)
from shared.types import DATE_RANGE, PlanDate, Sku

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReturnCreate(Strict):
    return_id: Identifier = Field(description="The client's own id; the idempotency key of the create")
    sku: Sku
    quantity: int = Field(gt=0, le=1_000_000)
    account_id: Identifier
    reason: ReturnReason
    condition: ReturnCondition
    returned_on: PlanDate = Field(description=f"Within {DATE_RANGE}, at most one day after today")
    order_id: Identifier | None = None
    resolution: Resolution | None = None


class ReturnRead(ReturnCreate):
    model_config = ConfigDict(extra="ignore")

    # Read back as stored: a record stored before today's input rules must still be readable.
    sku: str
    returned_on: date
    created_at: datetime


class ReturnList(BaseModel):
    data: list[ReturnRead]


class ComplaintCreate(Strict):
    complaint_id: Identifier = Field(description="The client's own id; the idempotency key of the create")
    account_id: Identifier
    sku: Sku | None = None
    category: ComplaintCategory
    severity: Severity
    description: str = Field(min_length=1, max_length=5000)
    received_on: PlanDate = Field(description=f"Within {DATE_RANGE}")


class ComplaintRead(ComplaintCreate):
    model_config = ConfigDict(extra="ignore")

    # Read back as stored, like ReturnRead.
    sku: str | None = None
    received_on: date
    created_at: datetime


class ComplaintList(BaseModel):
    data: list[ComplaintRead]


class AccountPut(Strict):
    name: str = Field(min_length=1, max_length=200)
    segment: Segment
    owner_email: Email | None = None


class AccountRead(BaseModel):
    account_id: str
    name: str
    segment: Segment
    owner_email: str | None
    version: int = Field(description="1 when created, +1 per change; the version of its account.changed event")
    created_at: datetime
    updated_at: datetime


class AccountList(BaseModel):
    data: list[AccountRead]


class AlertAccount(BaseModel):
    account_id: str
    name: str | None = None
    segment: Segment | None = None


class AlertRead(BaseModel):
    """A sales alert as the CRM sees it (API, SSE, webhooks and the sales-alerts topic)."""

    id: str
    alert_id: str
    type: AlertType
    status: str = Field(
        description="open (new evidence updates it), or resolved: by a person, or when the cause went away"
    )
    priority: Priority
    sku: str | None
    account_ids: list[str]
    accounts: list[AlertAccount]
    details: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    state: AlertState = Field(description="open, acknowledged (someone is handling it) or resolved")
    acknowledged_by: str | None = Field(default=None, description="the API key's name that acknowledged it")
    acknowledged_at: datetime | None = None
    resolved_by: str | None = Field(default=None, description="the API key's name; none when the cause went away")
    resolved_at: datetime | None = None


class AlertList(BaseModel):
    data: list[AlertRead]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")


class StreamTokenCreated(BaseModel):
    token: str = Field(description="pass as `?token=` to `GET /v1/alerts/stream`; grants only that stream")
    expires_at: datetime = Field(description="open (or reopen) the stream before this; then ask for a new token")


AlertEventType = Annotated[
    str,
    # One of the alert types, as webhook bodies name them (`sales-alert.<alert type>`).
    StringConstraints(pattern=rf"^sales-alert\.({'|'.join(t.value for t in AlertType)})$"),
]


class WebhookCreate(Strict):
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[AlertEventType] | None = Field(
        default=None, max_length=20, description="the webhook types to receive (at most 20); all when omitted"
    )


class WebhookRead(BaseModel):
    id: str
    url: str
    event_types: list[str]
    status: str = Field(description="enabled, or disabled after persistent delivery failure")
    consecutive_failures: int
    disabled_reason: str | None
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="whsec_...: shown only in this response; verify signatures with it")


class WebhookList(BaseModel):
    data: list[WebhookRead]


class AttemptRead(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryRead(BaseModel):
    delivery_id: int
    message_id: str
    alert_id: str
    event_type: str
    status: str = Field(description="pending, delivered, or failed (attempts exhausted)")
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptRead]


class DeliveryList(BaseModel):
    data: list[DeliveryRead]
