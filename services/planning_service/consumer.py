"""Kafka subscriptions of the planning service: event type -> handler, bound to the planning settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.planning_service import handlers
from services.planning_service.settings import PlanningSettings
from shared.db import UnitOfWork
from shared.events import CloudEvent, EventType, Topic
from shared.kafka import EventHandler, Subscription

Handler = Callable[[UnitOfWork, CloudEvent, Any, PlanningSettings], Awaitable[None]]


def subscription(settings: PlanningSettings) -> Subscription:
    """The `planning-service` consumer group; complaints on the returns topic are skipped."""

    def bound(handler: Handler) -> EventHandler:
        async def handle(uow: UnitOfWork, event: CloudEvent, data: Any) -> None:
            await handler(uow, event, data, settings)

        return handle

    routes: dict[str, EventHandler] = {
        EventType.PROMOTION_PLANNED.value: bound(handlers.on_promotion_event),
        EventType.PROMOTION_REVISED.value: bound(handlers.on_promotion_event),
        EventType.PROMOTION_CANCELLED.value: bound(handlers.on_promotion_event),
        EventType.LAUNCH_PLANNED.value: bound(handlers.on_launch_planned),
        EventType.ORDER_VOLUME_REPORTED.value: bound(handlers.on_order_volumes),
        EventType.ORDER_SPIKE_DETECTED.value: bound(handlers.on_order_spike),
        EventType.ORDER_SPIKE_RETRACTED.value: bound(handlers.on_order_spike),
        EventType.RETURN_RECORDED.value: bound(handlers.on_return_recorded),
    }

    async def finish(uow: UnitOfWork) -> None:
        await handlers.finish_replans(uow, settings)

    return Subscription(
        name="planning-service",
        topics=(Topic.PROMOTIONS.value, Topic.ORDER_VOLUMES.value, Topic.RETURNS.value),
        handlers=routes,
        finish=finish,
    )
