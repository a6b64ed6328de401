"""The cost-to-serve refresh: a background task that recounts the accounts a new day left behind and
re-evaluates their alerts after a rate change, one account per transaction."""

from __future__ import annotations

import asyncio

import structlog

from services.returns_service import cost_handlers
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import SqlStore
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.costs")


async def refresh_once(runtime: Runtime, settings: ReturnsSettings) -> int:
    """Recount one batch of due accounts; returns how many were recounted."""
    async with runtime.unit_of_work() as uow:
        account_ids = await cost_handlers.accounts_due(SqlStore(uow.session), settings)
    for account_id in account_ids:
        async with runtime.unit_of_work() as uow:
            await cost_handlers.recount_account(SqlStore(uow.session), uow, account_id, settings)
            await uow.commit()
    return len(account_ids)


async def refresh_cost_to_serve(runtime: Runtime) -> None:
    """Background task: full batches follow each other at once; then wait for the interval. A failed round is
    retried at the next tick."""
    settings = runtime.settings
    assert isinstance(settings, ReturnsSettings)
    while True:
        done = 0
        try:
            done = await refresh_once(runtime, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cost-to-serve refresh failed; retrying", error=repr(exc))
        if done < settings.cost_refresh_batch_size:
            await asyncio.sleep(settings.cost_refresh_interval_s)
