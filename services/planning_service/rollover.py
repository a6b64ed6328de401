"""The week rollover: a background task that checks the clock; when a new ISO week begins, every SKU is
re-planned on the new horizon (`handlers.roll_if_new_week`), which also snapshots each SKU's forecast for the
week that just began, for accuracy."""

from __future__ import annotations

import asyncio

import structlog

from services.planning_service import handlers
from services.planning_service.settings import PlanningSettings
from services.planning_service.units import units_of
from shared.service import Runtime

log = structlog.get_logger("salesops.planning.rollover")


async def watch_for_new_week(runtime: Runtime) -> None:
    """Background task: check the clock periodically; a failed check is retried at the next tick."""
    settings = runtime.settings
    assert isinstance(settings, PlanningSettings)
    while True:
        try:
            await handlers.roll_if_new_week(units_of(runtime), settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("week rollover check failed; retrying", error=repr(exc))
        await asyncio.sleep(settings.planning_rollover_check_s)
