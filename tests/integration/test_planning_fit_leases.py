"""Leases on the SKUs a fitter fits, against the real PostgreSQL: fitters of two replicas get disjoint chunks even
when they ask at the same moment, a lease that lapsed (its replica died) is taken over, a fitter renews its own,
and a released chunk is fitted by nobody else once its models are stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from services.planning_service.store import SqlStore

pytestmark = pytest.mark.integration

HORIZON = date(2026, 11, 16)
LEASE_S = 600.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


async def add_items(db: Any, count: int) -> list[str]:
    skus = [f"FIT-{n:03d}" for n in range(count)]
    await db.executemany(
        "insert into planning.items (sku, name, on_hand, safety_stock, lot_size, frozen_weeks, revision)"
        " values ($1, $1, 0, 0, 1, 0, 1)",
        [(sku,) for sku in skus],
    )
    return skus


async def lease(engine: AsyncEngine, holder: str, limit: int, *, lease_s: float = LEASE_S) -> list[str]:
    async with AsyncSession(engine) as session:
        skus = await SqlStore(session).lease_skus_to_fit(HORIZON, limit, holder=holder, lease_s=lease_s)
        await session.commit()
        return skus


async def test_two_fitters_share_the_skus_out_and_a_lapsed_lease_is_taken_over(engine, db) -> None:
    skus = await add_items(db, 30)
    first = await lease(engine, "replica-a", 10)
    second = await lease(engine, "replica-b", 10)
    assert first == skus[:10]
    assert second == skus[10:20], "the second fitter skips what the first holds"

    # A fitter asking again renews its own lease (a chunk retried after a failure).
    assert await lease(engine, "replica-a", 10) == skus[:10]

    # replica-b dies: once its lease lapses, replica-a takes its SKUs.
    await db.execute(
        "update planning.fit_leases set leased_until = now() - interval '1 second' where holder = 'replica-b'"
    )
    taken = await lease(engine, "replica-a", 30)
    assert set(skus[10:20]) <= set(taken)


async def test_fitters_asking_at_the_same_moment_never_get_the_same_sku(engine, db) -> None:
    skus = await add_items(db, 40)
    sessions = [AsyncSession(engine) for _ in range(2)]
    try:
        # Neither commits before both asked: a statement that meets the other's uncommitted lease waits for its
        # commit, then gets none of those SKUs.
        tasks = [
            asyncio.create_task(SqlStore(s).lease_skus_to_fit(HORIZON, 40, holder=f"r{n}", lease_s=LEASE_S))
            for n, s in enumerate(sessions)
        ]
        done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        [winner] = done
        await sessions[tasks.index(winner)].commit()
        loser = await asyncio.wait_for(pending.pop(), timeout=30)
        await sessions[1 - tasks.index(winner)].commit()
    finally:
        for s in sessions:
            await s.close()
    assert sorted(winner.result()) == skus
    assert loser == []


async def test_a_released_chunk_whose_models_are_stored_is_not_leased_again(engine, db) -> None:
    skus = await add_items(db, 5)
    leased = await lease(engine, "replica-a", 5)
    assert leased == skus
    await db.executemany(
        "insert into planning.baseline_models (sku, method, model, origin, history_digest)"
        " values ($1, 'smoothing', null, $2, '{}'::jsonb)",
        [(sku, HORIZON) for sku in skus[:3]],
    )
    async with AsyncSession(engine) as session:
        await SqlStore(session).release_fit_leases(skus, holder="replica-a")
        await session.commit()
    assert await db.fetchval("select count(*) from planning.fit_leases") == 0
    assert await lease(engine, "replica-b", 5) == skus[3:], "only the SKUs still without a model"
