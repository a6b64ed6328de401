"""Bounded requests on the real database and broker: the largest accepted report or promotion yields only
events far below the broker's message limit, all of them published; a list beyond its bound is a 422 naming it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from services.fulfillment_service.app import build_app as fulfillment_app
from services.promotion_service.app import build_app as promotion_app
from shared.events import MAX_REPORTED_DAYS, EventType, Topic
from shared.settings import Settings
from tests.limits import EVENT_BUDGET, largest_promotion, widest_sku
from tests.support import bearer, eventually, read_topic_to_end, running

MAX_UNITS = 2_000_000_000


async def unpublished(db: Any, schema: str) -> int:
    return int(await db.fetchval(f"select count(*) from {schema}.outbox where published_at is null"))


async def test_a_report_of_ten_thousand_days_of_the_longest_sku_is_announced_in_events_within_budget(
    settings: Settings, api_keys: dict[str, Any], db: Any, broker: Any
) -> None:
    sku = widest_sku(1)
    first = date(2000, 1, 1)
    lines = [
        {
            "sku": sku,
            "day": (first + timedelta(days=i)).isoformat(),
            "units_ordered": MAX_UNITS,
            "units_shipped": MAX_UNITS,
            "units_backordered": MAX_UNITS,
        }
        for i in range(10_000)
    ]
    async with running(fulfillment_app(settings)) as client:
        for warehouse in ("DC-1", "DC-2"):  # daily totals sum the warehouses: more digits than any one line
            answer = await client.post(
                "/v1/order-volumes",
                json={"warehouse_id": warehouse, "lines": lines},
                headers=bearer(api_keys["warehouse"]),
            )
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"accepted": 10_000, "changed": 10_000}
        sizes = await db.fetch(
            "select length(payload) as size from fulfillment.outbox where event_type = $1",
            EventType.ORDER_VOLUME_REPORTED.value,
        )
        assert len(sizes) == 2 * 10_000 // MAX_REPORTED_DAYS
        assert max(r["size"] for r in sizes) < EVENT_BUDGET
        largest = await db.fetchval("select max(length(payload)) from fulfillment.outbox")
        assert largest < EVENT_BUDGET
        await eventually(lambda: _none_left(db, "fulfillment"), timeout=60, message="events stayed unpublished")
    messages = await read_topic_to_end(broker.bootstrap_servers, Topic.ORDER_VOLUMES.value, timeout=30)
    types = [json.loads(m.value)["type"] for m in messages]
    assert types.count(EventType.ORDER_VOLUME_REPORTED.value) == len(sizes)


async def _none_left(db: Any, schema: str) -> bool:
    return await unpublished(db, schema) == 0


async def test_the_largest_promotion_is_published_and_one_beyond_a_bound_is_refused_naming_the_list(
    settings: Settings, api_keys: dict[str, Any], db: Any
) -> None:
    marketing = bearer(api_keys["marketing"])
    async with running(promotion_app(settings)) as client:
        too_many = {**largest_promotion(), "promotion_id": "REGIONS", "regions": [f"R{i}" for i in range(25_000)]}
        refused = await client.post("/v1/promotions", json=too_many, headers=marketing)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["regions"]

        created = await client.post("/v1/promotions", json=largest_promotion(), headers=marketing)
        assert created.status_code == 201, created.text
        size = await db.fetchval("select max(length(payload)) from promotion.outbox")
        assert 0 < size < EVENT_BUDGET
        await eventually(lambda: _none_left(db, "promotion"), timeout=60, message="the promotion stayed unpublished")
