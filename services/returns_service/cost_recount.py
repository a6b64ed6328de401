"""The recount of accounts marked by returns and complaints: a background task that recounts, one account per
transaction, the accounts a return or complaint marked (in the statement that stored it), shortly after they were
marked. A request that created a record wakes it after its commit; a short delay then gathers the marks of a
burst, so an account with many new returns is counted once. It also looks every `COST_RECOUNT_INTERVAL_S` for
marks another replica left or that were there before a restart (marks are rows: they survive both).

Replicas share the work: each claims a batch of marked accounts with a lease (`FOR UPDATE SKIP LOCKED`), and a
recount runs under the account's cost lock, so two recounts of one account take turns. The second reads the mark
as it was before it waited for the lock, so it counts again (to the same ledger) rather than finding the mark
gone; a mark is removed only by a recount that read every fact marked before it."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from services.returns_service import cost_handlers
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import EventBuffer, claim_recounts_by_driver, recount_transaction
from shared.db import driver_connection
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.costs")


async def recount_once(runtime: Runtime, settings: ReturnsSettings) -> int:
    """Claim one batch of marked accounts and recount each in its own transaction; returns how many were
    claimed. Both run on the driver (`claim_recounts_by_driver`, `recount_transaction`)."""
    async with driver_connection(runtime.engine) as connection:
        account_ids = await claim_recounts_by_driver(
            connection, limit=settings.cost_recount_batch_size, lease_s=settings.cost_recount_lease_s
        )
    for account_id in account_ids:
        events = EventBuffer(
            source=runtime.spec.source, traceparent=None, max_bytes=runtime.settings.kafka_max_request_bytes
        )
        try:
            async with (
                driver_connection(runtime.engine) as connection,
                recount_transaction(connection, events) as store,
            ):
                await cost_handlers.recount_marked(store, events, account_id, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The mark stays, claimed: the account is tried again once the lease lapses; the others go on.
            log.warning("recounting a marked account failed", account_id=account_id, error=repr(exc))
            continue
        if events.published:
            runtime.relay.wake()  # the alert events the recount wrote
    return len(account_ids)


def recount_wake(runtime: Runtime) -> asyncio.Event:
    """Set after the commit of a request that marked an account: the recount runs shortly after."""
    return runtime.wake("cost_recount")


async def recount_marked_accounts(runtime: Runtime) -> None:
    """Background task: full batches follow each other at once; then wait for a wake-up (and the short delay that
    gathers a burst) or the interval. A failed round is retried at the next one."""
    settings = runtime.settings
    assert isinstance(settings, ReturnsSettings)
    wake = recount_wake(runtime)
    backoff = 0.5
    while True:
        wake.clear()  # a mark committed from here on is seen by this round or wakes the next
        done = 0
        try:
            done = await recount_once(runtime, settings)
            backoff = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cost-to-serve recount failed; retrying", error=repr(exc), retry_in_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, settings.cost_recount_interval_s)
            continue
        if done < settings.cost_recount_batch_size:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), settings.cost_recount_interval_s)
            if wake.is_set() and settings.cost_recount_delay_s > 0:
                await asyncio.sleep(settings.cost_recount_delay_s)
