"""The recount of accounts marked by returns and complaints: a background task that recounts the accounts a return
or complaint marked (in the statement that stored it), shortly after they were marked, several accounts per
transaction. A request that created a record wakes it after its commit; a delay (`COST_RECOUNT_DELAY_S`, a second
by default: cost-to-serve is a monthly ledger) then gathers the marks of a burst, so an account with many new
returns or complaints is counted once, and the accounts of the burst share their transactions. It also looks
every `COST_RECOUNT_INTERVAL_S` for marks another replica left or that were there before a restart (marks are
rows: they survive both).

Replicas share the work: each claims a batch of marked accounts with a lease (`FOR UPDATE SKIP LOCKED`), and a
recount runs under the account's cost lock, so two recounts of one account take turns. The second reads the mark
as it was before it waited for the lock, so it counts again (to the same ledger) rather than finding the mark
gone; a mark is removed only by a recount that read every fact marked before it. A transaction that recounts
several accounts waits only for its first account's lock; the next ones it takes only if they are free, and an
account whose lock was busy is recounted afterwards in a transaction of its own."""

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


# Accounts recounted in one transaction at most: enough to share its BEGIN, COMMIT and connection among the
# accounts of a burst, few enough that it holds their cost locks briefly.
RECOUNT_GROUP = 10


async def recount_once(runtime: Runtime, settings: ReturnsSettings) -> int:
    """Claim one batch of marked accounts and recount them, up to `RECOUNT_GROUP` per transaction; returns how many
    were claimed. Both run on the driver (`claim_recounts_by_driver`, `recount_transaction`). An account whose cost
    lock was busy, and every account of a group whose transaction failed, is then recounted in a transaction of its
    own (the lock waited for; a failure then holds back that account alone)."""
    async with driver_connection(runtime.engine) as connection:
        account_ids = await claim_recounts_by_driver(
            connection, limit=settings.cost_recount_batch_size, lease_s=settings.cost_recount_lease_s
        )
    alone: list[str] = []
    for start in range(0, len(account_ids), RECOUNT_GROUP):
        group = account_ids[start : start + RECOUNT_GROUP]
        if len(group) == 1:
            alone += group
            continue
        events = _events(runtime)
        try:
            async with (
                driver_connection(runtime.engine) as connection,
                recount_transaction(connection, events) as store,
            ):
                alone += await cost_handlers.recount_marked_together(store, events, group, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("recounting marked accounts together failed; one at a time", accounts=group, error=repr(exc))
            alone += group
            continue
        if events.published:
            runtime.relay.wake()  # the alert events the recount wrote
    for account_id in alone:
        events = _events(runtime)
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
            runtime.relay.wake()
    return len(account_ids)


def _events(runtime: Runtime) -> EventBuffer:
    return EventBuffer(source=runtime.spec.source, traceparent=None, max_bytes=runtime.settings.kafka_max_request_bytes)


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
