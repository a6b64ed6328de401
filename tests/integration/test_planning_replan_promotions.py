"""A full re-plan's chunks share the promotions they read, against the real PostgreSQL: decoded once, read again
only when a promotion was stored, revised or cancelled since, so every chunk still plans with the promotions as
committed when it runs; and the promotions a chunk is given are those it would read on its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from services.planning_service.store import ActivePromotions, SqlStore

pytestmark = pytest.mark.integration

HORIZON = date(2026, 11, 16)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def add_items(db: Any, skus: list[str]) -> None:
    await db.executemany(
        "insert into planning.items (sku, name, on_hand, safety_stock, lot_size, frozen_weeks, revision)"
        " values ($1, $1, 0, 0, 1, 0, 1)",
        [(sku,) for sku in skus],
    )


def body(promotion_id: str, sku: str, uplift: float, cannibalized: str | None = None) -> str:
    return json.dumps(
        {
            "promotion_id": promotion_id,
            "name": promotion_id,
            "starts_on": "2026-11-23",
            "ends_on": "2026-11-29",
            "items": [{"sku": sku, "uplift_pct": uplift}],
            "cannibalized": [{"sku": cannibalized, "pct": 10}] if cannibalized else [],
        }
    )


async def store_promotion(db: Any, promotion_id: str, version: int, status: str, text: str, event_id: str) -> None:
    await db.execute(
        "insert into planning.promotions (promotion_id, version, status, body, last_event_id)"
        " values ($1, $2, $3, $4::jsonb, $5) on conflict (promotion_id) do update set version = excluded.version,"
        " status = excluded.status, body = excluded.body, last_event_id = excluded.last_event_id",
        promotion_id,
        version,
        status,
        text,
        event_id,
    )


async def chunk_inputs(engine: AsyncEngine, skus: list[str], known: ActivePromotions | None) -> list[Any]:
    """A chunk's promotions, read in a transaction of its own, as a chunk reads its inputs."""
    async with AsyncSession(engine) as session:
        loaded = await SqlStore(session).load_inputs(skus, HORIZON, promotions=known)
        return sorted(loaded.promotions, key=lambda p: p.promotion_id)


async def test_chunks_share_the_promotions_until_one_changes(engine, db) -> None:
    await add_items(db, ["SKU-1", "SKU-2", "SKU-3", "SKU-4"])
    await store_promotion(db, "P-1", 1, "planned", body("P-1", "SKU-1", 20, cannibalized="SKU-3"), "e-1")
    await store_promotion(db, "P-2", 1, "planned", body("P-2", "SKU-2", 30), "e-2")
    known = ActivePromotions()

    first = await chunk_inputs(engine, ["SKU-1", "SKU-2"], known)
    second = await chunk_inputs(engine, ["SKU-3", "SKU-4"], known)
    assert [p.promotion_id for p in first] == ["P-1", "P-2"]
    assert [p.promotion_id for p in second] == ["P-1"], "a cannibalized SKU's promotion is its chunk's too"
    assert known.reads == 1, "the second chunk found the promotions unchanged and decoded none"
    for skus in (["SKU-1", "SKU-2"], ["SKU-3", "SKU-4"], ["SKU-4"]):
        assert await chunk_inputs(engine, skus, known) == await chunk_inputs(engine, skus, None)
    assert known.reads == 1

    # A revision of P-2 between two chunks: the next chunk reads them again and plans with the new uplift.
    await store_promotion(db, "P-2", 2, "revised", body("P-2", "SKU-4", 45), "e-3")
    revised = await chunk_inputs(engine, ["SKU-3", "SKU-4"], known)
    assert known.reads == 2
    assert [(p.promotion_id, p.items[0].uplift_pct) for p in revised] == [("P-1", 20), ("P-2", 45)]
    assert revised == await chunk_inputs(engine, ["SKU-3", "SKU-4"], None)

    # The same version stored again by another event (a correction) counts as a change too.
    await store_promotion(db, "P-2", 2, "revised", body("P-2", "SKU-4", 50), "e-4")
    assert [p.items[0].uplift_pct for p in await chunk_inputs(engine, ["SKU-4"], known)] == [50]
    assert known.reads == 3

    # A cancellation drops it; a new promotion appears.
    await store_promotion(db, "P-2", 2, "cancelled", body("P-2", "SKU-4", 50), "e-5")
    assert await chunk_inputs(engine, ["SKU-4"], known) == []
    await store_promotion(db, "P-3", 1, "planned", body("P-3", "SKU-4", 10), "e-6")
    assert [p.promotion_id for p in await chunk_inputs(engine, ["SKU-4"], known)] == ["P-3"]
    assert known.reads == 5

    # None left at all.
    await db.execute("update planning.promotions set status = 'cancelled', last_event_id = last_event_id || 'x'")
    assert await chunk_inputs(engine, ["SKU-1", "SKU-2", "SKU-3", "SKU-4"], known) == []
    assert known.promotions == [] and known.reads == 6
