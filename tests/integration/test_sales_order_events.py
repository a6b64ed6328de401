"""Sales-order events through the real outbox and broker: each change published once, keyed by order id, with
versions growing by one; the accounts consumer survives duplicates, late older versions and poison, and the
tier it keeps is stamped on the next order's events."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.fulfillment_service.app import build_app
from services.fulfillment_service.settings import FulfillmentSettings
from shared.events import (
    AccountChangedData,
    CloudEvent,
    EventType,
    SalesOrderData,
    ShipmentRecordedData,
    Topic,
    new_event,
    parse_data,
)
from tests.integration.test_sales_orders_api import an_order
from tests.support import bearer, eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.asyncio

ORDERS = Topic.ORDERS.value
ACCOUNTS = Topic.ACCOUNTS.value


def pinned(settings: Any) -> FulfillmentSettings:
    return FulfillmentSettings(**settings.model_dump(), clock_today=date(2026, 12, 10))


def account_event(account_id: str, segment: str, version: int) -> CloudEvent:
    data = AccountChangedData(
        account_id=account_id,
        name=f"Account {account_id}",
        segment=segment,  # type: ignore[arg-type]
        owner_email="owner@example.com",
        version=version,
        changed_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return new_event(EventType.ACCOUNT_CHANGED, source="salesops/returns", subject=account_id, data=data)


async def all_published(db: Any) -> bool:
    unpublished = await db.fetchval("select count(*) from fulfillment.outbox where published_at is null")
    return unpublished == 0


async def test_each_order_change_is_published_once_with_growing_versions(settings, broker, api_keys, db):
    crm = bearer(api_keys["crm"])
    drop = {"shipment_id": "SH-1", "shipped_on": "2026-12-10", "lines": [{"line_id": "1", "quantity": 60}]}
    async with running(build_app(pinned(settings))) as client:
        for _ in range(2):  # every write twice: a retry publishes nothing
            assert (await client.post("/v1/sales-orders", json=an_order(), headers=crm)).status_code in (200, 201)
        for _ in range(2):
            change = {"lines": [{"line_id": "2", "quantity": 25}]}
            assert (await client.patch("/v1/sales-orders/SO-1001", json=change, headers=crm)).status_code == 200
        for _ in range(2):
            shipped = await client.post("/v1/sales-orders/SO-1001/shipments", json=drop, headers=crm)
            assert shipped.status_code in (200, 201)
        for _ in range(2):
            assert (await client.post("/v1/sales-orders/SO-1001/cancel", headers=crm)).status_code == 200
        await eventually(lambda: all_published(db), message="the relay did not publish the outbox")
    # Read after the shutdown drained the outbox: every publication, an extra (duplicate) one included.
    messages = await read_topic_to_end(broker.bootstrap_servers, ORDERS)

    events = [CloudEvent.model_validate_json(m.value) for m in messages]
    assert [m.key for m in messages] == [b"SO-1001"] * 4  # one key: one partition, in order
    assert [(e.type, e.data["version"]) for e in events] == [
        (EventType.SALES_ORDER_BOOKED.value, 1),
        (EventType.SALES_ORDER_CHANGED.value, 2),
        (EventType.SHIPMENT_RECORDED.value, 3),
        (EventType.SALES_ORDER_CANCELLED.value, 4),
    ]
    assert {e.subject for e in events} == {"SO-1001"}
    datas = [parse_data(e, ORDERS) for e in events]
    assert all(isinstance(d, SalesOrderData) for d in datas)
    shipment = datas[2]
    assert isinstance(shipment, ShipmentRecordedData)
    assert (shipment.shipment.shipment_id, shipment.lines[0].shipped_quantity, shipment.lines[0].open_quantity) == (
        "SH-1",
        60,
        60,
    )
    assert [line.quantity for line in datas[1].lines] == [120, 25]
    assert [line.open_quantity for line in datas[3].lines] == [0, 0]
    assert len({d.booked_at for d in datas}) == 1


async def test_account_tiers_survive_duplicates_old_versions_and_poison_and_stamp_new_orders(
    settings, broker, api_keys, db
):
    bootstrap = broker.bootstrap_servers
    strategic_v2 = account_event("ACC-1", "strategic", 2)
    integrated_v3 = account_event("ACC-1", "integrated", 3)
    gold = json.loads(account_event("ACC-1", "stable", 4).to_json())
    gold["data"]["segment"] = "gold"
    long_id = account_event("A" * 101, "stable", 1)
    sentinel = account_event("ACC-9", "emerging", 1)
    poison = [
        (b"not json", b"not-json"),
        (json.dumps(gold).encode(), b"invalid-data"),
        (long_id.to_json(), b"invalid-data"),
    ]
    async with running(build_app(pinned(settings))) as client:
        for raw in (strategic_v2.to_json(), integrated_v3.to_json(), strategic_v2.to_json()):
            await produce(bootstrap, ACCOUNTS, raw, key=b"ACC-1")
        # The same older version again under a new event id: the inbox cannot catch it, the version must.
        await produce(bootstrap, ACCOUNTS, account_event("ACC-1", "strategic", 2).to_json(), key=b"ACC-1")
        for raw, _ in poison:
            await produce(bootstrap, ACCOUNTS, raw, key=b"ACC-1")
        # Same key, so the same partition: once the sentinel is in, everything before it was handled.
        await produce(bootstrap, ACCOUNTS, sentinel.to_json(), key=b"ACC-1")

        async def sentinel_kept() -> bool:
            return await db.fetchval("select segment from fulfillment.account_tiers where account_id = 'ACC-9'") == (
                "emerging"
            )

        await eventually(sentinel_kept, message="the accounts consumer did not reach the last event")
        rows = await db.fetch("select account_id, segment, version from fulfillment.account_tiers order by 1")

        crm = bearer(api_keys["crm"])
        booked = await client.post("/v1/sales-orders", json=an_order(), headers=crm)
        assert booked.status_code == 201
        assert booked.json()["tier"] == "integrated"
        listed = await client.get("/v1/sales-orders", params={"account_id": "ACC-1"}, headers=crm)
        assert listed.json()["data"][0]["tier"] == "integrated"
    dead = await read_topic_to_end(bootstrap, f"{ACCOUNTS}.dlq")
    messages = await read_topic_to_end(bootstrap, ORDERS)

    assert [tuple(row) for row in rows] == [("ACC-1", "integrated", 3), ("ACC-9", "emerging", 1)]
    assert [dict(m.headers)["dlq-reason"] for m in dead] == [reason for _, reason in poison]
    assert b"data.segment" in dict(dead[1].headers)["dlq-detail"]
    assert b"data.account_id" in dict(dead[2].headers)["dlq-detail"]
    inbox = await db.fetchval("select count(*) from fulfillment.inbox where event_id = $1", strategic_v2.id)
    assert inbox == 1
    [message] = messages
    assert json.loads(message.value)["data"]["tier"] == "integrated"
