"""Composition root of the fulfillment service."""

from __future__ import annotations

from fastapi import FastAPI

from services.fulfillment_service import tables
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="fulfillment",
    metadata=tables.metadata,
    routers=[],
    description="Warehouse systems report daily order volumes; spikes are detected and told apart from promotions.",
)


def build_app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or Settings())
