"""The shared consumer loop against the real broker and database: transient failures are retried, bugs end
in the dead-letter topic after a bounded number of attempts, and the partition keeps moving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.planning_service import tables
from shared.events import CloudEvent, EventType, InvalidEvent, Topic
from shared.kafka import Subscription
from shared.service import ServiceSpec, build_runtime
from tests.consumer_events import planned_promotion
from tests.support import eventually, produce, read_topic_to_end

pytestmark = pytest.mark.integration


async def run_consumer(settings: Any, handler: Any, events: list[CloudEvent], broker: Any) -> Any:
    spec = ServiceSpec(
        name="planning",
        metadata=tables.metadata,
        routers=[],
        subscriptions=[
            Subscription("loop-test", (Topic.PROMOTIONS.value,), {EventType.PROMOTION_PLANNED.value: handler})
        ],
    )
    runtime = build_runtime(spec, settings)
    [consumer] = runtime.consumers
    task = asyncio.create_task(consumer.run())
    for event in events:
        await produce(broker.bootstrap_servers, Topic.PROMOTIONS.value, event.to_json(), key=b"SKU-1")
    return runtime, consumer, task


async def stop(runtime: Any, consumer: Any, task: asyncio.Task[None]) -> None:
    consumer.stop()
    await asyncio.wait_for(task, timeout=15)
    await runtime.producer.stop()
    await runtime.engine.dispose()


async def test_transient_failures_are_retried_until_the_handler_succeeds(settings, broker, db):
    calls: dict[str, int] = {}

    async def flaky(uow, event, data):
        calls[data.promotion_id] = calls.get(data.promotion_id, 0) + 1
        if data.promotion_id == "FLAKY" and calls["FLAKY"] <= 3:
            raise OperationalError("select 1", {}, ConnectionRefusedError("database restarting"))

    runtime, consumer, task = await run_consumer(
        settings, flaky, [planned_promotion("FLAKY"), planned_promotion("AFTER")], broker
    )
    try:
        await eventually(lambda: _async(calls.get("AFTER") == 1), message="the next event was never handled")
    finally:
        await stop(runtime, consumer, task)
    assert calls["FLAKY"] == 4, "three transient failures, then success"
    assert await db.fetchval("select count(*) from planning.inbox where consumer = 'loop-test'") == 2
    assert await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions.dlq") == []


async def test_a_handler_that_always_fails_is_dead_lettered_after_bounded_attempts(settings, broker, db):
    settings.consumer_max_attempts = 3
    calls: dict[str, int] = {}

    async def buggy(uow, event, data):
        calls[data.promotion_id] = calls.get(data.promotion_id, 0) + 1
        if data.promotion_id == "BUG":
            raise ZeroDivisionError("a bug, not an outage")

    runtime, consumer, task = await run_consumer(
        settings, buggy, [planned_promotion("BUG"), planned_promotion("NEXT")], broker
    )
    try:
        await eventually(lambda: _async(calls.get("NEXT") == 1), message="the partition got stuck behind the bug")
    finally:
        await stop(runtime, consumer, task)
    assert calls["BUG"] == 3
    [dead] = await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions.dlq")
    headers = dict(dead.headers)
    assert headers["dlq-reason"] == b"handler-error"
    assert b"ZeroDivisionError" in headers["dlq-detail"]
    # Only the event that succeeded is in the inbox: the failed one rolled back every time.
    assert await db.fetchval("select count(*) from planning.inbox where consumer = 'loop-test'") == 1


async def _async(value: bool) -> bool:
    return value


async def test_a_batch_with_a_poison_event_falls_back_to_one_at_a_time_and_applies_the_rest_once(settings, broker, db):
    """The events are on the broker before the consumer starts, so they come in one fetch: handed over together
    (the batch handler's list), the poison one fails the batch; one at a time, it is dead-lettered and the others
    are applied once each, the copy of an event in the same batch skipped."""
    good, poison, other = planned_promotion("GOOD"), planned_promotion("POISON"), planned_promotion("OTHER")
    for event in (good, poison, other, good):
        await produce(broker.bootstrap_servers, Topic.PROMOTIONS.value, event.to_json(), key=b"SKU-1")
    handed_over: list[list[str]] = []
    finished: list[str] = []

    async def together(uow, events):
        handed_over.append([data.promotion_id for _, data in events])
        if any(data.promotion_id == "POISON" for _, data in events):
            raise InvalidEvent("invalid-data", "data.promotion_id: POISON")
        uow.context.setdefault("seen", []).extend(data.promotion_id for _, data in events)

    async def finish(uow):
        finished.extend(uow.context.pop("seen", []))

    subscription = Subscription(
        "batch-test",
        (Topic.PROMOTIONS.value,),
        finish=finish,
        batch_handlers={EventType.PROMOTION_PLANNED.value: together},
    )
    spec = ServiceSpec(name="planning", metadata=tables.metadata, routers=[], subscriptions=[subscription])
    runtime = build_runtime(spec, settings)
    [consumer] = runtime.consumers
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _async("OTHER" in finished), message="the events after the poison were never handled")
    finally:
        await stop(runtime, consumer, task)
    dead = await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions.dlq")
    assert handed_over[0] == ["GOOD", "POISON", "OTHER"], "one fetch, handed over together; the copy of GOOD left out"
    assert sorted(finished) == ["GOOD", "OTHER"], "each applied once, after the batch fell back to one at a time"
    assert [dict(m.headers)["dlq-reason"] for m in dead] == [b"invalid-data"]
    claimed = await db.fetch("select event_id from planning.inbox where consumer = 'batch-test'")
    assert sorted(r["event_id"] for r in claimed) == sorted([good.id, other.id])
