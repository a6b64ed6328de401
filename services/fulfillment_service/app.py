"""Composition root of the fulfillment service."""

from __future__ import annotations

from fastapi import FastAPI

from services.fulfillment_service import tables
from services.fulfillment_service.api import orders, router
from services.fulfillment_service.consumer import build_subscription
from services.fulfillment_service.settings import FulfillmentSettings
from shared.events import Topic
from shared.service import ServiceSpec, create_app
from shared.settings import Settings
from shared.settings_upgrade import upgrade_settings


def build_spec(settings: FulfillmentSettings) -> ServiceSpec:
    return ServiceSpec(
        name="fulfillment",
        metadata=tables.metadata,
        routers=[router, orders],
        subscriptions=[build_subscription(settings.spike_rule(), max_event_bytes=settings.kafka_max_request_bytes)],
        publishes=[Topic.ORDER_VOLUMES, Topic.ORDERS],
        description=(
            "Warehouse systems report daily order volumes; spikes are detected and told apart from promotions. "
            "Sales books orders by account; each booking, change, shipment and cancellation is published once."
        ),
    )


def build_app(settings: Settings | None = None) -> FastAPI:
    """The app; plain `Settings` become `FulfillmentSettings` (the spike rule from `SALESOPS_SPIKE_*`)."""
    fulfillment = upgrade_settings(settings, FulfillmentSettings)
    app = create_app(build_spec(fulfillment), fulfillment)
    app.state.spike_rule = fulfillment.spike_rule()
    return app
