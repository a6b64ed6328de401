"""The fulfillment store's report statements against PostgreSQL: a report's changed days, and the daily figures
the totals and the spike rule read, summed over every warehouse, the same as the in-memory store answers."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from services.fulfillment_service.domain import DayVolume
from services.fulfillment_service.store import SqlStore
from tests.fakes.fulfillment import FakeFulfillmentStore

pytestmark = pytest.mark.asyncio

START = date(2026, 3, 2)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def test_changed_days_and_daily_figures_match_the_in_memory_store(engine: AsyncEngine) -> None:
    rng = random.Random(5)
    run = uuid.uuid4().hex[:6]
    skus = [f"SKU-STORE-{run}-{i}" for i in range(6)]
    fake = FakeFulfillmentStore()
    for _ in range(6):
        warehouse = rng.choice(["DC-A", "DC-B", "DC-C"])
        lines = [
            DayVolume(sku, START + timedelta(days=rng.randint(0, 120)), rng.randint(0, 50), rng.randint(0, 50), 1)
            for sku in rng.sample(skus, 4)
            for _ in range(rng.randint(1, 30))
        ]
        lines = list({(line.sku, line.day): line for line in lines}.values())
        async with AsyncSession(engine) as session, session.begin():
            store = SqlStore(session)
            await store.lock_skus({line.sku for line in lines})
            changed = await store.save_volumes(warehouse, lines)
            assert changed == await fake.save_volumes(warehouse, lines)
            froms = {sku: days[0] - timedelta(days=rng.choice([0, 10, 56])) for sku, days in changed.items()}
            loaded, expected = await store.daily_volumes(froms), await fake.daily_volumes(froms)
        assert set(loaded) == set(expected)
        for sku, volumes in loaded.items():
            other = expected[sku]
            assert volumes.first == other.first
            assert volumes.at.tolist() == other.at.tolist()
            for column in ("ordered", "shipped", "backordered"):
                assert getattr(volumes, column).tolist() == getattr(other, column).tolist()
            assert volumes.totals(changed[sku]) == other.totals(changed[sku])
            assert volumes.series.by_day() == other.series.by_day()
    async with AsyncSession(engine) as session, session.begin():
        again = [DayVolume(sku, day, *figures) for (wh, sku, day), figures in fake.volumes.items() if wh == "DC-A"]
        assert await SqlStore(session).save_volumes("DC-A", again) == {}
