"""The re-plan the handlers share: run the planning core for some SKUs, keep a plan only when it really
changed, and publish the revision and any change of its capacity conflict through the outbox.

Part of the handlers' room: the SQL is the store's, the conflict rule the domain's (`domain/conflicts.py`).
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

import orjson

from services.planning_service.domain import CapacityConflict, PlanWeek, SkuPlan, plan_many
from services.planning_service.domain.conflicts import conflict_change
from services.planning_service.domain.diff import COMPARED_FIELDS, changed_weeks
from services.planning_service.review import review_promises_after
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import (
    ActivePromotions,
    PlanRevision,
    RevisionEvent,
    Store,
    StoredPlan,
    exceptions_json,
)
from services.planning_service.store.inputs import encode_expanded_plan_weeks, encode_plan_weeks, week_values
from services.planning_service.store.plans import encode_spelled_out_changes, encode_stored_changes
from shared.events import (
    CapacityConflictData,
    CloudEvent,
    EventData,
    EventType,
    MpsRevisedData,
    ShortfallWeekData,
    topic_of,
)
from shared.outbox import EncodedEvent, check_size
from shared.ports import Publisher

# A first plan names every earlier event of its SKU as a driver; an event carries at most this many ids.
MAX_EVENT_DRIVERS = 100


@dataclass(frozen=True)
class RecomputeResult:
    planned: int
    revised: list[str]
    conflicts_detected: list[str]
    conflicts_resolved: list[str]
    # Per SKU planned: its current plan version, and the events behind this re-plan (the new revision's
    # drivers, or the events that asked for a re-plan that changed nothing).
    versions: dict[str, int] = field(default_factory=dict)
    drivers: dict[str, list[str]] = field(default_factory=dict)


async def recompute(
    store: Store,
    publisher: Publisher,
    skus: Collection[str] | None,
    driver_ids: Sequence[str] | Mapping[str, Sequence[str]],
    settings: PlanningSettings,
    *,
    promotions: ActivePromotions | None = None,
) -> RecomputeResult:
    """Re-plan the SKUs (all when None); the caller holds the matching lock. SKUs without an item are
    skipped: their inputs are kept until the item master arrives. `promotions`: a full re-plan's, shared by its
    chunks (read again by a chunk when they changed)."""
    horizon_start = settings.horizon_start()
    loaded = await store.load_inputs(skus, horizon_start, promotions=promotions)
    if not loaded.inputs:
        return RecomputeResult(0, [], [], [])
    plans = plan_many(
        loaded.inputs,
        horizon_start,
        settings.planning_horizon_weeks,
        promotions=loaded.promotions,
        launches=loaded.launches,
        reference_baselines=loaded.reference_baselines,
        params=settings.planning_params(),
        today=settings.today(),
    )
    result = await save_plans(
        store,
        publisher,
        plans,
        loaded.stored,
        driver_ids,
        horizon_start,
        compact=settings.planning_plan_storage == "compact",
    )
    await review_promises_after(store, publisher, plans, loaded.inputs, result.versions, result.drivers)
    return result


async def save_plans(
    store: Store,
    publisher: Publisher,
    plans: Sequence[SkuPlan],
    stored: Mapping[str, StoredPlan],
    driver_ids: Sequence[str] | Mapping[str, Sequence[str]],
    horizon_start: date,
    *,
    compact: bool,
) -> RecomputeResult:
    """Save the plans that changed as new revisions, naming their drivers (the same for every SKU, or each
    SKU's own), publish the revisions and the conflicts that appeared, changed or went away. `compact`: the
    plan's weeks and the revision's changes are stored compactly, else spelled out (`planning_plan_storage`).

    A revision's week changes are diffed once: the revision row's `changes` and the event's `changed_weeks`
    are encoded from the same values (spelled out, the very same JSON). A publisher that writes encoded events
    (a full re-plan's chunk) gets every `mps.revised` of the chunk written by the store in one statement (with
    revisions spelled out, each event around its revision's stored changes, so that they go to the server
    once); any other gets them one by one."""
    now = datetime.now(UTC)
    earlier = await store.earlier_drivers([p.sku for p in plans if p.sku not in stored])
    encoding = publisher if isinstance(publisher, EncodingPublisher) else None
    revisions: list[PlanRevision] = []
    encoded: list[EncodedEvent] = []
    around_revisions: list[RevisionEvent] = []
    new_exceptions: dict[str, list[dict[str, Any]]] = {}
    versions: dict[str, int] = {}
    drivers_of: dict[str, list[str]] = {}
    for plan in plans:
        old = stored.get(plan.sku)
        # a first plan stored spelled out: its weeks' values are encoded once, for its weeks and its changes
        values = week_values(plan.weeks) if old is None and not compact and plan.weeks else None
        encoded_changes = encode_revision_changes(old.plan if old else None, plan, compact=compact, values=values)
        exceptions = exceptions_json(plan.exceptions) if plan.exceptions else []
        own = driver_ids.get(plan.sku, ()) if isinstance(driver_ids, Mapping) else driver_ids
        if encoded_changes is None:
            assert old is not None  # a plan without a predecessor always differs (every week is new)
            versions[plan.sku] = old.plan_version
            drivers_of[plan.sku] = list(own)
            if exceptions != old.exceptions:
                new_exceptions[plan.sku] = exceptions
            continue
        version = old.plan_version + 1 if old else 1
        versions[plan.sku] = version
        drivers = list(dict.fromkeys([*own, *earlier.get(plan.sku, ())]))
        drivers_of[plan.sku] = drivers
        changes_json, stored_changes = encoded_changes
        stored_weeks = encode_plan_weeks(plan.weeks) if compact else encode_expanded_plan_weeks(plan.weeks, values)
        revisions.append(PlanRevision(plan, version, exceptions, drivers, stored_changes, stored_weeks))
        data = mps_revised_data(plan.sku, version, orjson.Fragment(changes_json), drivers)
        if encoding is not None:
            event = encode_event(EventType.MPS_REVISED, plan.sku, data, encoding, time=now)
            if compact:
                encoded.append(event)
            else:
                around_revisions.append(around_revision(event, version, changes_json, encoding.max_event_bytes))
        else:
            publisher.publish(
                EventType.MPS_REVISED,
                key=plan.sku,
                subject=plan.sku,
                data=MpsRevisedData.model_validate_json(orjson.dumps(data)),
            )
    await store.save_revisions(revisions, horizon_start=horizon_start, generated_at=now)
    if encoding is not None:
        await store.save_encoded_events(encoded, max_bytes=encoding.max_event_bytes)
        await store.save_revision_events(around_revisions)
        if encoded or around_revisions:
            encoding.wrote_encoded_events()
        encoded.clear()  # written: the chunk's largest documents need not stay until its end
    await store.save_exceptions(new_exceptions)
    await store.snapshot_forecasts(horizon_start, {p.sku: p.weeks[0].forecast for p in plans})
    detected, resolved = await _sync_conflicts(store, publisher, plans, versions, now)
    return RecomputeResult(len(plans), [r.plan.sku for r in revisions], detected, resolved, versions, drivers_of)


# ---------------------------------------------------------------- events as plain values


def encode_week_changes(old: SkuPlan | None, new: SkuPlan) -> bytes | None:
    """`week_changes(old, new)` as JSON, None when nothing changed (`encode_revision_changes`'s first half)."""
    encoded = encode_revision_changes(old, new)
    return None if encoded is None else encoded[0]


def encode_revision_changes(
    old: SkuPlan | None, new: SkuPlan, *, compact: bool = True, values: Sequence[bytes] | None = None
) -> tuple[bytes, bytes] | None:
    """The changes from `old` to `new`, None when nothing changed; else encoded as `mps.revised` carries them
    (`week_changes(old, new)`'s JSON) and as the revision stores them: `encode_stored_changes` when `compact`,
    else that same spelled-out JSON.

    A first plan changes every compared field of every week: both are put together from its numbers, encoded at
    once, and two templates shared by every first plan of the same horizon, without a dict per change. Its numbers
    are taken from `values`, the new plan's `week_values`, when given and every compared value is written as a
    finite float (as the core plans them: such a float is written the same in both), else encoded here."""
    if old is not None or not new.weeks:
        weeks = changed_weeks(old, new)
        if not weeks:
            return None
        spelled = encode_spelled_out_changes(weeks)
        return spelled, encode_stored_changes(weeks) if compact else spelled
    plan_weeks: tuple[tuple[Any, ...], ...] = new.weeks
    texts = None if values is None else _compared_values(len(plan_weeks))(values)
    if texts is None or not _floats_with_a_point(texts):
        numbers = orjson.dumps([float(week[index]) for week in plan_weeks for index in _COMPARED_INDEXES])
        texts = tuple(numbers[1:-1].split(b","))
    spelled, stored = _first_plan_templates(tuple(week[0] for week in plan_weeks))
    changes = spelled % texts
    return changes, stored % texts if compact else changes


_COMPARED_INDEXES = tuple(PlanWeek._fields.index(name) for name in COMPARED_FIELDS)
_NUMBER_BYTES = b"0123456789.e+-"


def _floats_with_a_point(texts: Sequence[bytes]) -> bool:
    """Whether each of these values, as orjson writes them, is a finite float's with a decimal point: a number
    (no null, true, false or string) with a point, which orjson writes in a float alone, once (an int is digits
    alone). A float written without one (`1e16`) makes it False, as a value of any other type does."""
    joined = b",".join(texts)
    return not joined.translate(None, _NUMBER_BYTES + b",") and joined.count(b".") == len(texts)


@functools.lru_cache(maxsize=8)
def _compared_values(count: int) -> operator.itemgetter[Any]:
    """Of `count` weeks' `week_values`, the compared fields' values, week by week in `COMPARED_FIELDS` order."""
    width = len(PlanWeek._fields)
    return operator.itemgetter(*(week * width + index for week in range(count) for index in _COMPARED_INDEXES))


@functools.lru_cache(maxsize=8)
def _first_plan_templates(week_starts: tuple[date, ...]) -> tuple[bytes, bytes]:
    """A first plan's changes over these weeks, spelled out (`orjson.dumps(week_changes(None, plan))`) and stored
    (`encode_stored_changes(changed_weeks(None, plan))`), as two `%`-templates with a `%b` where each `after`
    number goes, in the same order (week by week, field by field): shared by every first plan of a horizon."""
    spelled = []
    stored = []
    for week_start in week_starts:
        for name in COMPARED_FIELDS:
            change = orjson.dumps({"week_start": week_start, "field": name, "before": None, "after": 0})
            spelled.append(change[: -len(b"0}")].replace(b"%", b"%%") + b"%b}")
        week = orjson.dumps([week_start, None, None, []])[: -len(b"]]")].replace(b"%", b"%%")
        stored.append(week + b",".join([b"%b"] * len(COMPARED_FIELDS)) + b"]]")
    return (
        b"[" + b",".join(spelled) + b"]",
        encode_stored_changes([])[: -len(b"]}")] + b",".join(stored) + b"]}",
    )


@runtime_checkable
class EncodingPublisher(Protocol):
    """A publisher whose unit of work takes events already encoded: the store writes them to the outbox in
    the unit's transaction (`Store.save_encoded_events`, one statement for a chunk) and the unit wakes the
    relay when it commits. `source` and `traceparent` are the envelope's, as the unit of work sets them."""

    context: dict[str, Any]
    source: str
    traceparent: str | None
    max_event_bytes: int | None

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent: ...

    def wrote_encoded_events(self) -> None: ...


def mps_revised_data(sku: str, plan_version: int, changed_weeks: Any, drivers: Sequence[str]) -> dict[str, Any]:
    """`salesops.mps.revised.v1`'s data as `MpsRevisedData` dumps it (same fields, same order);
    `changed_weeks` is the list of `week_changes` or its JSON as an `orjson.Fragment`."""
    return {
        "sku": sku,
        "plan_version": plan_version,
        "changed_weeks": changed_weeks,
        "driver_event_ids": list(drivers[:MAX_EVENT_DRIVERS]),
    }


def encode_event(
    event_type: EventType, subject: str, data: dict[str, Any], unit: EncodingPublisher, *, time: datetime
) -> EncodedEvent:
    """The event as `new_event(...).to_json()` writes it, byte for byte (the envelope's fields in its order,
    none of them null), keyed by its subject."""
    event_id = str(uuid.uuid4())
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": unit.source,
        "type": event_type.value,
        "time": time,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    if unit.traceparent is not None:
        envelope["traceparent"] = unit.traceparent
    payload = orjson.dumps(envelope, option=orjson.OPT_UTC_Z)
    return EncodedEvent(event_id, event_type.value, topic_of(event_type).value, subject, payload)


_CHANGED_WEEKS = b',"changed_weeks":'


def around_revision(event: EncodedEvent, plan_version: int, changes: bytes, max_bytes: int | None) -> RevisionEvent:
    """An encoded `mps.revised` whose `changed_weeks` are `changes`, the revision's stored changes, as the JSON
    before and after them (`Store.save_revision_events`); measured whole first, as the producer will measure it.
    The first `,"changed_weeks":` of the payload is the data's: inside a JSON string every quote is escaped."""
    if max_bytes is not None:
        check_size(event, max_bytes)
    payload = event.payload
    start = payload.index(_CHANGED_WEEKS) + len(_CHANGED_WEEKS)
    end = start + len(changes)
    if not payload.startswith(changes, start):
        raise ValueError(f"the event of {event.key} does not carry its revision's changes")
    return RevisionEvent(
        event.event_id,
        event.event_type,
        event.topic,
        event.key,
        event.key,
        plan_version,
        payload[:start],
        payload[end:],
    )


def conflict_data(conflict: CapacityConflict, plan_version: int | None) -> CapacityConflictData:
    return CapacityConflictData(
        sku=conflict.sku,
        promotion_ids=list(conflict.promotion_ids),
        weeks=[ShortfallWeekData(week_start=w, shortfall=s) for w, s in conflict.weeks],
        total_shortfall=conflict.total_shortfall,
        plan_version=plan_version,
    )


def _publish_resolved(publisher: Publisher, sku: str, promotion_ids: Sequence[str], version: int) -> None:
    publisher.publish(
        EventType.CAPACITY_CONFLICT_RESOLVED,
        key=sku,
        subject=sku,
        data=CapacityConflictData(sku=sku, promotion_ids=list(promotion_ids), plan_version=version),
    )


async def _sync_conflicts(
    store: Store, publisher: Publisher, plans: Sequence[SkuPlan], versions: Mapping[str, int], now: datetime
) -> tuple[list[str], list[str]]:
    """Announce each SKU's conflict change (`conflict_change`) and keep the stored conflict in step."""
    open_conflicts = await store.open_conflicts([p.sku for p in plans])
    detected: list[str] = []
    resolved: list[str] = []
    for plan in plans:
        change = conflict_change(open_conflicts.get(plan.sku), plan.conflicts[0] if plan.conflicts else None)
        version = versions[plan.sku]
        if change.resolved is not None:
            await store.delete_conflict(plan.sku)
            _publish_resolved(publisher, plan.sku, change.resolved.promotion_ids, version)
            resolved.append(plan.sku)
        if change.detected is not None:
            await store.save_conflict(change.detected, plan_version=version, detected_at=now)
            publisher.publish(
                EventType.CAPACITY_CONFLICT_DETECTED,
                key=plan.sku,
                subject=plan.sku,
                data=conflict_data(change.detected, version),
            )
            detected.append(plan.sku)
            if change.dropped:
                _publish_resolved(publisher, plan.sku, change.dropped, version)
    return detected, resolved
