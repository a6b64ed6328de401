"""Kafka subscriptions of the planning service: one typed function per event type binds its handler to the
unit of work's store; `finish` re-plans the SKUs a consumed batch touched, once."""

from __future__ import annotations

from collections.abc import Sequence

from services.planning_service import handlers
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import SqlStore
from services.planning_service.units import UnitPublisher
from shared.db import UnitOfWork
from shared.events import (
    AccountChangedData,
    CloudEvent,
    EventType,
    LaunchData,
    OrderSpikeData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
    SalesOrderData,
    Topic,
)
from shared.kafka import Subscription


async def on_promotion_event(uow: UnitOfWork, event: CloudEvent, data: PromotionData) -> None:
    await handlers.on_promotion_event(SqlStore(uow.session), uow, event, data)


async def on_launch_planned(uow: UnitOfWork, event: CloudEvent, data: LaunchData) -> None:
    await handlers.on_launch_planned(SqlStore(uow.session), uow, event, data)


async def on_order_volumes(uow: UnitOfWork, event: CloudEvent, data: OrderVolumeReportedData) -> None:
    await handlers.on_order_volumes(SqlStore(uow.session), uow, event, data)


async def on_order_volumes_together(
    uow: UnitOfWork, reports: Sequence[tuple[CloudEvent, OrderVolumeReportedData]]
) -> None:
    await handlers.on_order_volumes_together(SqlStore(uow.session), uow, reports)


async def on_order_spike(uow: UnitOfWork, event: CloudEvent, data: OrderSpikeData) -> None:
    await handlers.on_order_spike(SqlStore(uow.session), uow, event, data)


async def on_return_recorded(uow: UnitOfWork, event: CloudEvent, data: ReturnData) -> None:
    await handlers.on_return_recorded(SqlStore(uow.session), uow, event, data)


async def on_returns_recorded_together(uow: UnitOfWork, returns: Sequence[tuple[CloudEvent, ReturnData]]) -> None:
    await handlers.on_returns_recorded_together(SqlStore(uow.session), uow, returns)


async def on_sales_order(uow: UnitOfWork, event: CloudEvent, data: SalesOrderData) -> None:
    await handlers.on_sales_order(SqlStore(uow.session), uow, event, data)


async def on_account_changed(uow: UnitOfWork, event: CloudEvent, data: AccountChangedData) -> None:
    await handlers.on_account_changed(SqlStore(uow.session), uow, event, data)


async def on_sales_orders_together(uow: UnitOfWork, orders: Sequence[tuple[CloudEvent, SalesOrderData]]) -> None:
    await handlers.on_sales_orders_together(SqlStore(uow.session), uow, orders)


def subscription(settings: PlanningSettings) -> Subscription:
    """The `planning-service` consumer group; complaints on the returns topic are skipped."""

    async def finish(uow: UnitOfWork) -> None:
        publisher = UnitPublisher(uow, settings.kafka_max_request_bytes)
        await handlers.finish_replans(SqlStore(uow.session), publisher, settings)

    return Subscription(
        name="planning-service",
        topics=(
            Topic.PROMOTIONS.value,
            Topic.ORDER_VOLUMES.value,
            Topic.RETURNS.value,
            Topic.ORDERS.value,
            Topic.ACCOUNTS.value,
        ),
        handlers={
            EventType.PROMOTION_PLANNED.value: on_promotion_event,
            EventType.PROMOTION_REVISED.value: on_promotion_event,
            EventType.PROMOTION_CANCELLED.value: on_promotion_event,
            EventType.LAUNCH_PLANNED.value: on_launch_planned,
            EventType.ORDER_VOLUME_REPORTED.value: on_order_volumes,
            EventType.ORDER_SPIKE_DETECTED.value: on_order_spike,
            EventType.ORDER_SPIKE_RETRACTED.value: on_order_spike,
            EventType.RETURN_RECORDED.value: on_return_recorded,
            EventType.SALES_ORDER_BOOKED.value: on_sales_order,
            EventType.SALES_ORDER_CHANGED.value: on_sales_order,
            EventType.SALES_ORDER_CANCELLED.value: on_sales_order,
            # A shipment's data is the order as it stands after it, plus the shipment.
            EventType.SHIPMENT_RECORDED.value: on_sales_order,
            EventType.ACCOUNT_CHANGED.value: on_account_changed,
        },
        finish=finish,
        # In a fetched batch, the events that come in bulk are written set-based.
        batch_handlers={
            EventType.ORDER_VOLUME_REPORTED.value: on_order_volumes_together,
            EventType.RETURN_RECORDED.value: on_returns_recorded_together,
            EventType.SALES_ORDER_BOOKED.value: on_sales_orders_together,
            EventType.SALES_ORDER_CHANGED.value: on_sales_orders_together,
            EventType.SALES_ORDER_CANCELLED.value: on_sales_orders_together,
            EventType.SHIPMENT_RECORDED.value: on_sales_orders_together,
        },
    )
