"""Composition root of the promotion service."""

from __future__ import annotations

from fastapi import FastAPI

from services.promotion_service import tables
from services.promotion_service.api import router
from services.promotion_service.consumer import subscription
from services.promotion_service.settings import PromotionSettings
from shared.events import Topic
from shared.service import ServiceSpec, create_app
from shared.settings import Settings
from shared.settings_upgrade import upgrade_settings

SPEC = ServiceSpec(
    name="promotion",
    metadata=tables.metadata,
    routers=[router],
    subscriptions=[subscription],
    publishes=[Topic.PROMOTIONS],
    description="Marketing systems announce promotions and launches; each change is published once.",
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The app; shared `Settings` become `PromotionSettings`."""
    return create_app(SPEC, upgrade_settings(settings, PromotionSettings))
