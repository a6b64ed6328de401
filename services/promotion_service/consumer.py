"""Kafka subscriptions of the promotion service: planning's capacity conflicts mark promotions at risk.

One typed function per event type binds the handler to the unit of work's store.
"""

from services.promotion_service import handlers
from services.promotion_service.store import SqlStore
from shared.db import UnitOfWork
from shared.events import CapacityConflictData, CloudEvent, EventType, Topic
from shared.kafka import Subscription


async def on_capacity_conflict_detected(uow: UnitOfWork, event: CloudEvent, data: CapacityConflictData) -> None:
    await handlers.on_capacity_conflict_detected(SqlStore(uow.session), event, data)


async def on_capacity_conflict_resolved(uow: UnitOfWork, event: CloudEvent, data: CapacityConflictData) -> None:
    await handlers.on_capacity_conflict_resolved(SqlStore(uow.session), data)


subscription = Subscription(
    name="promotion-service",
    topics=(Topic.PLANS.value,),
    handlers={
        EventType.CAPACITY_CONFLICT_DETECTED.value: on_capacity_conflict_detected,
        EventType.CAPACITY_CONFLICT_RESOLVED.value: on_capacity_conflict_resolved,
    },
)
