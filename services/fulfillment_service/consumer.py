"""Kafka subscriptions of the fulfillment service: warehouse reports in, promotion windows to explain spikes,
and account tiers to stamp on sales-order events. One typed function per event type parses the event into the
handler's terms and binds the store."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from services.fulfillment_service import handlers
from services.fulfillment_service.domain import ReportVolumes, SpikeRule
from services.fulfillment_service.schemas import OrderVolumeReport
from services.fulfillment_service.store import SqlStore
from shared.db import UnitOfWork
from shared.events import (
    AccountChangedData,
    CloudEvent,
    EventType,
    InvalidEvent,
    OrderVolumeReportData,
    PromotionData,
    Topic,
)
from shared.kafka import EventHandler, Subscription

log = structlog.get_logger("salesops.fulfillment")


def _report(data: OrderVolumeReportData) -> OrderVolumeReport:
    """The same body and limits as the HTTP endpoint: a report the API would refuse is poison here."""
    try:
        return OrderVolumeReport.model_validate(data.model_dump(mode="json"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise InvalidEvent("invalid-data", f"data.{where}: {first['msg']}") from exc


def report_handler(rule: SpikeRule, max_event_bytes: int | None = None) -> EventHandler:
    """The handler of `salesops.order-volume.report.v1`, bound to the spike rule of the settings and the broker's
    message limit (a report whose event would exceed it is poison: `event-too-large`)."""

    async def on_order_volume_report(uow: UnitOfWork, event: CloudEvent, data: OrderVolumeReportData) -> None:
        report = _report(data)
        command = ReportVolumes.of(report.warehouse_id, report.lines)
        accepted, changed = await handlers.record_volumes(
            SqlStore(uow.session), uow, command, rule, max_event_bytes=max_event_bytes
        )
        log.info("warehouse report stored", warehouse_id=report.warehouse_id, accepted=accepted, changed=changed)

    return on_order_volume_report


async def on_promotion_event(uow: UnitOfWork, event: CloudEvent, data: PromotionData) -> None:
    await handlers.on_promotion_event(SqlStore(uow.session), uow, event, data)


async def on_account_changed(uow: UnitOfWork, event: CloudEvent, data: AccountChangedData) -> None:
    await handlers.on_account_changed(SqlStore(uow.session), data)


def build_subscription(rule: SpikeRule, *, max_event_bytes: int | None = None) -> Subscription:
    return Subscription(
        name="fulfillment-service",
        topics=(Topic.WAREHOUSE_REPORTS.value, Topic.PROMOTIONS.value, Topic.ACCOUNTS.value),
        handlers={
            EventType.ORDER_VOLUME_REPORT.value: report_handler(rule, max_event_bytes),
            EventType.PROMOTION_PLANNED.value: on_promotion_event,
            EventType.PROMOTION_REVISED.value: on_promotion_event,
            EventType.PROMOTION_CANCELLED.value: on_promotion_event,
            EventType.ACCOUNT_CHANGED.value: on_account_changed,
        },
    )
