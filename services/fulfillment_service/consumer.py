"""Kafka subscriptions of the fulfillment service: warehouse reports in, and promotion windows to explain
spikes."""

from services.fulfillment_service import handlers
from services.fulfillment_service.domain import SpikeRule
from shared.events import EventType, Topic
from shared.kafka import Subscription


def build_subscription(rule: SpikeRule) -> Subscription:
    return Subscription(
        name="fulfillment-service",
        topics=(Topic.WAREHOUSE_REPORTS.value, Topic.PROMOTIONS.value),
        handlers={
            EventType.ORDER_VOLUME_REPORT.value: handlers.make_report_handler(rule),
            EventType.PROMOTION_PLANNED.value: handlers.on_promotion_event,
            EventType.PROMOTION_REVISED.value: handlers.on_promotion_event,
            EventType.PROMOTION_CANCELLED.value: handlers.on_promotion_event,
        },
    )
