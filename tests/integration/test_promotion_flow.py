"""The first flow across the system: a promotion posted, stored, published through the outbox and applied
by planning exactly once in effect, with bad input, duplicates and poison messages along the way."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from shared.events import CLOUDEVENTS_CONTENT_TYPE, EventType, PromotionData, new_event
from tests.support import bearer, eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.integration


def promotion_body(promotion_id: str = "BF-2026", **overrides: Any) -> dict[str, Any]:
    body = {
        "promotion_id": promotion_id,
        "name": "Black Friday",
        "starts_on": "2026-11-27",
        "ends_on": "2026-11-30",
        "items": [{"sku": "SKU-1", "uplift_pct": 50}],
        "post_promo_dip_pct": 20,
        "post_promo_dip_weeks": 2,
        "cannibalized": [{"sku": "SKU-2", "pct": 10}],
        "channel": "retail",
        "regions": ["EU"],
        "account_segments": ["strategic"],
    }
    body.update(overrides)
    return body


async def test_promotion_reaches_planning_once(settings, broker, db, api_keys):
    async with running(build_promotion(settings)) as promotion, running(build_planning(settings)) as planning:
        created = await promotion.post("/v1/promotions", json=promotion_body(), headers=bearer(api_keys["marketing"]))
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/v1/promotions/BF-2026"
        assert created.json()["status"] == "planned"

        fetched = await promotion.get("/v1/promotions/BF-2026", headers=bearer(api_keys["marketing"]))
        assert fetched.json() == {k: v for k, v in created.json().items() if k != "warnings"}

        async def driver_recorded() -> list[dict[str, Any]]:
            response = await planning.get("/v1/drivers?sku=SKU-1", headers=bearer(api_keys["planner"]))
            return response.json()["data"]

        drivers = await eventually(driver_recorded, message="planning never recorded the promotion")
        assert [d["summary"] for d in drivers] == ["BF-2026 +50% on SKU-1"]
        assert drivers[0]["skus"] == ["SKU-1", "SKU-2"]
        known = await planning.get("/v1/inputs/promotions/BF-2026", headers=bearer(api_keys["planner"]))
        assert known.json()["status"] == "planned"

    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions")
    assert len(messages) == 1
    envelope = json.loads(messages[0].value)
    assert envelope["specversion"] == "1.0"
    assert envelope["type"] == "salesops.promotion.planned.v1"
    assert envelope["source"] == "salesops/promotion-service"
    assert envelope["subject"] == "BF-2026"
    assert envelope["data"]["items"] == [{"sku": "SKU-1", "uplift_pct": 50.0}]
    assert messages[0].key == b"SKU-1"
    assert dict(messages[0].headers)["content-type"] == CLOUDEVENTS_CONTENT_TYPE.encode()
    assert await db.fetchval("select count(*) from planning.inbox") == 1


async def test_identical_retry_is_one_row_one_event_and_a_different_body_conflicts(settings, broker, db, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_promotion(settings)) as promotion:
        first = await promotion.post("/v1/promotions", json=promotion_body(), headers=headers)
        retry = await promotion.post("/v1/promotions", json=promotion_body(), headers=headers)
        different = await promotion.post("/v1/promotions", json=promotion_body(name="Cyber Monday"), headers=headers)
        await eventually(lambda: _published_count(db, "promotion"), message="the event was never published")

    assert (first.status_code, retry.status_code, different.status_code) == (201, 200, 409)
    assert retry.json() == first.json()
    assert different.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("select count(*) from promotion.promotions") == 1
    assert await db.fetchval("select count(*) from promotion.outbox") == 1
    assert len(await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions")) == 1


async def _published_count(db, schema: str) -> int:
    return await db.fetchval(f"select count(*) from {schema}.outbox where published_at is not null")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (promotion_body(ends_on="2026-11-20"), "ends_on"),
        ({k: v for k, v in promotion_body().items() if k != "name"}, "name"),
        (promotion_body(starts_on="next friday"), "starts_on"),
        (promotion_body(items=[]), "items"),
        (promotion_body(items=[{"sku": "SKU-1", "uplift_pct": -100}]), "items.0.uplift_pct"),
        (promotion_body(items=[{"sku": "SKU-1", "uplift_pct": "lots"}]), "items.0.uplift_pct"),
        (promotion_body(items=[{"sku": "A", "uplift_pct": 5}, {"sku": "A", "uplift_pct": 9}]), "items.1.sku"),
        (promotion_body(post_promo_dip_weeks="two"), "post_promo_dip_weeks"),
        (promotion_body(unknown_field=1), "unknown_field"),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_nothing_is_stored(settings, db, api_keys, body, field):
    async with running(build_promotion(settings)) as promotion:
        response = await promotion.post("/v1/promotions", json=body, headers=bearer(api_keys["marketing"]))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert await db.fetchval("select count(*) from promotion.promotions") == 0
    assert await db.fetchval("select count(*) from promotion.outbox") == 0


async def test_malformed_json_is_422_on_the_body(settings, db, api_keys):
    async with running(build_promotion(settings)) as promotion:
        response = await promotion.post(
            "/v1/promotions",
            content=b'{"promotion_id": "X", ',
            headers={**bearer(api_keys["marketing"]), "content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    assert await db.fetchval("select count(*) from promotion.outbox") == 0


@pytest.mark.parametrize(
    ("key_name", "status"), [(None, 401), ("wrong", 401), ("revoked", 401), ("warehouse", 403), ("crm", 403)]
)
async def test_access_needs_a_valid_key_with_the_scope(settings, db, api_keys, key_name, status):
    headers = {} if key_name is None else bearer(api_keys.get(key_name, "sk_not_a_key_at_all_0000"))
    async with running(build_promotion(settings)) as promotion:
        response = await promotion.post("/v1/promotions", json=promotion_body(), headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert await db.fetchval("select count(*) from promotion.promotions") == 0


async def test_a_duplicate_event_changes_planning_once(settings, broker, db, api_keys):
    promotion = PromotionData.model_validate(promotion_body())
    event = new_event(EventType.PROMOTION_PLANNED, source="test", subject="BF-2026", data=promotion)
    async with running(build_planning(settings)) as planning:
        for _ in range(2):
            await produce(broker.bootstrap_servers, "salesops.promotions", event.to_json(), key=b"SKU-1")
        marker = new_event(
            EventType.PROMOTION_PLANNED,
            source="test",
            subject="M",
            data=PromotionData.model_validate(promotion_body("M")),
        )
        await produce(broker.bootstrap_servers, "salesops.promotions", marker.to_json(), key=b"SKU-1")

        async def marker_seen() -> bool:
            response = await planning.get("/v1/inputs/promotions/M", headers=bearer(api_keys["planner"]))
            return response.status_code == 200

        await eventually(marker_seen)
    assert await db.fetchval("select count(*) from planning.drivers where subject = 'BF-2026'") == 1
    assert await db.fetchval("select count(*) from planning.inbox") == 2


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(settings, broker, db, api_keys):
    bootstrap = broker.bootstrap_servers
    unknown = new_event(
        EventType.PROMOTION_PLANNED,
        source="test",
        subject="U",
        data=PromotionData.model_validate(promotion_body("U")),
    )
    unknown_type = json.loads(unknown.to_json()) | {"type": "salesops.promotion.exploded.v9"}
    bad_data = json.loads(unknown.to_json()) | {"id": str(uuid.uuid4()), "data": {"promotion_id": "B"}}
    good = new_event(
        EventType.PROMOTION_PLANNED,
        source="test",
        subject="GOOD",
        data=PromotionData.model_validate(promotion_body("GOOD")),
    )
    async with running(build_planning(settings)) as planning:
        await produce(bootstrap, "salesops.promotions", b"this is not json", key=b"SKU-1")
        await produce(bootstrap, "salesops.promotions", b'{"hello": "world"}', key=b"SKU-1")
        await produce(bootstrap, "salesops.promotions", json.dumps(unknown_type).encode(), key=b"SKU-1")
        await produce(bootstrap, "salesops.promotions", json.dumps(bad_data).encode(), key=b"SKU-1")
        await produce(bootstrap, "salesops.promotions", good.to_json(), key=b"SKU-1")

        async def good_applied() -> bool:
            response = await planning.get("/v1/inputs/promotions/GOOD", headers=bearer(api_keys["planner"]))
            return response.status_code == 200

        await eventually(good_applied, message="the consumer did not go on after the poison messages")

    dead = await read_topic_to_end(bootstrap, "salesops.promotions.dlq")
    reasons = [dict(m.headers)["dlq-reason"].decode() for m in dead]
    assert sorted(reasons) == sorted(["not-json", "not-cloudevents", "unknown-type", "invalid-data"])
    first = dict(dead[0].headers)
    assert dead[0].value == b"this is not json"
    assert first["dlq-original-topic"] == b"salesops.promotions"
    assert first["dlq-consumer"] == b"planning-service"
    assert await db.fetchval("select count(*) from planning.promotions") == 1


async def test_promotions_posted_while_the_broker_is_down_all_reach_planning(settings, broker, db, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_promotion(settings)) as promotion:
        broker.stop()
        ids = [f"OUTAGE-{i}" for i in range(10)]
        for promotion_id in ids:
            response = await promotion.post("/v1/promotions", json=promotion_body(promotion_id), headers=headers)
            assert response.status_code == 201
        ready = await promotion.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "broker": "unreachable", "outbox": "ok"}
        assert await db.fetchval("select count(*) from promotion.outbox where published_at is null") == 10

        broker.start()  # same address; the in-memory broker comes back empty
        async with running(build_planning(settings)) as planning:

            async def all_known() -> bool:
                count = await db.fetchval("select count(*) from planning.promotions")
                return count == len(ids)

            await eventually(all_known, timeout=40, message="not every promotion reached planning")
            assert (await planning.get("/readyz")).status_code == 200
    assert await db.fetchval("select count(*) from planning.drivers") == len(ids)
