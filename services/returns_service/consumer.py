"""Kafka subscriptions of the returns service: shipped volumes, promotions, capacity conflicts, promises at risk
and sales orders.

One typed function per event type binds its handler to the unit of work's store and the service's settings.
"""

from __future__ import annotations

from typing import Any

from services.returns_service import cost_handlers, handlers
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import SqlStore
from shared.db import UnitOfWork
from shared.events import (
    CapacityConflictData,
    CloudEvent,
    EventType,
    OrderVolumeReportedData,
    PromiseData,
    PromotionData,
    SalesOrderData,
    Topic,
)
from shared.kafka import EventHandler, Subscription
from shared.subscription import consumer_group


def subscription(settings: ReturnsSettings) -> Subscription:
    """The `returns` consumer group; handlers are bound to the settings (thresholds and clock)."""

    async def on_volumes(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, OrderVolumeReportedData)
        await handlers.record_order_volumes(SqlStore(uow.session), uow, data, settings)

    async def on_promotion(uow: UnitOfWork, event: CloudEvent, data: Any) -> None:
        assert isinstance(data, PromotionData)
        cancelled = event.type == EventType.PROMOTION_CANCELLED.value
        await handlers.record_promotion(SqlStore(uow.session), uow, data, settings, cancelled=cancelled)

    async def on_conflict(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, CapacityConflictData)
        await handlers.record_capacity_conflict(SqlStore(uow.session), uow, data)

    async def on_resolved(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, CapacityConflictData)
        await handlers.resolve_capacity_conflict(SqlStore(uow.session), uow, data)

    async def on_sales_order(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, SalesOrderData)  # shipment events carry the order too (ShipmentRecordedData)
        await cost_handlers.record_sales_order(SqlStore(uow.session), uow, data, settings)

    async def on_promise_at_risk(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, PromiseData)
        await handlers.record_promise_at_risk(SqlStore(uow.session), uow, data)

    async def on_promise_restored(uow: UnitOfWork, _: CloudEvent, data: Any) -> None:
        assert isinstance(data, PromiseData)
        await handlers.record_promise_restored(SqlStore(uow.session), uow, data)

    routes: dict[str, EventHandler] = {
        EventType.ORDER_VOLUME_REPORTED.value: on_volumes,
        EventType.PROMOTION_PLANNED.value: on_promotion,
        EventType.PROMOTION_REVISED.value: on_promotion,
        EventType.PROMOTION_CANCELLED.value: on_promotion,
        EventType.CAPACITY_CONFLICT_DETECTED.value: on_conflict,
        EventType.CAPACITY_CONFLICT_RESOLVED.value: on_resolved,
        EventType.SALES_ORDER_BOOKED.value: on_sales_order,
        EventType.SALES_ORDER_CHANGED.value: on_sales_order,
        EventType.SALES_ORDER_CANCELLED.value: on_sales_order,
        EventType.SHIPMENT_RECORDED.value: on_sales_order,
        EventType.PROMISE_AT_RISK.value: on_promise_at_risk,
        EventType.PROMISE_RESTORED.value: on_promise_restored,
    }
    return Subscription(
        name=consumer_group("returns"),
        topics=(Topic.ORDER_VOLUMES.value, Topic.PROMOTIONS.value, Topic.PLANS.value, Topic.ORDERS.value),
        handlers=routes,
    )
