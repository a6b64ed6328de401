"""Composition root of the planning service."""

from __future__ import annotations

from fastapi import FastAPI

from services.planning_service import consumer, fitter, rollover, tables
from services.planning_service.api import router
from services.planning_service.settings import PlanningSettings, planning_settings
from shared.events import Topic
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

DESCRIPTION = "Turns promotions, launches, order volumes and returns into a forecast and an MPS that explains itself."


def build_spec(settings: PlanningSettings) -> ServiceSpec:
    return ServiceSpec(
        name="planning",
        metadata=tables.metadata,
        routers=[router],
        subscriptions=[consumer.subscription(settings)],
        publishes=[Topic.PLANS],
        background=[rollover.watch_for_new_week, fitter.keep_models_fitted],
        description=DESCRIPTION,
    )


def build_app(settings: Settings | None = None) -> FastAPI:
    """The planning app; shared `Settings` are upgraded to `PlanningSettings` (the service's own knobs
    then come from the environment)."""
    planning = planning_settings(settings)
    return create_app(build_spec(planning), planning)
