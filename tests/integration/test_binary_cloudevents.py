"""Warehouse reports in CloudEvents binary mode (attributes in ce_* headers, the report alone in the value) through
the real broker: handled exactly like structured ones, deduplicated with them, and dead-lettered with the reason
when a header is missing or wrong."""

from __future__ import annotations

import json

import pytest

from services.fulfillment_service.app import build_app
from shared.events import EventType, Topic
from tests.integration.test_order_volumes import DAY, line, report
from tests.integration.test_warehouse_reports import report_event
from tests.support import eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.integration
TOPIC = Topic.WAREHOUSE_REPORTS.value
DLQ = f"{TOPIC}.dlq"


def binary(event_id: str, **overrides: bytes | None) -> list[tuple[str, bytes]]:
    headers: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": event_id.encode(),
        "ce_source": b"wms/dc-east",
        "ce_type": EventType.ORDER_VOLUME_REPORT.value.encode(),
        "ce_subject": b"DC-EAST",
        "ce_time": b"2026-11-20T18:00:00Z",
        "content-type": b"application/json",
        **overrides,
    }
    return [(name, value) for name, value in headers.items() if value is not None]


async def test_a_binary_mode_report_is_stored_and_announced_like_a_structured_one(settings, broker, db):
    bootstrap = broker.bootstrap_servers
    body = report(line("SKU-B", DAY, 40), line("SKU-S", DAY, 9))
    async with running(build_app(settings)) as client:
        await produce(bootstrap, TOPIC, json.dumps(body).encode(), key=b"DC-EAST", headers=binary("bin-1"))
        await produce(bootstrap, TOPIC, json.dumps(body).encode(), key=b"DC-EAST", headers=binary("bin-1"))
        await produce(bootstrap, TOPIC, report_event(report(line("SKU-Z", DAY, 3))), key=b"DC-EAST")

        async def stored() -> list[tuple[str, int]]:
            rows = await db.fetch("select sku, units_ordered from fulfillment.volumes order by sku")
            return [(r["sku"], r["units_ordered"]) for r in rows] if len(rows) == 3 else []

        assert await eventually(stored) == [("SKU-B", 40), ("SKU-S", 9), ("SKU-Z", 3)]
        metrics = (await client.get("/metrics")).text
    announced = await read_topic_to_end(bootstrap, Topic.ORDER_VOLUMES.value)
    assert sorted(m.key for m in announced) == [b"SKU-B", b"SKU-S", b"SKU-Z"], "the redelivered copy changed nothing"
    assert await db.fetchval("select count(*) from fulfillment.inbox where event_id = 'bin-1'") == 1
    assert 'outcome="duplicate"' in metrics


async def test_an_invalid_binary_mode_report_is_dead_lettered_with_the_reason(settings, broker, db):
    bootstrap = broker.bootstrap_servers
    valid = json.dumps(report(line("SKU-OK", DAY, 3))).encode()
    cases = [
        (binary("bad-1", ce_id=None), valid, b"not-cloudevents", b"ce_id"),
        (binary("bad-2", ce_time=b"last tuesday"), valid, b"not-cloudevents", b"ce_time"),
        (binary("bad-3"), b"{truncated", b"not-json", b"content-type"),
        (binary("bad-4", ce_type=b"salesops.order-volume.reported.v1"), valid, b"unknown-type", b"warehouse"),
        (binary("bad-5"), json.dumps({"warehouse_id": "DC", "lines": []}).encode(), b"invalid-data", b"data.lines"),
    ]
    async with running(build_app(settings)) as client:
        for headers, value, _, _ in cases:
            await produce(bootstrap, TOPIC, value, key=b"DC-EAST", headers=headers)
        await produce(bootstrap, TOPIC, valid, key=b"DC-EAST", headers=binary("good-1"))

        async def ok_stored() -> int:
            return int(await db.fetchval("select count(*) from fulfillment.volumes where sku = 'SKU-OK'") or 0)

        await eventually(ok_stored, message="the valid binary report after the poison ones was never stored")
        metrics = (await client.get("/metrics")).text
    dead = await read_topic_to_end(bootstrap, DLQ)
    assert [dict(m.headers)["dlq-reason"] for m in dead] == [reason for _, _, reason, _ in cases]
    for message, (headers, value, _, detail) in zip(dead, cases, strict=True):
        assert message.value == value, "the dead letter keeps the original value"
        assert detail in dict(message.headers)["dlq-detail"]
        assert [h for h in message.headers if h[0].startswith("ce_")] == [h for h in headers if h[0].startswith("ce_")]
    assert (
        'salesops_events_dead_lettered_total{consumer="fulfillment-service",'
        'reason="not-cloudevents",topic="salesops.warehouse-reports"} 2.0' in metrics
    )
