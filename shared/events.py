"""The CloudEvents 1.0 envelope, the topic names and the v1 event models of the external contract."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.types import RECEIVED, EventDate

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


class Topic(StrEnum):
    PROMOTIONS = "salesops.promotions"
    WAREHOUSE_REPORTS = "salesops.warehouse-reports"
    ORDER_VOLUMES = "salesops.order-volumes"
    RETURNS = "salesops.returns"
    SALES_ALERTS = "salesops.sales-alerts"
    PLANS = "salesops.plans"
    # Customers: sales orders (fulfillment) and accounts (returns).
    ORDERS = "salesops.orders"
    ACCOUNTS = "salesops.accounts"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


ALL_TOPICS: tuple[str, ...] = tuple(t.value for t in Topic) + tuple(dead_letter_topic(t) for t in Topic)


class EventType(StrEnum):
    PROMOTION_PLANNED = "salesops.promotion.planned.v1"
    PROMOTION_REVISED = "salesops.promotion.revised.v1"
    PROMOTION_CANCELLED = "salesops.promotion.cancelled.v1"
    LAUNCH_PLANNED = "salesops.launch.planned.v1"
    ORDER_VOLUME_REPORT = "salesops.order-volume.report.v1"
    ORDER_VOLUME_REPORTED = "salesops.order-volume.reported.v1"
    ORDER_SPIKE_DETECTED = "salesops.order-spike.detected.v1"
    ORDER_SPIKE_RETRACTED = "salesops.order-spike.retracted.v1"
    RETURN_RECORDED = "salesops.return.recorded.v1"
    COMPLAINT_RECORDED = "salesops.complaint.recorded.v1"
    SALES_ALERT_RAISED = "salesops.sales-alert.raised.v1"
    SALES_ALERT_UPDATED = "salesops.sales-alert.updated.v1"
    MPS_REVISED = "salesops.mps.revised.v1"
    CAPACITY_CONFLICT_DETECTED = "salesops.capacity-conflict.detected.v1"
    CAPACITY_CONFLICT_RESOLVED = "salesops.capacity-conflict.resolved.v1"
    # Customers: sales orders, accounts and the promises planning makes to them.
    SALES_ORDER_BOOKED = "salesops.sales-order.booked.v1"
    SALES_ORDER_CHANGED = "salesops.sales-order.changed.v1"
    SALES_ORDER_CANCELLED = "salesops.sales-order.cancelled.v1"
    SHIPMENT_RECORDED = "salesops.shipment.recorded.v1"
    ACCOUNT_CHANGED = "salesops.account.changed.v1"
    PROMISE_AT_RISK = "salesops.promise.at-risk.v1"
    PROMISE_RESTORED = "salesops.promise.restored.v1"


# ---------------------------------------------------------------- v1 data models


class EventData(BaseModel):
    """Base of every event payload: unknown fields are ignored so producers can add fields safely."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PromotionItemData(EventData):
    sku: str = Field(min_length=1)
    uplift_pct: float = Field(gt=-100)


class CannibalizationData(EventData):
    sku: str = Field(min_length=1)
    pct: float = Field(ge=0, le=100)


# Bounds of a promotion's lists, shared by the promotion API and planning's scenarios (which take the same
# body). With every SKU and label at its longest, a promotion event stays far below the broker's 1 MB limit.
MAX_PROMOTION_ITEMS = 1_000
MAX_CANNIBALIZED = 500
MAX_PROMOTION_LABELS = 100


class PromotionData(EventData):
    """Event-carried state of a promotion: every promotion event carries the whole promotion."""

    promotion_id: str = Field(min_length=1)
    name: str
    starts_on: EventDate
    ends_on: EventDate
    items: list[PromotionItemData] = Field(min_length=1)
    post_promo_dip_pct: float = Field(default=0, ge=0, le=100)
    post_promo_dip_weeks: int = Field(default=0, ge=0)
    cannibalized: list[CannibalizationData] = Field(default_factory=list)
    channel: str | None = None
    regions: list[str] = Field(default_factory=list)
    account_segments: list[str] = Field(default_factory=list)
    status: str = "planned"
    version: int = Field(default=1, ge=1)


class LaunchData(EventData):
    launch_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    launch_on: EventDate
    reference_sku: str = Field(min_length=1)
    scale_pct: float = Field(default=100, gt=0)
    ramp_weeks: int = Field(default=0, ge=0)


class VolumeLineData(EventData):
    sku: str = Field(min_length=1)
    day: EventDate
    units_ordered: int = Field(ge=0)
    units_shipped: int = Field(ge=0)
    units_backordered: int = Field(ge=0)


class OrderVolumeReportData(EventData):
    """The inbound warehouse report: the body of `POST /v1/order-volumes`; its handler applies that body's rules."""

    warehouse_id: str = Field(min_length=1, max_length=100)
    lines: list[VolumeLineData] = Field(min_length=1, max_length=10_000)


class DailyTotalData(EventData):
    day: EventDate
    units_ordered: int = Field(ge=0)
    units_shipped: int = Field(ge=0)
    units_backordered: int = Field(ge=0)


# A producer announces more changed days of one SKU in several events, so that no event nears the broker's limit.
MAX_REPORTED_DAYS = 1_000


class OrderVolumeReportedData(EventData):
    sku: str = Field(min_length=1)
    days: list[DailyTotalData] = Field(min_length=1, description=f"At most {MAX_REPORTED_DAYS:,} days an event")


class OrderSpikeData(EventData):
    sku: str = Field(min_length=1)
    day: EventDate
    units: float = Field(ge=0)
    baseline: float = Field(ge=0)
    ratio: float | None = None
    explained_by_promotion_id: str | None = None
    # Added in v1 (optional, so older consumers and producers stay compatible):
    z_score: float | None = None
    excess_units: float | None = None
    status: str = "detected"  # "retracted" when a correction removed the spike


class ReturnData(EventData):
    return_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    account_id: str = Field(min_length=1)
    reason: str
    condition: str
    returned_on: EventDate
    order_id: str | None = None
    resolution: str | None = None


class ComplaintData(EventData):
    complaint_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    sku: str | None = None
    category: str
    severity: str
    description: str
    received_on: EventDate


class SalesAlertData(EventData):
    alert_id: str = Field(min_length=1)
    type: str
    status: str
    priority: str
    sku: str | None = None
    account_ids: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    # The affected accounts with their service tier: [{"account_id", "name", "segment"}].
    accounts: list[dict[str, Any]] = Field(default_factory=list)
    revision: int = Field(default=1, ge=1)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WeekChangeData(EventData):
    week_start: date
    field: str
    before: float | None
    after: float | None


class MpsRevisedData(EventData):
    sku: str = Field(min_length=1)
    plan_version: int = Field(ge=1)
    changed_weeks: list[WeekChangeData] = Field(default_factory=list)
    driver_event_ids: list[str] = Field(default_factory=list)


class ShortfallWeekData(EventData):
    week_start: date
    shortfall: float = Field(ge=0)


class CapacityConflictData(EventData):
    sku: str = Field(min_length=1)
    promotion_ids: list[str] = Field(default_factory=list)
    weeks: list[ShortfallWeekData] = Field(default_factory=list)
    total_shortfall: float = Field(default=0, ge=0)
    plan_version: int | None = None


EVENT_CATALOG: dict[EventType, tuple[Topic, type[EventData]]] = {
    EventType.PROMOTION_PLANNED: (Topic.PROMOTIONS, PromotionData),
    EventType.PROMOTION_REVISED: (Topic.PROMOTIONS, PromotionData),
    EventType.PROMOTION_CANCELLED: (Topic.PROMOTIONS, PromotionData),
    EventType.LAUNCH_PLANNED: (Topic.PROMOTIONS, LaunchData),
    EventType.ORDER_VOLUME_REPORT: (Topic.WAREHOUSE_REPORTS, OrderVolumeReportData),
    EventType.ORDER_VOLUME_REPORTED: (Topic.ORDER_VOLUMES, OrderVolumeReportedData),
    EventType.ORDER_SPIKE_DETECTED: (Topic.ORDER_VOLUMES, OrderSpikeData),
    EventType.ORDER_SPIKE_RETRACTED: (Topic.ORDER_VOLUMES, OrderSpikeData),
    EventType.RETURN_RECORDED: (Topic.RETURNS, ReturnData),
    EventType.COMPLAINT_RECORDED: (Topic.RETURNS, ComplaintData),
    EventType.SALES_ALERT_RAISED: (Topic.SALES_ALERTS, SalesAlertData),
    EventType.SALES_ALERT_UPDATED: (Topic.SALES_ALERTS, SalesAlertData),
    EventType.MPS_REVISED: (Topic.PLANS, MpsRevisedData),
    EventType.CAPACITY_CONFLICT_DETECTED: (Topic.PLANS, CapacityConflictData),
    EventType.CAPACITY_CONFLICT_RESOLVED: (Topic.PLANS, CapacityConflictData),
}


# ---------------------------------------------------------------- customers: sales orders, accounts, promises
# Kept together so that additions elsewhere in this module merge cleanly.

# The service-differentiation tiers of an account (`segment`), highest first.
Segment = Literal["strategic", "integrated", "emerging", "stable"]
# Matches the API's limit on lines per sales order.
MAX_ORDER_LINES = 500


class SalesOrderLineData(EventData):
    line_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=0)
    requested_on: date
    promised_on: date
    unit_price: float | None = Field(default=None, ge=0)
    unit_cost: float | None = Field(default=None, ge=0)
    shipped_quantity: int = Field(ge=0)
    # What is still to ship: quantity minus shipped, and 0 once the order is cancelled.
    open_quantity: int = Field(ge=0)


class SalesOrderData(EventData):
    """Event-carried state of a sales order: every order event carries the whole order at `version`.

    `version` starts at 1 when the order is booked and grows by one with every change, shipment and the
    cancellation; a consumer never applies an older version over a newer one. `tier` is the account's tier
    as the fulfillment service knew it when the event was written (null: it had not heard of the account).
    """

    order_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    tier: Segment | None = None
    ordered_on: date
    rush: bool = False
    status: Literal["open", "partially_shipped", "shipped", "cancelled"]
    version: int = Field(ge=1)
    booked_at: datetime
    lines: list[SalesOrderLineData] = Field(min_length=1, max_length=MAX_ORDER_LINES)


class ShipmentLineData(EventData):
    line_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class ShipmentData(EventData):
    shipment_id: str = Field(min_length=1)
    shipped_on: date
    lines: list[ShipmentLineData] = Field(min_length=1, max_length=MAX_ORDER_LINES)


class ShipmentRecordedData(SalesOrderData):
    """A delivery (one drop) of a sales order: the order as it stands after it, and the shipment itself."""

    shipment: ShipmentData


class AccountChangedData(EventData):
    """Event-carried state of an account: its tier (`segment`) and owner; the highest `version` is current."""

    account_id: str = Field(min_length=1)
    name: str
    segment: Segment
    owner_email: str | None = None
    version: int = Field(ge=1)
    changed_at: datetime


class PromiseDriverData(EventData):
    """An event that moved the plan (a capacity cut, a promotion, a booked order)."""

    event_id: str = Field(min_length=1)
    type: str | None = None
    summary: str = ""


class PromiseData(EventData):
    """A booked order line's promise as a plan revision leaves it: `at-risk` when it can no longer be met on
    `promised_on` (short by `quantity_short`; `earliest_on` null when no date in the horizon covers it),
    `restored` when it is covered again."""

    order_id: str = Field(min_length=1)
    line_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    tier: Segment
    sku: str = Field(min_length=1)
    quantity: float = Field(ge=0)
    quantity_short: float = Field(ge=0)
    promised_on: date
    earliest_on: date | None = None
    plan_version: int = Field(ge=1)
    drivers: list[PromiseDriverData] = Field(default_factory=list)


EVENT_CATALOG.update(
    {
        EventType.SALES_ORDER_BOOKED: (Topic.ORDERS, SalesOrderData),
        EventType.SALES_ORDER_CHANGED: (Topic.ORDERS, SalesOrderData),
        EventType.SALES_ORDER_CANCELLED: (Topic.ORDERS, SalesOrderData),
        EventType.SHIPMENT_RECORDED: (Topic.ORDERS, ShipmentRecordedData),
        EventType.ACCOUNT_CHANGED: (Topic.ACCOUNTS, AccountChangedData),
        EventType.PROMISE_AT_RISK: (Topic.PLANS, PromiseData),
        EventType.PROMISE_RESTORED: (Topic.PLANS, PromiseData),
    }
)


def topic_of(event_type: EventType) -> Topic:
    return EVENT_CATALOG[event_type][0]


def types_on(topic: str) -> frozenset[str]:
    return frozenset(t.value for t, (tp, _) in EVENT_CATALOG.items() if tp == topic)


# ---------------------------------------------------------------- the envelope


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode JSON document; extension attributes are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    data: Any = None
    traceparent: str | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class InvalidEvent(Exception):
    """A message that can never be processed: it belongs in the dead-letter topic, with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def new_event(
    event_type: EventType,
    *,
    source: str,
    subject: str,
    data: EventData,
    traceparent: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=str(uuid.uuid4()),
        source=source,
        type=event_type.value,
        time=time or datetime.now(UTC),
        subject=subject,
        datacontenttype="application/json",
        data=data.model_dump(mode="json"),
        traceparent=traceparent,
    )


def parse_envelope(raw: bytes | None) -> CloudEvent:
    """Parse raw Kafka bytes into a CloudEvent, or raise InvalidEvent saying why not."""
    if raw is None:
        raise InvalidEvent("empty-message", "the message has no value")
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidEvent("not-json", str(first["msg"])) from exc
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise InvalidEvent("not-cloudevents", f"{where}: {first['msg']}") from exc


def parse_data(event: CloudEvent, topic: str) -> EventData:
    """Validate the event's `data` against the contract's model of its type on this topic."""
    try:
        event_type = EventType(event.type)
    except ValueError as exc:
        raise InvalidEvent("unknown-type", f"{event.type!r} is not a salesops v1 event type") from exc
    expected_topic, model = EVENT_CATALOG[event_type]
    if expected_topic != topic:
        raise InvalidEvent("unknown-type", f"{event.type!r} does not belong on {topic}")
    try:
        # Dates a client originated are checked against the documented range here, where the event enters.
        return model.model_validate(event.data, context={RECEIVED: True})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise InvalidEvent("invalid-data", f"data.{where}: {first['msg']}") from exc
