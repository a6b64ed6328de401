"""The cost-to-serve refresh: a background task that recounts the accounts a new day left behind and
re-evaluates their alerts after a rate change, one account per transaction. A rate change made on this replica
wakes it at once; otherwise it looks every `COST_REFRESH_INTERVAL_S`."""

from __future__ import annotations

import asyncio
import contextlib

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


def refresh_wake(runtime: Runtime) -> asyncio.Event:
    """Set (after its commit) by a rate change: the refresh re-evaluates the accounts' alerts at once."""
    return runtime.wake("cost_refresh")


async def refresh_cost_to_serve(runtime: Runtime) -> None:
    """Background task: full batches follow each other at once; then wait for the interval or a rate change.
    A failed round is retried at the next tick."""
    settings = runtime.settings
    assert isinstance(settings, ReturnsSettings)
    wake = refresh_wake(runtime)
    while True:
        wake.clear()  # a rate change committed from here on is seen by this round or wakes the next
        done = 0
        try:
            done = await refresh_once(runtime, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cost-to-serve refresh failed; retrying", error=repr(exc))
        if done < settings.cost_refresh_batch_size:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), settings.cost_refresh_interval_s)
