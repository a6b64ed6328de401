"""Composition root of the planning service."""

from __future__ import annotations

from fastapi import FastAPI

from services.planning_service import tables
from services.planning_service.api import router
from services.planning_service.consumer import subscription
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="planning",
    metadata=tables.metadata,
    routers=[router],
    subscriptions=[subscription],
    description="Turns promotions, launches, order volumes and returns into a forecast and an MPS that explains itself.",
)


def build_app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or Settings())
