"""Planning handlers against an in-memory store: item revisions, re-plans deferred to the end of a batch,
capacity conflicts detected, changed, narrowed and resolved, sensing decisions and the week rollover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from services.planning_service import handlers
from services.planning_service.domain import Item
from services.planning_service.settings import PlanningSettings
from shared.events import (
    CapacityConflictData,
    EventData,
    EventType,
    InvalidEvent,
    OrderSpikeData,
    PromotionData,
    new_event,
)
from tests.fakes import RecordingPublisher
from tests.fakes.planning import FakePlanningStore

MONDAY = date(2026, 11, 23)
SETTINGS = PlanningSettings(clock_today=MONDAY)
PROMO_WEEK = MONDAY + timedelta(weeks=3)
# Capacity equal to the baseline: no spare hours to pre-build, so any uplift is a shortfall.
ITEM = Item("SKU-1", "Widget", on_hand=0, safety_stock=0, weekly_capacity=100, baseline_weekly_demand=100)


def event(event_type: EventType, data: EventData, subject: str = "x") -> Any:
    return new_event(event_type, source="salesops/test", subject=subject, data=data)


def promotion(promotion_id: str, uplift: float, version: int = 1, *, sku: str = "SKU-1") -> PromotionData:
    return PromotionData.model_validate(
        {
            "promotion_id": promotion_id,
            "name": promotion_id,
            "starts_on": PROMO_WEEK.isoformat(),
            "ends_on": (PROMO_WEEK + timedelta(days=6)).isoformat(),
            "items": [{"sku": sku, "uplift_pct": uplift}],
            "version": version,
        }
    )


def units(store: FakePlanningStore, publisher: RecordingPublisher) -> handlers.Units:
    """Every unit of work of a stepwise handler on the one fake store and publisher."""

    @asynccontextmanager
    async def unit() -> AsyncIterator[tuple[Any, Any]]:
        yield store, publisher

    return unit


async def with_item(store: FakePlanningStore) -> None:
    await handlers.put_item(store, RecordingPublisher(), ITEM, SETTINGS)


async def consume(store: FakePlanningStore, event_type: EventType, data: PromotionData) -> RecordingPublisher:
    """One event through its handler, then the batch's deferred re-plan, as the consumer runs them."""
    publisher = RecordingPublisher()
    await handlers.on_promotion_event(store, publisher, event(event_type, data, data.promotion_id), data)
    await handlers.finish_replans(store, publisher, SETTINGS)
    return publisher


def conflicts(publisher: RecordingPublisher) -> list[tuple[EventType, list[str]]]:
    kinds = (EventType.CAPACITY_CONFLICT_DETECTED, EventType.CAPACITY_CONFLICT_RESOLVED)
    found = [e for e in publisher.events if e.type in kinds]
    assert all(isinstance(e.data, CapacityConflictData) for e in found)
    return [(e.type, list(e.data.promotion_ids)) for e in found]


# ---------------------------------------------------------------- items


async def test_a_new_item_is_planned_and_an_identical_put_is_no_revision() -> None:
    store, publisher = FakePlanningStore(), RecordingPublisher()
    stored, created = await handlers.put_item(store, publisher, ITEM, SETTINGS)
    assert created and stored.revision == 1
    (revised,) = publisher.events
    assert revised.type == EventType.MPS_REVISED
    assert (revised.data.plan_version, revised.data.driver_event_ids) == (1, ["item:SKU-1:1"])
    again = RecordingPublisher()
    stored_again, created_again = await handlers.put_item(store, again, ITEM, SETTINGS)
    assert (created_again, stored_again.revision, again.events) == (False, 1, [])
    assert len(store.revisions) == 1


# ---------------------------------------------------------------- capacity conflicts


async def test_a_promotion_beyond_capacity_is_a_conflict_naming_it() -> None:
    store = FakePlanningStore()
    await with_item(store)
    publisher = await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))
    assert conflicts(publisher) == [(EventType.CAPACITY_CONFLICT_DETECTED, ["BF"])]
    detected = publisher.events[-1].data
    assert detected.plan_version == 2 and detected.total_shortfall == pytest.approx(50)
    assert [w.week_start for w in detected.weeks] == [PROMO_WEEK]
    conflict, version = store.conflicts["SKU-1"]
    assert (conflict.promotion_ids, version) == (("BF",), 2)
    assert store.revisions[-1].driver_event_ids == [publisher.events[0].data.driver_event_ids[0]]


async def test_an_unchanged_conflict_is_not_announced_again() -> None:
    store = FakePlanningStore()
    await with_item(store)
    await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))
    publisher = RecordingPublisher()
    totals = await handlers.replan_all(units(store, publisher), SETTINGS, driver_id="replan:1", summary="full re-plan")
    assert publisher.events == []  # neither the plan nor its conflict moved
    assert store.locks[-1] == ["SKU-1"]
    assert (totals.planned, totals.revised, totals.chunks) == (1, 0, 1)


async def test_a_changed_shortfall_is_announced_again() -> None:
    store = FakePlanningStore()
    await with_item(store)
    await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))
    publisher = await consume(store, EventType.PROMOTION_REVISED, promotion("BF", 80, version=2))
    assert conflicts(publisher) == [(EventType.CAPACITY_CONFLICT_DETECTED, ["BF"])]
    assert publisher.events[-1].data.total_shortfall == pytest.approx(80)


async def test_a_promotion_dropping_out_of_a_conflict_that_goes_on_is_resolved_alone() -> None:
    store = FakePlanningStore()
    await with_item(store)
    await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))
    both = await consume(store, EventType.PROMOTION_PLANNED, promotion("CM", 30))
    assert conflicts(both) == [(EventType.CAPACITY_CONFLICT_DETECTED, ["BF", "CM"])]
    cancelled = PromotionData.model_validate({**promotion("CM", 30, version=2).model_dump(), "status": "cancelled"})
    publisher = await consume(store, EventType.PROMOTION_CANCELLED, cancelled)
    assert conflicts(publisher) == [
        (EventType.CAPACITY_CONFLICT_DETECTED, ["BF"]),
        (EventType.CAPACITY_CONFLICT_RESOLVED, ["CM"]),
    ]


async def test_cancelling_the_last_promotion_resolves_the_conflict() -> None:
    store = FakePlanningStore()
    await with_item(store)
    await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))
    cancelled = PromotionData.model_validate({**promotion("BF", 50, version=2).model_dump(), "status": "cancelled"})
    publisher = await consume(store, EventType.PROMOTION_CANCELLED, cancelled)
    assert conflicts(publisher) == [(EventType.CAPACITY_CONFLICT_RESOLVED, ["BF"])]
    assert publisher.events[-1].data.plan_version == 3
    assert store.conflicts == {}
    late = await consume(store, EventType.PROMOTION_PLANNED, promotion("BF", 50))  # an older version, late
    assert conflicts(late) == [] and store.promotions["BF"].status == "cancelled"


async def test_a_promotion_ending_before_it_starts_is_poison() -> None:
    store = FakePlanningStore()
    bad = PromotionData.model_validate({**promotion("BF", 50).model_dump(), "ends_on": MONDAY - timedelta(days=1)})
    with pytest.raises(InvalidEvent):
        await consume(store, EventType.PROMOTION_PLANNED, bad)
    assert store.promotions == {}


# ---------------------------------------------------------------- deferral and sensing


async def test_events_of_a_batch_are_replanned_once_naming_every_driver() -> None:
    store = FakePlanningStore()
    await with_item(store)
    publisher = RecordingPublisher()
    first, second = promotion("BF", 10), promotion("CM", 20)
    first_event, second_event = event(EventType.PROMOTION_PLANNED, first), event(EventType.PROMOTION_PLANNED, second)
    await handlers.on_promotion_event(store, publisher, first_event, first)
    await handlers.on_promotion_event(store, publisher, second_event, second)
    assert publisher.events == [] and publisher.context[handlers.REPLAN] == {"SKU-1": [first_event.id, second_event.id]}
    await handlers.finish_replans(store, publisher, SETTINGS)
    (revised,) = [e for e in publisher.events if e.type == EventType.MPS_REVISED]
    assert revised.data.driver_event_ids == [first_event.id, second_event.id]
    assert handlers.REPLAN not in publisher.context


def spike(explained_by: str | None = None, status: str = "detected") -> OrderSpikeData:
    return OrderSpikeData(
        sku="SKU-1",
        day=MONDAY - timedelta(days=1),
        units=80,
        baseline=15,
        ratio=80 / 15,
        explained_by_promotion_id=explained_by,
        status=status,
    )


async def test_only_spikes_that_drive_or_drove_sensing_replan() -> None:
    store = FakePlanningStore()
    explained = RecordingPublisher()
    data = spike(explained_by="BF")
    await handlers.on_order_spike(store, explained, event(EventType.ORDER_SPIKE_DETECTED, data), data)
    assert handlers.REPLAN not in explained.context  # an explained spike cannot move the plan

    unexplained = RecordingPublisher()
    data = spike()
    await handlers.on_order_spike(store, unexplained, event(EventType.ORDER_SPIKE_DETECTED, data), data)
    assert list(unexplained.context[handlers.REPLAN]) == ["SKU-1"]

    retracted = RecordingPublisher()
    data = spike(status="retracted")
    await handlers.on_order_spike(store, retracted, event(EventType.ORDER_SPIKE_RETRACTED, data), data)
    assert list(retracted.context[handlers.REPLAN]) == ["SKU-1"]  # it drove sensing: its removal re-plans
    assert len(store.drivers) == 3


# ---------------------------------------------------------------- week rollover


async def test_the_first_check_records_the_week_and_a_new_week_replans_everything() -> None:
    store = FakePlanningStore()
    await with_item(store)
    publisher = RecordingPublisher()
    assert await handlers.roll_if_new_week(units(store, publisher), SETTINGS) is False
    assert await handlers.roll_if_new_week(units(store, publisher), SETTINGS) is False
    assert store.week_rolled_to == MONDAY and publisher.events == []
    next_week = PlanningSettings(clock_today=MONDAY + timedelta(days=8))
    assert await handlers.roll_if_new_week(units(store, publisher), next_week) is True
    assert store.week_rolled_to == MONDAY + timedelta(weeks=1)
    week_driver = f"week:{(MONDAY + timedelta(weeks=1)).isoformat()}"
    assert week_driver in store.drivers
    assert [e.data.driver_event_ids for e in publisher.events if e.type == EventType.MPS_REVISED] == [[week_driver]]


async def test_a_full_replan_goes_chunk_by_chunk_locking_only_each_chunks_skus() -> None:
    store = FakePlanningStore()
    for sku in ("SKU-3", "SKU-1", "SKU-5", "SKU-2", "SKU-4"):
        await handlers.put_item(store, RecordingPublisher(), replace(ITEM, sku=sku), SETTINGS)
    store.locks.clear()
    publisher = RecordingPublisher()
    opened = 0

    @asynccontextmanager
    async def unit() -> AsyncIterator[tuple[Any, Any]]:
        nonlocal opened
        opened += 1
        yield store, publisher

    chunked = PlanningSettings(clock_today=MONDAY, planning_replan_chunk_skus=2)
    totals = await handlers.replan_all(unit, chunked, driver_id="replan:1", summary="full re-plan")
    assert store.locks == [["SKU-1", "SKU-2"], ["SKU-3", "SKU-4"], ["SKU-5"]]
    assert (totals.planned, totals.chunks) == (5, 3)
    assert opened == 5  # the driver, three chunks, and the one that found no SKU left
    assert "replan:1" in store.drivers


class SlowStore(FakePlanningStore):
    """A store whose reads and writes give the event loop a turn, as a database's round trips do."""

    fail_on: str | None = None

    async def load_inputs(self, skus: Any, horizon_start: date, *, promotions: Any = None) -> Any:
        await asyncio.sleep(0.01)
        if self.fail_on is not None and skus is not None and self.fail_on in skus:
            raise RuntimeError(f"inputs of {self.fail_on} unreadable")
        return await super().load_inputs(skus, horizon_start, promotions=promotions)

    async def save_revisions(self, revisions: Any, *, horizon_start: date, generated_at: Any) -> None:
        await asyncio.sleep(0.01)
        await super().save_revisions(revisions, horizon_start=horizon_start, generated_at=generated_at)


async def test_a_full_replan_overlaps_two_chunks_at_most_each_locking_its_own_skus() -> None:
    store = SlowStore()
    skus = [f"SKU-{n}" for n in range(7)]
    for sku in skus:
        await handlers.put_item(store, RecordingPublisher(), replace(ITEM, sku=sku), SETTINGS)
    store.locks.clear()
    store.revisions.clear()
    open_units = 0
    most_open = 0
    committed: list[int] = []

    @asynccontextmanager
    async def unit() -> AsyncIterator[tuple[Any, Any]]:
        nonlocal open_units, most_open
        open_units += 1
        most_open = max(most_open, open_units)
        try:
            yield store, RecordingPublisher()
            committed.append(len(store.locks))
        finally:
            open_units -= 1

    moved = PlanningSettings(clock_today=MONDAY + timedelta(weeks=1), planning_replan_chunk_skus=2)
    totals = await handlers.replan_all(unit, moved, driver_id="replan:1", summary="full re-plan")
    assert most_open == handlers.REPLAN_CHUNKS_IN_FLIGHT
    assert sorted(store.locks) == [skus[0:2], skus[2:4], skus[4:6], skus[6:7]]
    assert (totals.planned, totals.revised, totals.chunks) == (7, 7, 4)
    assert sorted(r.plan.sku for r in store.revisions) == skus


async def test_a_failed_chunk_fails_the_full_replan_and_stops_the_chunk_beside_it() -> None:
    store = SlowStore()
    for n in range(7):
        await handlers.put_item(store, RecordingPublisher(), replace(ITEM, sku=f"SKU-{n}"), SETTINGS)
    store.locks.clear()
    store.fail_on = "SKU-2"
    chunked = PlanningSettings(clock_today=MONDAY, planning_replan_chunk_skus=2)
    with pytest.raises(RuntimeError, match="SKU-2"):
        await handlers.replan_all(units(store, RecordingPublisher()), chunked, driver_id="replan:1", summary="re-plan")
    # the chunk after the failed one had started beside it; nothing runs on once the re-plan failed
    assert ["SKU-6"] not in store.locks
    await asyncio.sleep(0.05)
    assert ["SKU-6"] not in store.locks
