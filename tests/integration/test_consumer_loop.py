"""The shared consumer loop against the real broker and database: transient failures are retried, bugs end
in the dead-letter topic after a bounded number of attempts, and the partition keeps moving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.planning_service import tables
from shared.events import CloudEvent, EventType, PromotionData, Topic, new_event
from shared.kafka import Subscription
from shared.service import ServiceSpec, build_runtime
from tests.support import eventually, produce, read_topic

pytestmark = pytest.mark.integration


def planned(promotion_id: str) -> CloudEvent:
    data = PromotionData.model_validate(
        {
            "promotion_id": promotion_id,
            "name": promotion_id,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-02",
            "items": [{"sku": "SKU-1", "uplift_pct": 10}],
        }
    )
    return new_event(EventType.PROMOTION_PLANNED, source="test", subject=promotion_id, data=data)


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

    runtime, consumer, task = await run_consumer(settings, flaky, [planned("FLAKY"), planned("AFTER")], broker)
    try:
        await eventually(lambda: _async(calls.get("AFTER") == 1), message="the next event was never handled")
    finally:
        await stop(runtime, consumer, task)
    assert calls["FLAKY"] == 4, "three transient failures, then success"
    assert await db.fetchval("select count(*) from planning.inbox where consumer = 'loop-test'") == 2
    assert await read_topic(broker.bootstrap_servers, "salesops.promotions.dlq", expect=1, timeout=1) == []


async def test_a_handler_that_always_fails_is_dead_lettered_after_bounded_attempts(settings, broker, db):
    settings.consumer_max_attempts = 3
    calls: dict[str, int] = {}

    async def buggy(uow, event, data):
        calls[data.promotion_id] = calls.get(data.promotion_id, 0) + 1
        if data.promotion_id == "BUG":
            raise ZeroDivisionError("a bug, not an outage")

    runtime, consumer, task = await run_consumer(settings, buggy, [planned("BUG"), planned("NEXT")], broker)
    try:
        await eventually(lambda: _async(calls.get("NEXT") == 1), message="the partition got stuck behind the bug")
    finally:
        await stop(runtime, consumer, task)
    assert calls["BUG"] == 3
    [dead] = await read_topic(broker.bootstrap_servers, "salesops.promotions.dlq", expect=1)
    headers = dict(dead.headers)
    assert headers["dlq-reason"] == b"handler-error"
    assert b"ZeroDivisionError" in headers["dlq-detail"]
    # Only the event that succeeded is in the inbox: the failed one rolled back every time.
    assert await db.fetchval("select count(*) from planning.inbox where consumer = 'loop-test'") == 1


async def _async(value: bool) -> bool:
    return value
