"""Kafka subscriptions of the planning service: event type -> handler."""

from services.planning_service import handlers
from shared.events import EventType, Topic
from shared.kafka import Subscription

subscription = Subscription(
    name="planning-service",
    topics=(Topic.PROMOTIONS.value,),
    handlers={
        EventType.PROMOTION_PLANNED.value: handlers.on_promotion_event,
        EventType.PROMOTION_REVISED.value: handlers.on_promotion_event,
        EventType.PROMOTION_CANCELLED.value: handlers.on_promotion_event,
    },
)
