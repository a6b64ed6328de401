"""Composition root of the returns service."""

from __future__ import annotations

from fastapi import FastAPI

from services.returns_service import consumer, cost_api, cost_recount, cost_refresh, stream, tables
from services.returns_service.api import router
from services.returns_service.settings import ReturnsSettings
from services.returns_service.webhooks import api as webhooks_api
from services.returns_service.webhooks.dispatcher import dispatcher_task
from services.returns_service.webhooks.ssrf import Guard
from shared.events import Topic
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

DESCRIPTION = "Returns and complaints become alerts that reach the sales CRM in near real time."


def build_spec(settings: ReturnsSettings, guard: Guard) -> ServiceSpec:
    return ServiceSpec(
        name="returns",
        metadata=tables.metadata,
        routers=[router, webhooks_api.router, cost_api.router],
        subscriptions=[consumer.subscription(settings)],
        publishes=[Topic.RETURNS, Topic.SALES_ALERTS, Topic.ACCOUNTS],
        background=[
            stream.listen_for_changes,
            stream.number_changes(settings.sse_poll_interval_s),
            dispatcher_task(guard),
            cost_refresh.refresh_cost_to_serve,
            cost_recount.recount_marked_accounts,
        ],
        description=DESCRIPTION,
    )


def build_app(settings: Settings | None = None, *, guard: Guard | None = None) -> FastAPI:
    """The returns app; shared `Settings` are upgraded to `ReturnsSettings` (the service's own knobs
    then come from the environment). `guard` replaces the SSRF guard built from the settings (tests give
    it a resolver they control)."""
    if settings is None:
        returns_settings = ReturnsSettings()
    elif isinstance(settings, ReturnsSettings):
        returns_settings = settings
    else:
        returns_settings = ReturnsSettings(**settings.model_dump())
    guard = guard or Guard(allow_private=returns_settings.webhook_allow_private_targets)
    app = create_app(build_spec(returns_settings, guard), returns_settings)
    app.state.webhook_guard = guard
    return app
