"""Promotion handlers against an in-memory store: idempotent creates, revisions, cancellation, launches, and
planning's capacity conflicts turning promotions at risk and back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import pytest

from services.promotion_service import handlers
from services.promotion_service.domain import CreateLaunch, CreatePromotion, RevisePromotion
from services.promotion_service.schemas import PromotionCreate
from shared.errors import ProblemError
from shared.events import CapacityConflictData, EventType, ShortfallWeekData, new_event
from tests.fakes import RecordingPublisher
from tests.fakes.promotion import FakePromotionStore


def body(promotion_id: str = "BF", **changes: Any) -> dict[str, Any]:
    values = {
        "promotion_id": promotion_id,
        "name": "Black Friday",
        "starts_on": "2026-11-27",
        "ends_on": "2026-11-30",
        "items": [{"sku": "A", "uplift_pct": 50.0}, {"sku": "B", "uplift_pct": 10.0}],
        **changes,
    }
    return PromotionCreate.model_validate(values).model_dump(mode="json")


def as_create_body(merged: Mapping[str, Any]) -> Mapping[str, Any]:
    return PromotionCreate.model_validate(merged).model_dump(mode="json")


async def create(store: FakePromotionStore, publisher: RecordingPublisher, **changes: Any) -> handlers.WrittenPromotion:
    return await handlers.create_promotion(store, publisher, CreatePromotion.from_body(body(**changes)))


# ---------------------------------------------------------------- create


async def test_a_new_promotion_is_stored_and_announced_keyed_by_its_first_sku() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    written = await create(store, publisher)
    assert written.changed is True
    assert (written.promotion.status, written.promotion.version) == ("planned", 1)
    (event,) = publisher.events
    assert (event.type, event.key, event.subject) == (EventType.PROMOTION_PLANNED, "A", "BF")
    assert event.data.items[1].sku == "B" and event.data.version == 1


async def test_an_identical_retry_answers_with_the_stored_promotion_and_publishes_nothing() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    first = await create(store, publisher)
    again = await create(store, publisher)
    assert again.changed is False
    assert again.promotion == first.promotion
    assert publisher.types() == [EventType.PROMOTION_PLANNED]


async def test_the_same_id_with_another_body_is_a_conflict() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    with pytest.raises(ProblemError) as raised:
        await create(store, publisher, name="Cyber Monday")
    assert raised.value.status == 409 and raised.value.extra == {"promotion_id": "BF"}
    assert store.promotions["BF"].body["name"] == "Black Friday"
    assert len(publisher.events) == 1


async def test_cross_field_rules_refuse_the_create_naming_the_field() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    with pytest.raises(ProblemError) as raised:
        await create(store, publisher, ends_on="2026-11-26")
    assert raised.value.status == 422
    assert [e["field"] for e in raised.value.errors or []] == ["ends_on"]
    assert store.promotions == {} and publisher.events == []


async def test_overlapping_live_promotions_of_the_same_sku_are_warnings_not_refusals() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher, promotion_id="EARLY", starts_on="2026-11-20", ends_on="2026-11-27")
    await create(store, publisher, promotion_id="ELSEWHERE", items=[{"sku": "Z", "uplift_pct": 5}])
    written = await create(store, publisher)
    assert [(w.sku, w.promotion_id) for w in written.warnings] == [("A", "EARLY"), ("B", "EARLY")]


# ---------------------------------------------------------------- revise and cancel


async def test_a_revision_that_changes_something_bumps_the_version_and_is_published() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    revised = await handlers.revise_promotion(
        store, publisher, RevisePromotion("BF", {"name": "Black Week"}), as_create_body
    )
    assert revised.changed is True and revised.promotion.version == 2
    assert publisher.types() == [EventType.PROMOTION_PLANNED, EventType.PROMOTION_REVISED]
    assert publisher.events[-1].data.name == "Black Week"
    assert store.locked == ["BF"]


async def test_a_revision_that_changes_nothing_publishes_nothing() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    same = await handlers.revise_promotion(
        store, publisher, RevisePromotion("BF", {"name": "Black Friday"}), as_create_body
    )
    assert same.changed is False and same.promotion.version == 1
    assert publisher.types() == [EventType.PROMOTION_PLANNED]


async def test_a_revision_may_not_null_a_required_field() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    with pytest.raises(ProblemError) as raised:
        await handlers.revise_promotion(store, publisher, RevisePromotion("BF", {"items": None}), as_create_body)
    assert raised.value.status == 422 and [e["field"] for e in raised.value.errors or []] == ["items"]


async def test_cancelling_twice_publishes_once_and_a_cancelled_promotion_cannot_be_revised() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    first, changed = await handlers.cancel_promotion(store, publisher, "BF")
    second, changed_again = await handlers.cancel_promotion(store, publisher, "BF")
    assert (changed, changed_again) == (True, False)
    assert first == second and second.status == "cancelled" and second.version == 2
    assert publisher.types() == [EventType.PROMOTION_PLANNED, EventType.PROMOTION_CANCELLED]
    with pytest.raises(ProblemError) as raised:
        await handlers.revise_promotion(store, publisher, RevisePromotion("BF", {"name": "x"}), as_create_body)
    assert raised.value.status == 409


async def test_revising_or_cancelling_an_unknown_promotion_is_not_found() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    with pytest.raises(ProblemError) as raised:
        await handlers.cancel_promotion(store, publisher, "NOPE")
    assert raised.value.status == 404


# ---------------------------------------------------------------- launches


def launch(reference_sku: str = "OLD", **changes: Any) -> CreateLaunch:
    values = {
        "launch_id": "L1",
        "sku": "NEW",
        "launch_on": "2026-12-01",
        "reference_sku": reference_sku,
        "scale_pct": 80.0,
        "ramp_weeks": 2,
        **changes,
    }
    return CreateLaunch.from_body(values)


async def test_a_launch_is_created_once_and_a_different_body_conflicts() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    created, was_created = await handlers.create_launch(store, publisher, launch())
    again, created_again = await handlers.create_launch(store, publisher, launch())
    assert (was_created, created_again) == (True, False) and again == created
    assert [(e.type, e.key) for e in publisher.events] == [(EventType.LAUNCH_PLANNED, "NEW")]
    with pytest.raises(ProblemError) as raised:
        await handlers.create_launch(store, publisher, launch(scale_pct=90.0))
    assert raised.value.status == 409


async def test_a_launch_cannot_follow_itself() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    with pytest.raises(ProblemError) as raised:
        await handlers.create_launch(store, publisher, launch(reference_sku="NEW"))
    assert [e["field"] for e in raised.value.errors or []] == ["reference_sku"]
    assert store.launches == {}


# ---------------------------------------------------------------- capacity conflicts from planning


def conflict_event(
    event_type: EventType, sku: str, promotion_ids: list[str], plan_version: int | None, shortfall: float = 0.0
) -> tuple[Any, CapacityConflictData]:
    weeks = [ShortfallWeekData(week_start=date(2026, 11, 30), shortfall=shortfall)] if shortfall else []
    data = CapacityConflictData(
        sku=sku, promotion_ids=promotion_ids, weeks=weeks, total_shortfall=shortfall, plan_version=plan_version
    )
    return new_event(event_type, source="salesops/planning-service", subject=sku, data=data), data


async def detected(store: FakePromotionStore, sku: str, ids: list[str], version: int, shortfall: float) -> None:
    event, data = conflict_event(EventType.CAPACITY_CONFLICT_DETECTED, sku, ids, version, shortfall)
    await handlers.on_capacity_conflict_detected(store, event, data)


async def resolved(store: FakePromotionStore, sku: str, ids: list[str], version: int | None) -> None:
    _, data = conflict_event(EventType.CAPACITY_CONFLICT_RESOLVED, sku, ids, version)
    await handlers.on_capacity_conflict_resolved(store, data)


async def test_a_detected_conflict_puts_the_promotion_at_risk_with_a_summary_per_week() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    await detected(store, "A", ["BF", "UNKNOWN"], version=3, shortfall=40)
    await detected(store, "B", ["BF"], version=2, shortfall=10)
    promotion = store.promotions["BF"]
    assert promotion.status == "at_risk"
    assert promotion.conflict is not None
    assert promotion.conflict["skus"] == ["A", "B"] and promotion.conflict["shortfall"] == 50
    assert promotion.conflict["weeks"] == [{"week_start": "2026-11-30", "shortfall": 50}]
    assert ("UNKNOWN", "A") not in store.conflicts
    assert publisher.types() == [EventType.PROMOTION_PLANNED]  # planning is the source of the status


async def test_an_older_plans_report_changes_nothing() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    await detected(store, "A", ["BF"], version=5, shortfall=40)
    await detected(store, "A", ["BF"], version=4, shortfall=99)
    await resolved(store, "A", ["BF"], version=4)
    assert store.conflicts[("BF", "A")].total_shortfall == 40
    assert store.promotions["BF"].status == "at_risk"


async def test_resolving_without_ids_resolves_every_promotion_of_the_sku_and_cancelled_stays_cancelled() -> None:
    store, publisher = FakePromotionStore(), RecordingPublisher()
    await create(store, publisher)
    await create(store, publisher, promotion_id="XMAS", starts_on="2026-12-20", ends_on="2026-12-24")
    await detected(store, "A", ["BF", "XMAS"], version=1, shortfall=40)
    await handlers.cancel_promotion(store, publisher, "XMAS")
    assert store.promotions["XMAS"].status == "cancelled"
    await resolved(store, "A", [], version=2)
    assert store.conflicts == {}
    assert store.promotions["BF"].status == "planned" and store.promotions["BF"].conflict is None
    assert store.promotions["XMAS"].status == "cancelled"
