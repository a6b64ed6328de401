"""Fulfillment handlers against an in-memory store: a report's lines replace stored figures, changed totals
are announced once, spikes are detected, retracted by a correction, and explained by promotions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.fulfillment_service import handlers
from services.fulfillment_service.domain import DayVolume, ReportVolumes, SpikeRule
from shared.events import EventType, InvalidEvent, PromotionData, new_event
from tests.fakes import RecordingPublisher
from tests.fakes.fulfillment import FakeFulfillmentStore

MONDAY = date(2026, 11, 23)
RULE = SpikeRule()


def line(day: date, ordered: int, sku: str = "SKU-1") -> DayVolume:
    return DayVolume(sku, day, ordered, units_shipped=ordered, units_backordered=0)


async def report(
    store: FakeFulfillmentStore, publisher: RecordingPublisher, *lines: DayVolume, warehouse: str = "DC-EAST"
) -> tuple[int, int]:
    result = await handlers.record_volumes(store, publisher, ReportVolumes(warehouse, lines), RULE)
    publisher.events.extend(store.take_events())  # a report's events go to the outbox through the store
    return result


async def flat_history(store: FakeFulfillmentStore) -> None:
    """Four weeks of 100 units a day before MONDAY: enough history for the rule to judge MONDAY."""
    await report(store, RecordingPublisher(), *(line(MONDAY - timedelta(days=i), 100) for i in range(1, 29)))


async def test_the_last_line_of_a_key_wins_and_only_changed_lines_count() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    accepted, changed = await report(store, publisher, line(MONDAY, 10), line(MONDAY, 20), line(MONDAY, 5, "SKU-2"))
    assert (accepted, changed) == (3, 2)
    assert store.volumes[("DC-EAST", "SKU-1", MONDAY)] == (20, 20, 0)
    assert store.locked == [{"SKU-1", "SKU-2"}]
    reported = [(e.key, [d.units_ordered for d in e.data.days]) for e in publisher.events]
    assert reported == [("SKU-1", [20]), ("SKU-2", [5])]


async def test_an_identical_resend_changes_nothing_and_publishes_nothing() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await report(store, publisher, line(MONDAY, 10))
    assert publisher.outbox_writes == 1  # the relay is woken once the report commits
    again = RecordingPublisher()
    assert await report(store, again, line(MONDAY, 10)) == (1, 0)
    assert again.events == []
    assert again.outbox_writes == 0


async def test_the_announced_total_sums_every_warehouse_and_a_correction_replaces() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await report(store, publisher, line(MONDAY, 120), warehouse="DC-EAST")
    await report(store, publisher, line(MONDAY, 30), warehouse="DC-WEST")
    await report(store, publisher, line(MONDAY, 90), warehouse="DC-EAST")
    totals = [e.data.days[0].units_ordered for e in publisher.events if e.type == EventType.ORDER_VOLUME_REPORTED]
    assert totals == [120, 150, 120]


async def test_a_spike_is_detected_and_a_correction_retracts_it_as_it_was() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await flat_history(store)
    await report(store, publisher, line(MONDAY, 250))
    assert publisher.types() == [EventType.ORDER_VOLUME_REPORTED, EventType.ORDER_SPIKE_DETECTED]
    detected = publisher.events[-1]
    assert (detected.key, detected.subject) == ("SKU-1", f"SKU-1/{MONDAY.isoformat()}")
    assert (detected.data.units, detected.data.baseline, detected.data.status) == (250, 100, "detected")

    correction = RecordingPublisher()
    await report(store, correction, line(MONDAY, 100))
    assert correction.types() == [EventType.ORDER_VOLUME_REPORTED, EventType.ORDER_SPIKE_RETRACTED]
    retracted = correction.events[-1].data
    assert (retracted.units, retracted.status) == (250, "retracted")
    assert store.spikes[("SKU-1", MONDAY)].status == "retracted"

    later = RecordingPublisher()
    await report(store, later, line(MONDAY + timedelta(days=1), 100))
    assert EventType.ORDER_SPIKE_RETRACTED not in later.types()  # a retracted spike is not retracted twice


async def test_an_unchanged_verdict_is_not_published_again() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await flat_history(store)
    await report(store, publisher, line(MONDAY, 250))
    other_warehouse = RecordingPublisher()
    await report(store, other_warehouse, line(MONDAY, 0), warehouse="DC-WEST")  # a new line, the same total
    assert other_warehouse.types() == [EventType.ORDER_VOLUME_REPORTED]


def promotion(
    version: int = 1, *, starts_on: date = MONDAY, ends_on: date = MONDAY, status: str = "planned"
) -> PromotionData:
    return PromotionData.model_validate(
        {
            "promotion_id": "BF",
            "name": "Black Friday",
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "items": [{"sku": "SKU-1", "uplift_pct": 50}],
            "status": status,
            "version": version,
        }
    )


async def promotion_event(
    store: FakeFulfillmentStore, publisher: RecordingPublisher, event_type: EventType, data: PromotionData
) -> None:
    event = new_event(event_type, source="salesops/promotion-service", subject=data.promotion_id, data=data)
    store.locked.clear()  # a unit of work of its own: it holds no lock yet
    await handlers.on_promotion_event(store, publisher, event, data)


async def test_a_promotion_explains_a_stored_spike_and_its_cancellation_takes_that_back() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await flat_history(store)
    await report(store, publisher, line(MONDAY, 250))

    planned = RecordingPublisher()
    await promotion_event(store, planned, EventType.PROMOTION_PLANNED, promotion(1))
    assert [(e.type, e.data.explained_by_promotion_id) for e in planned.events] == [
        (EventType.ORDER_SPIKE_DETECTED, "BF")
    ]

    cancelled = RecordingPublisher()
    await promotion_event(store, cancelled, EventType.PROMOTION_CANCELLED, promotion(2, status="cancelled"))
    assert [e.data.explained_by_promotion_id for e in cancelled.events] == [None]

    late = RecordingPublisher()
    await promotion_event(store, late, EventType.PROMOTION_PLANNED, promotion(1))
    assert late.events == [] and store.windows["BF"].window.cancelled


async def test_a_spike_inside_a_live_promotion_is_detected_already_explained() -> None:
    store, publisher = FakeFulfillmentStore(), RecordingPublisher()
    await flat_history(store)
    await promotion_event(store, RecordingPublisher(), EventType.PROMOTION_PLANNED, promotion(1))
    await report(store, publisher, line(MONDAY, 250))
    assert publisher.events[-1].data.explained_by_promotion_id == "BF"


async def test_a_promotion_ending_before_it_starts_is_poison() -> None:
    store = FakeFulfillmentStore()
    bad = promotion(1, starts_on=MONDAY, ends_on=MONDAY - timedelta(days=1))
    with pytest.raises(InvalidEvent):
        await promotion_event(store, RecordingPublisher(), EventType.PROMOTION_PLANNED, bad)
    assert store.windows == {}
