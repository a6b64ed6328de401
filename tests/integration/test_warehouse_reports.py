"""Warehouse reports as events: stored like HTTP reports; poison goes to the dead-letter topic."""

from __future__ import annotations

import json

import pytest

from services.fulfillment_service.app import build_app
from shared.events import EventType, OrderVolumeReportData, Topic, new_event
from tests.integration.test_order_volumes import DAY, line, report
from tests.support import eventually, produce, read_topic, read_topic_to_end, running

pytestmark = pytest.mark.asyncio
TOPIC = Topic.WAREHOUSE_REPORTS.value
DLQ = f"{TOPIC}.dlq"


def report_event(body: dict[str, object]) -> bytes:
    data = OrderVolumeReportData.model_validate(body)
    return new_event(EventType.ORDER_VOLUME_REPORT, source="wms/dc-east", subject="DC-EAST", data=data).to_json()


async def test_valid_reports_are_stored_and_announced_once(settings, broker, db):
    bootstrap = broker.bootstrap_servers
    async with running(build_app(settings)):
        raw = report_event(report(line("SKU-1", DAY, 120), line("SKU-2", DAY, 7)))
        await produce(bootstrap, TOPIC, raw, key=b"DC-EAST")
        await produce(bootstrap, TOPIC, raw, key=b"DC-EAST")  # redelivery: the inbox skips it
        # A later report on the same partition: once it is stored, the redelivery before it was handled.
        await produce(bootstrap, TOPIC, report_event(report(line("SKU-LAST", DAY, 1))), key=b"DC-EAST")

        async def stored() -> int:
            return int(await db.fetchval("select count(*) from fulfillment.volumes") or 0)

        await eventually(lambda: _equals(stored(), 3))
    # Read after the shutdown drained the outbox: every event announced, a duplicate included.
    messages = await read_topic_to_end(bootstrap, Topic.ORDER_VOLUMES.value)
    events = sorted((m.key, json.loads(m.value)["type"]) for m in messages)
    assert events == [
        (b"SKU-1", EventType.ORDER_VOLUME_REPORTED.value),
        (b"SKU-2", EventType.ORDER_VOLUME_REPORTED.value),
        (b"SKU-LAST", EventType.ORDER_VOLUME_REPORTED.value),
    ]


async def test_a_consumed_report_wakes_the_relay_rather_than_waiting_for_its_poll(settings, broker, db):
    # A poll far longer than the test may wait: the report's events can only go out because its commit woke the
    # relay (its first pass, at start, found the outbox empty).
    settings.relay_poll_interval_s = 600
    bootstrap = broker.bootstrap_servers
    async with running(build_app(settings)):
        await produce(bootstrap, TOPIC, report_event(report(line("SKU-WAKE", DAY, 40))), key=b"DC-EAST")
        messages = await read_topic(bootstrap, Topic.ORDER_VOLUMES.value, expect=1, timeout=20)
    assert [(m.key, json.loads(m.value)["type"]) for m in messages] == [
        (b"SKU-WAKE", EventType.ORDER_VOLUME_REPORTED.value)
    ]
    assert await db.fetchval("select count(*) from fulfillment.outbox where published_at is null") == 0


async def test_invalid_reports_go_to_the_dead_letter_topic(settings, broker, db):
    bootstrap = broker.bootstrap_servers
    long_sku = report(line("S" * 150, DAY, 1))  # valid for the event model, too long for the service
    cases = [
        (b"not json", b"not-json"),
        (json.dumps({"hello": "world"}).encode(), b"not-cloudevents"),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "x1",
                    "source": "wms",
                    "type": EventType.ORDER_VOLUME_REPORT.value,
                    "data": {"warehouse_id": "DC", "lines": []},
                }
            ).encode(),
            b"invalid-data",
        ),
        (report_event(long_sku), b"invalid-data"),
    ]
    async with running(build_app(settings)):
        for raw, _ in cases:
            await produce(bootstrap, TOPIC, raw, key=b"DC-EAST")
        # A valid report after the poison ones is still processed: the consumer carries on.
        await produce(bootstrap, TOPIC, report_event(report(line("SKU-OK", DAY, 3))), key=b"DC-EAST")

        async def ok_stored() -> int:
            return int(await db.fetchval("select count(*) from fulfillment.volumes where sku='SKU-OK'") or 0)

        await eventually(ok_stored)
    dead = await read_topic_to_end(bootstrap, DLQ)
    assert [dict(m.headers)["dlq-reason"] for m in dead] == [reason for _, reason in cases]
    assert [m.value for m in dead] == [raw for raw, _ in cases]
    assert b"lines.0.sku" in dict(dead[-1].headers)["dlq-detail"]
    assert await db.fetchval("select count(*) from fulfillment.volumes") == 1


async def _equals(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]
