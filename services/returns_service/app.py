"""Composition root of the returns service."""

from __future__ import annotations

from fastapi import FastAPI

from services.returns_service import consumer, stream, tables, webhooks
from services.returns_service.api import router
from services.returns_service.settings import ReturnsSettings
from shared.events import Topic
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

DESCRIPTION = "Returns and complaints become alerts that reach the sales CRM in near real time."


def build_spec(settings: ReturnsSettings) -> ServiceSpec:
    return ServiceSpec(
        name="returns",
        metadata=tables.metadata,
        routers=[router],
        subscriptions=[consumer.subscription(settings)],
        publishes=[Topic.RETURNS, Topic.SALES_ALERTS],
        background=[stream.listen_for_changes, webhooks.run_dispatcher],
        description=DESCRIPTION,
    )


def build_app(settings: Settings | None = None) -> FastAPI:
    """The returns app; shared `Settings` are upgraded to `ReturnsSettings` (the service's own knobs
    then come from the environment)."""
    if settings is None:
        returns_settings = ReturnsSettings()
    elif isinstance(settings, ReturnsSettings):
        returns_settings = settings
    else:
        returns_settings = ReturnsSettings(**settings.model_dump())
    return create_app(build_spec(returns_settings), returns_settings)
