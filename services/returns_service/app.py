"""Composition root of the returns service."""

from __future__ import annotations

from fastapi import FastAPI

from services.returns_service import tables
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="returns",
    metadata=tables.metadata,
    routers=[],
    description="Returns and complaints become alerts that reach the sales CRM in near real time.",
)


def build_app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or Settings())
