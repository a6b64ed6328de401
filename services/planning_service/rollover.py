"""The week rollover: when a new ISO week begins, every SKU is re-planned on the new horizon (which also
snapshots each SKU's forecast for the week that just began, for accuracy)."""

from __future__ import annotations

import asyncio
from datetime import date

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.planning_service import handlers, tables
from services.planning_service.settings import PlanningSettings
from shared.db import UnitOfWork
from shared.service import Runtime

log = structlog.get_logger("salesops.planning.rollover")
STATE_KEY = "horizon_start"


async def roll_if_new_week(uow: UnitOfWork, settings: PlanningSettings) -> bool:
    """Re-plan everything if the current ISO week differs from the one the plans were last rolled to.

    The very first check only records the week: there are no plans from an earlier week to roll.
    """
    S = tables.planning_state
    current = settings.horizon_start()
    row = (await uow.session.execute(select(S.c.value).where(S.c.key == STATE_KEY).with_for_update())).first()
    rolled_to = date.fromisoformat(row.value) if row else None
    if rolled_to is not None and rolled_to >= current:
        return False
    statement = insert(S).values(key=STATE_KEY, value=current.isoformat())
    await uow.session.execute(
        statement.on_conflict_do_update(index_elements=[S.c.key], set_={"value": statement.excluded.value})
    )
    if rolled_to is None:
        return False
    result = await handlers.replan_all(
        uow,
        settings,
        driver_id=f"week:{current.isoformat()}",
        summary=f"week of {current.isoformat()} began: the horizon moved on and every SKU was re-planned",
    )
    log.info("new week: re-planned", week=current.isoformat(), planned=result.planned, revised=len(result.revised))
    return True


async def watch_for_new_week(runtime: Runtime) -> None:
    """Background task: check the clock periodically; a failed check is retried at the next tick."""
    settings = runtime.settings
    assert isinstance(settings, PlanningSettings)
    while True:
        try:
            async with runtime.unit_of_work() as uow:
                await roll_if_new_week(uow, settings)
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("week rollover check failed; retrying", error=repr(exc))
        await asyncio.sleep(settings.planning_rollover_check_s)
