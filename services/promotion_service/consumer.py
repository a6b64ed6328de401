"""Kafka subscriptions of the promotion service: planning's capacity conflicts mark promotions at risk."""

from services.promotion_service import handlers
from shared.events import EventType, Topic
from shared.kafka import Subscription

subscription = Subscription(
    name="promotion-service",
    topics=(Topic.PLANS.value,),
    handlers={
        EventType.CAPACITY_CONFLICT_DETECTED.value: handlers.on_capacity_conflict_detected,
        EventType.CAPACITY_CONFLICT_RESOLVED.value: handlers.on_capacity_conflict_resolved,
    },
)
