"""`mps.revised` built as plain values and encoded once (a full re-plan's chunks) is the contract's event byte
for byte: the same JSON `new_event(...).to_json()` writes from the pydantic models, for representative plans
(first plans, revisions, capacity shortfalls, frozen weeks, booked orders, unlimited capacity)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.planning_service import handlers
from services.planning_service.domain import (
    Item,
    PlanWeek,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    diff_plans,
    plan_many,
)
from services.planning_service.domain.diff import COMPARED_FIELDS, changed_weeks, spelled_out, week_changes
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.recompute import (
    MAX_EVENT_DRIVERS,
    EncodingPublisher,
    _compared_values,
    _floats_with_a_point,
    encode_event,
    encode_revision_changes,
    encode_week_changes,
    mps_revised_data,
)
from services.planning_service.settings import PlanningSettings
from services.planning_service.store.inputs import encode_expanded_plan_weeks, week_values
from services.planning_service.store.plans import (
    changes_from_stored,
    encode_spelled_out_changes,
    encode_stored_changes,
    plan_totals,
)
from shared.events import (
    EventType,
    MpsRevisedData,
    WeekChangeData,
    new_event,
    parse_data,
    parse_envelope,
)
from tests.fakes import RecordingPublisher
from tests.fakes.planning import FakePlanningStore
from tests.unit.planning.test_planning_handlers import units

MONDAY = date(2026, 11, 16)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class EncodingRecordingPublisher(RecordingPublisher):
    """A chunk's publisher: events may also be handed over encoded (the fake store keeps them)."""

    source: str = "salesops/planning"
    traceparent: str | None = None
    max_event_bytes: int | None = 1_048_576
    woken: list[bool] = field(default_factory=list)

    def wrote_encoded_events(self) -> None:
        self.woken.append(True)


def representative_plans() -> tuple[list[SkuPlan], list[SkuPlan]]:
    """Plans of SKUs with and without capacity, lots, a frozen fence, a promotion and booked orders, and the
    same SKUs planned again after their stock, demand and promotion moved."""
    items = [
        Item(
            "SKU-1",
            "Widget",
            on_hand=30,
            safety_stock=10,
            lot_size=7,
            weekly_capacity=120,
            frozen_weeks=1,
            baseline_weekly_demand=100.3,
        ),
        Item("SKU-2", "Gadget", on_hand=0, safety_stock=0, baseline_weekly_demand=5),
        Item(
            "SKU-3",
            "Gizmo",
            on_hand=1e9,
            safety_stock=0,
            lot_size=50,
            weekly_capacity=0.1,
            baseline_weekly_demand=1 / 3,
        ),
        Item("SKU-4", "Thing", on_hand=12.75, safety_stock=3, baseline_weekly_demand=0),
    ]
    line = OrderLine(
        "SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-2", 70, MONDAY + timedelta(days=9), datetime(2026, 11, 1)
    )
    history = {MONDAY - timedelta(weeks=w): 40.0 + 7 * (w % 5) for w in range(1, 20)}
    promotion = Promotion(
        "P-1",
        MONDAY + timedelta(days=9),
        MONDAY + timedelta(days=16),
        (PromotionItem("SKU-1", 37.5), PromotionItem("SKU-3", 500)),
    )
    inputs = [
        SkuInputs(items[0], history=history),
        SkuInputs(items[1], order_lines=(line,)),
        SkuInputs(items[2], history={MONDAY - timedelta(weeks=1): 3.0}),
        SkuInputs(items[3]),
    ]
    first = plan_many(inputs, MONDAY, promotions=[promotion])
    later = [
        replace(
            inp,
            item=replace(inp.item, on_hand=inp.item.on_hand + 37.1),
            previous_mps={w.week_start: w.mps_quantity for w in plan.weeks},
        )
        for inp, plan in zip(inputs, first, strict=True)
    ]
    moved = replace(promotion, items=(PromotionItem("SKU-1", 12.5),))
    second = plan_many(later, MONDAY + timedelta(weeks=1), promotions=[moved])
    return first, second


def expected_bytes(
    sku: str,
    version: int,
    old: SkuPlan | None,
    new: SkuPlan,
    drivers: list[str],
    encoded_id: str,
    time: datetime,
    traceparent: str | None,
) -> bytes:
    """The event as the pydantic models make it: one `WeekChangeData` per changed week."""
    data = MpsRevisedData(
        sku=sku,
        plan_version=version,
        changed_weeks=[
            WeekChangeData(week_start=c.week_start, field=c.field, before=c.before, after=c.after)
            for c in diff_plans(old, new)
        ],
        driver_event_ids=drivers[:MAX_EVENT_DRIVERS],
    )
    event = new_event(
        EventType.MPS_REVISED, source="salesops/planning", subject=sku, data=data, traceparent=traceparent, time=time
    )
    return event.model_copy(update={"id": encoded_id}).to_json()


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
@pytest.mark.parametrize(
    "time", [datetime(2026, 11, 18, 9, 30, 1, 250, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)]
)
def test_encoded_revisions_are_the_models_events_byte_for_byte(traceparent: str | None, time: datetime) -> None:
    first, second = representative_plans()
    unit: EncodingPublisher = EncodingRecordingPublisher(traceparent=traceparent)
    drivers = ["replan:1", *(f"promotion-{n}" for n in range(MAX_EVENT_DRIVERS + 5))]
    compared = 0
    for old, new in [*((None, plan) for plan in first), *zip(first, second, strict=True)]:
        changes = encode_week_changes(old, new)
        assert changes is not None, "every representative plan changed"
        assert orjson.loads(changes) == orjson.loads(orjson.dumps(week_changes(old, new)))
        version = 1 if old is None else 2
        data = mps_revised_data(new.sku, version, orjson.Fragment(changes), drivers)
        encoded = encode_event(EventType.MPS_REVISED, new.sku, data, unit, time=time)
        assert encoded.payload == expected_bytes(
            new.sku, version, old, new, drivers, encoded.event_id, time, traceparent
        )
        assert (encoded.event_type, encoded.topic, encoded.key) == (
            "salesops.mps.revised.v1",
            "salesops.plans",
            new.sku,
        )
        # and what a consumer of the topic validates it with accepts it
        parsed = parse_data(parse_envelope(encoded.payload), "salesops.plans")
        assert isinstance(parsed, MpsRevisedData) and parsed.plan_version == version
        compared += 1
    assert compared == 8


def test_week_changes_are_diff_plans_as_plain_values() -> None:
    first, second = representative_plans()
    for old, new in [*((None, plan) for plan in first), *zip(first, second, strict=True), (first[0], first[0])]:
        expected = [
            {"week_start": c.week_start, "field": c.field, "before": c.before, "after": c.after}
            for c in diff_plans(old, new)
        ]
        assert week_changes(old, new) == expected
        encoded = encode_week_changes(old, new)
        assert encoded == (orjson.dumps(expected) if expected else None)


def test_a_revision_stores_its_changes_compactly_and_reads_them_back_spelled_out() -> None:
    """The stored form (per changed week: the fields that changed, before and after) reads back as the changes
    the event carries, with dates as JSON has them; revisions stored in the spelled-out form read as they are."""
    first, second = representative_plans()
    for old, new in [*((None, plan) for plan in first), *zip(first, second, strict=True)]:
        encoded = encode_revision_changes(old, new)
        assert encoded is not None
        spelled, stored = encoded
        assert stored == encode_stored_changes(changed_weeks(old, new))
        assert len(stored) < len(spelled) / 2 if old is None else len(stored) < len(spelled)
        as_json = orjson.loads(orjson.dumps(week_changes(old, new)))
        assert changes_from_stored(orjson.loads(stored)) == as_json == orjson.loads(spelled)
        assert changes_from_stored(as_json) == as_json
        assert encode_revision_changes(old, new, compact=False) == (spelled, spelled), "expanded: the event's JSON"
    assert encode_revision_changes(first[0], first[0]) is None
    assert encode_revision_changes(first[0], first[0], compact=False) is None


values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0.0, -0.0, 1e-7, 1e16, 1 / 3, 2.5e-300]),
)


@settings(max_examples=300, deadline=None)
@given(before=st.one_of(st.none(), values), after=values, sku=st.text(min_size=1, max_size=30))
def test_any_week_change_encodes_as_its_model_does(before: float | None, after: float, sku: str) -> None:
    """Numbers of any size (ints included: the model writes them as floats) and any SKU text."""
    change = {"week_start": MONDAY, "field": "forecast", "before": before, "after": after}
    built = [{k: (float(v) if isinstance(v, int) else v) for k, v in change.items()}]
    unit = EncodingRecordingPublisher()
    time = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
    encoded = encode_event(EventType.MPS_REVISED, sku, mps_revised_data(sku, 3, built, ["d"]), unit, time=time)
    model = MpsRevisedData(
        sku=sku, plan_version=3, changed_weeks=[WeekChangeData.model_validate(change)], driver_event_ids=["d"]
    )
    event = new_event(EventType.MPS_REVISED, source=unit.source, subject=sku, data=model, time=time)
    assert encoded.payload == event.model_copy(update={"id": encoded.event_id}).to_json()


@pytest.mark.parametrize("storage", ["expanded", "compact"])
async def test_a_chunk_writes_the_same_events_encoded_as_one_by_one(storage: str) -> None:
    """The full re-plan through an encoding publisher (the store writes the events; with revisions stored
    spelled out, around their stored changes) and through a plain one (events published one by one) stores the
    same plans and carries the same events, whichever way plans are stored."""
    plain_settings = PlanningSettings(clock_today=MONDAY, planning_replan_chunk_skus=2, planning_plan_storage=storage)
    results: list[tuple[list[dict[str, Any]], FakePlanningStore]] = []
    for publisher in (RecordingPublisher(), EncodingRecordingPublisher()):
        store = FakePlanningStore()
        for n in range(5):
            sku = f"SKU-{n}"
            item = Item(
                sku,
                sku,
                on_hand=10 * n,
                safety_stock=n,
                weekly_capacity=None if n % 2 else 90,
                baseline_weekly_demand=33.3 * (n + 1),
            )
            await store.save_item(item, 1)

        totals = await handlers.replan_all(
            units(store, publisher), plain_settings, driver_id="replan:1", summary="re-plan"
        )
        assert (totals.planned, totals.revised, totals.chunks) == (5, 5, 3)
        if isinstance(publisher, EncodingRecordingPublisher):
            # mps.revised went to the store encoded; conflicts (rare) are still published one by one
            assert EventType.MPS_REVISED not in publisher.types() and len(publisher.woken) == 3
            events = [json.loads(e.payload) for e in store.outbox]
            datas = [e["data"] for e in events]
            assert {e["source"] for e in events} == {"salesops/planning"}
        else:
            assert store.outbox == []
            datas = [e.data.model_dump(mode="json") for e in publisher.events if e.type == EventType.MPS_REVISED]
        results.append((datas, store))
    (plain, plain_store), (encoded, encoded_store) = results
    assert plain_store.conflicts == encoded_store.conflicts and plain_store.conflicts
    assert encoded == plain and len(plain) == 5
    assert all(len(d["changed_weeks"]) == 26 * 6 and d["driver_event_ids"] == ["replan:1"] for d in plain)
    assert [r.changes for r in encoded_store.revisions] == [r.changes for r in plain_store.revisions]
    assert all(not math.isnan(w.forecast) for r in encoded_store.revisions for w in r.plan.weeks)


week_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0.0, -0.0, 1e-7, 1e16, 1 / 3, 2.5e-300, 300.0]),
)


@st.composite
def plan_weeks(draw: st.DrawFn) -> tuple[PlanWeek, ...]:
    """Weeks of any values the fields may hold: floats (NaN and infinities too), ints, no capacity."""
    count = draw(st.integers(min_value=1, max_value=30))
    fields = len(PlanWeek._fields) - 1
    weeks = []
    for week in range(count):
        numbers = draw(st.lists(week_numbers, min_size=fields, max_size=fields))
        numbers[PlanWeek._fields.index("capacity") - 1] = draw(st.one_of(st.none(), week_numbers))
        weeks.append(PlanWeek(MONDAY + timedelta(weeks=week), *numbers))
    return tuple(weeks)


@settings(max_examples=120, deadline=None)
@given(weeks=plan_weeks(), floats_only=st.booleans())
def test_a_first_plan_encoded_from_its_week_values_is_byte_for_byte_as_encoded_alone(
    weeks: tuple[PlanWeek, ...], floats_only: bool
) -> None:
    """The stored weeks and a first plan's changes taken from one encoding of the weeks' values are the bytes
    of a dict per week and of `week_changes` (ints are written as floats in the changes, not in the weeks)."""
    if floats_only:
        weeks = tuple(
            PlanWeek._make(v if i == 0 or v is None else float(v) for i, v in enumerate(week)) for week in weeks
        )
    plan = SkuPlan("SKU-1", weeks)
    values = week_values(weeks)
    assert len(values) == len(weeks) * len(PlanWeek._fields)
    expanded = orjson.dumps([week._asdict() for week in weeks])
    assert encode_expanded_plan_weeks(weeks, values) == encode_expanded_plan_weeks(weeks) == expanded
    spelled = orjson.dumps(week_changes(None, plan))
    stored = encode_stored_changes(changed_weeks(None, plan))
    assert encode_revision_changes(None, plan, compact=False, values=values) == (spelled, spelled)
    assert encode_revision_changes(None, plan, compact=True, values=values) == (spelled, stored)


def test_a_first_plan_of_the_core_takes_its_changes_from_its_week_values() -> None:
    first, _ = representative_plans()
    for plan in first:
        values = week_values(plan.weeks)
        # the core plans floats: every compared value is taken as encoded with the weeks
        assert _floats_with_a_point(_compared_values(len(plan.weeks))(values))
        spelled = orjson.dumps(week_changes(None, plan))
        assert encode_revision_changes(None, plan, compact=False, values=values) == (spelled, spelled)
        assert encode_expanded_plan_weeks(plan.weeks, values) == orjson.dumps([w._asdict() for w in plan.weeks])


@settings(max_examples=80, deadline=None)
@given(weeks=plan_weeks())
def test_a_plans_totals_are_its_weeks_summed_in_order(weeks: tuple[PlanWeek, ...]) -> None:
    expected = (
        float(sum(w.forecast for w in weeks)),
        float(sum(w.mps_quantity for w in weeks)),
        sum(1 for w in weeks if w.capacity_shortfall > 0),
    )
    totals = plan_totals(weeks)
    assert orjson.dumps(totals) == orjson.dumps(expected)
    assert type(totals[2]) is int


def test_only_values_written_as_floats_with_a_point_are_taken_as_the_changes_numbers() -> None:
    # As orjson writes them: 1.5e16 as `1.5e+16` (a float with a point), 1e16 as `1e+16` (none), 2.5e-7 as `2.5e-7`.
    assert _floats_with_a_point([b"1.5", b"-0.0", orjson.dumps(2.5e-7), b"300.0", orjson.dumps(1.5e16)])
    for other in (b"3", b"-7", orjson.dumps(1e16), b"null", b"true", b"false", b'"1.5"', b'"2026-11-30"'):
        assert not _floats_with_a_point([b"1.5", other]), other


@st.composite
def revised_weeks(draw: st.DrawFn) -> tuple[tuple[PlanWeek, ...], tuple[PlanWeek, ...]]:
    """A plan's weeks and a revision of them: some compared fields moved (by any value, or by less than the
    tolerance), the horizon possibly moved on a few weeks (weeks new to the plan)."""
    old = draw(plan_weeks())
    shift = draw(st.integers(min_value=0, max_value=3))
    new = []
    for week in old[shift:] + tuple(
        w._replace(week_start=w.week_start + timedelta(weeks=len(old))) for w in old[:shift]
    ):
        values = list(week)
        for name in COMPARED_FIELDS:
            index = PlanWeek._fields.index(name)
            move = draw(st.sampled_from(["keep", "any", "tiny"]))
            if move == "any":
                values[index] = draw(week_numbers)
            elif move == "tiny" and isinstance(values[index], float) and math.isfinite(values[index]):
                values[index] += 1e-12
        new.append(PlanWeek._make(values))
    return old, tuple(new)


@settings(max_examples=120, deadline=None)
@given(weeks=revised_weeks())
def test_a_revisions_changes_are_spelled_out_byte_for_byte_as_a_dict_per_change(
    weeks: tuple[tuple[PlanWeek, ...], tuple[PlanWeek, ...]],
) -> None:
    """Filled into templates of each changed week, the changes are the bytes of `spelled_out`'s dicts encoded
    (what the event carries and an expanded revision stores): any numbers, weeks new to the plan, fields that
    moved by less than the tolerance, or nothing changed at all."""
    old, new = (SkuPlan("SKU-1", w) for w in weeks)
    found = changed_weeks(old, new)
    assert encode_spelled_out_changes(found) == orjson.dumps(spelled_out(found))
    encoded = encode_revision_changes(old, new, compact=False)
    assert encoded == (None if not found else (orjson.dumps(week_changes(old, new)),) * 2)
    compact = encode_revision_changes(old, new)
    assert compact == (None if not found else (orjson.dumps(week_changes(old, new)), encode_stored_changes(found)))


def test_the_spelled_out_changes_of_the_core_s_revisions_are_the_dicts_encoded() -> None:
    first, second = representative_plans()
    for old, new in zip(first, second, strict=True):
        found = changed_weeks(old, new)
        assert found and encode_spelled_out_changes(found) == orjson.dumps(week_changes(old, new))
    assert encode_spelled_out_changes([]) == orjson.dumps([]) == b"[]"
