"""The fulfillment store's report statements against PostgreSQL: a report's changed days, and the daily figures
the totals and the spike rule read, summed over every warehouse, the same as the in-memory store answers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from services.fulfillment_service.domain import DayVolume, PromotionWindow, Spike
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
            changed = await store.save_volumes(warehouse, lines)
            assert changed == await fake.save_volumes(warehouse, lines)
            froms = {sku: days[0] - timedelta(days=rng.choice([0, 10, 56])) for sku, days in changed.items()}
            state = await store.report_state(froms, START)
            loaded, expected = state.volumes, await fake.daily_volumes(froms)
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


async def test_a_report_s_state_holds_the_windows_and_stored_spikes_the_in_memory_store_holds(
    engine: AsyncEngine,
) -> None:
    run = uuid.uuid4().hex[:6]
    sku_a, sku_b, sku_c, other = (f"SKU-STATE-{run}-{name}" for name in ("A", "B", "C", "OTHER"))
    day = START + timedelta(days=20)
    fake = FakeFulfillmentStore()
    windows = [
        (PromotionWindow(f"P-{run}-1", frozenset({sku_a, other}), START, START + timedelta(days=30)), 1),
        (
            PromotionWindow(
                f"P-{run}-2", frozenset({sku_a, sku_b}), START + timedelta(days=5), START + timedelta(days=9)
            ),
            2,
        ),
        (PromotionWindow(f"P-{run}-3", frozenset({sku_b}), START, START + timedelta(days=3), cancelled=True), 1),
        (PromotionWindow(f"P-{run}-4", frozenset({other}), START, START + timedelta(days=3)), 1),
    ]
    spikes = [
        Spike(day - timedelta(days=1), 250.0, 100.0, 90.0, 100.0, 10.0, 2.5, 150.0, 15.0, sku_a, f"P-{run}-1"),
        Spike(day, 300.5, 0.0, 0.0, 0.0, 1.0, None, 300.5, 300.5, sku_a),
        Spike(day + timedelta(days=3), 80.0, 20.0, 20.0, 18.0, 4.5, 4.0, 60.0, 13.3, sku_b),
        Spike(day, 99.0, 10.0, 10.0, 10.0, 3.0, 9.9, 89.0, 29.6, other),
    ]
    lines = [DayVolume(sku, day, 5, 5, 0) for sku in (sku_a, sku_b, sku_c, other)]
    async with AsyncSession(engine) as session, session.begin():
        store = SqlStore(session)
        for window, version in windows:
            await store.save_window(window, version)
            await fake.save_window(window, version)
        await store.save_spikes(spikes)
        await fake.save_spikes(spikes)
        await store.retract_spikes([(sku_b, day + timedelta(days=3))])
        await fake.retract_spikes([(sku_b, day + timedelta(days=3))])
        await store.save_volumes("DC-A", lines)
        await fake.save_volumes("DC-A", lines)
        froms = {sku_a: START, sku_b: START, sku_c: START}
        state, expected = await store.report_state(froms, day), await fake.report_state(froms, day)
    assert (state.windows, state.spikes) == (expected.windows, expected.spikes)
    assert [(w.promotion_id, w.skus) for w in state.windows] == [
        (f"P-{run}-1", frozenset({sku_a})),
        (f"P-{run}-2", frozenset({sku_a, sku_b})),
    ]
    assert sorted(state.spikes) == [(sku_a, day), (sku_b, day + timedelta(days=3))]
    assert state.spikes[(sku_b, day + timedelta(days=3))].status == "retracted"
    assert state.spikes[(sku_a, day)].spike.ratio is None


async def test_storing_a_report_s_lines_holds_its_skus_locks_until_the_transaction_ends(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    skus = [f"SKU-LOCK-{run}-{i}" for i in range(3)]
    lines = [DayVolume(sku, START + timedelta(days=day), 5, 5, 0) for sku in skus[:2] for day in range(3)]
    held = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))"
    async with AsyncSession(engine) as session, session.begin():
        assert set(await SqlStore(session).save_volumes("DC-A", lines)) == set(skus[:2])
        async with db.transaction():
            # Another transaction cannot take the locks of the report's SKUs, only of others.
            assert [await db.fetchval(held, sku) for sku in skus] == [False, False, True]
    async with db.transaction():
        assert [await db.fetchval(held, sku) for sku in skus] == [True, True, True]


async def test_a_promotion_s_re_explanation_reads_spikes_once_a_report_of_its_skus_committed(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    sku, other = f"SKU-REEXPLAIN-{run}", f"SKU-REEXPLAIN-{run}-OTHER"
    day = START + timedelta(days=40)
    spike = Spike(day, 300.0, 100.0, 100.0, 100.0, 10.0, 3.0, 200.0, 20.0, sku)
    window = PromotionWindow(f"P-{run}", frozenset({sku, other}), day - timedelta(days=2), day + timedelta(days=2))
    async with AsyncSession(engine) as report, report.begin():
        # A report of the SKU stores a spike it judged without the promotion's window, and has not committed.
        reporting = SqlStore(report)
        await reporting.save_volumes("DC-A", [DayVolume(sku, day, 300, 300, 0)])
        await reporting.save_spikes([spike])

        async def re_explain() -> list[Spike]:
            async with AsyncSession(engine) as promotion, promotion.begin():
                store = SqlStore(promotion)
                await store.save_window(window, 1)
                await store.lock_skus(window.skus)
                return await store.detected_between(window.skus, window.starts_on, window.ends_on)

        reading = asyncio.create_task(re_explain())
        await waiting_for_an_advisory_lock(db)
        assert not reading.done(), "the promotion's transaction waits for the report's SKU lock"
    # Committed: the promotion's transaction now reads the report's spike, and can explain it.
    found = await asyncio.wait_for(reading, 10)
    assert [(s.sku, s.day, s.explained_by_promotion_id) for s in found] == [(sku, day, None)]


async def waiting_for_an_advisory_lock(db: asyncpg.Connection) -> None:
    """Until a statement on the test's database waits for an advisory lock another transaction holds (bounded)."""
    for _ in range(400):
        if await db.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and wait_event_type = 'Lock' and wait_event = 'advisory'"
        ):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no statement waited for an advisory lock")


async def test_a_null_figure_is_refused_rather_than_summed_onto_other_days(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    sku = f"SKU-NULL-{run}"
    lines = [DayVolume(sku, START + timedelta(days=day), 5, 5, 0) for day in range(3)]
    async with AsyncSession(engine) as session, session.begin():
        await SqlStore(session).save_volumes("DC-A", lines)
    # The column is NOT NULL; a schema that allowed NULL would have `string_agg` skip it.
    await db.execute("ALTER TABLE fulfillment.volumes ALTER COLUMN units_shipped DROP NOT NULL")
    await db.execute("UPDATE fulfillment.volumes SET units_shipped = NULL WHERE sku = $1 AND day = $2", sku, START)
    async with AsyncSession(engine) as session, session.begin():
        with pytest.raises(RuntimeError, match="do not hold 3 rows each"):
            await SqlStore(session).report_state({sku: START}, START)
