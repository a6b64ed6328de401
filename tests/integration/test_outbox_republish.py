"""The outbox as the durable log on one machine: a broker that comes back without its log (the embedded one keeps
it in memory) gets every row still in the outbox again, in order and before newer rows."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import pytest

from salesops.infra import EmbeddedBroker
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from shared.events import Topic
from shared.settings import Settings
from tests.integration.test_promotion_flow import promotion_body
from tests.support import bearer, eventually, read_topic, running

pytestmark = pytest.mark.integration


def republished(metrics_text: str) -> float:
    match = re.search(r'^salesops_outbox_republished_total{service="promotion"} ([0-9.e+]+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_broker_that_comes_back_empty_gets_the_outbox_again_before_newer_events(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    settings.relay_republish_on_new_broker = True
    headers = bearer(api_keys["marketing"])
    before = [f"BEFORE-{i}" for i in range(5)]
    async with running(build_promotion(settings)) as promotion:
        for promotion_id in before:
            assert (
                await promotion.post("/v1/promotions", json=promotion_body(promotion_id), headers=headers)
            ).is_success

        async def all_published() -> bool:
            return await db.fetchval("select count(*) from promotion.outbox where published_at is null") == 0

        await eventually(all_published, message="the outbox was never published")
        first_cluster = await db.fetchval("select broker_cluster_id from promotion.outbox_relay")
        assert first_cluster

        broker.stop(grace_s=0.1)
        broker.start()  # same address, a new cluster id, nothing in it

        async def again() -> bool:
            return republished((await promotion.get("/metrics")).text) == len(before)

        await eventually(again, timeout=30, message="the relay never published the outbox again")
        assert await db.fetchval("select broker_cluster_id from promotion.outbox_relay") not in (None, first_cluster)
        after = await promotion.post("/v1/promotions", json=promotion_body("AFTER"), headers=headers)
        assert after.status_code == 201
        messages = await read_topic(broker.bootstrap_servers, Topic.PROMOTIONS.value, expect=len(before) + 1)
        # Every promotion here has the same SKU, so one partition holds them all, in the order they reached it.
        assert [json.loads(m.value)["subject"] for m in messages] == [*before, "AFTER"]

        # A consumer that had read nothing of the lost broker gets everything from the new one.
        async with running(build_planning(settings)):

            async def planning_knows_all() -> bool:
                return await db.fetchval("select count(*) from planning.promotions") == len(before) + 1

            await eventually(planning_knows_all, timeout=40, message="planning did not receive the republished events")


async def test_republishing_is_off_unless_configured_and_keeps_no_bookkeeping(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    assert settings.relay_republish_on_new_broker is False, "republishing is for the embedded broker only"
    async with running(build_promotion(settings)) as promotion:
        assert (
            await promotion.post("/v1/promotions", json=promotion_body(), headers=bearer(api_keys["admin"]))
        ).is_success

        async def published() -> bool:
            return await db.fetchval("select count(*) from promotion.outbox where published_at is not null") == 1

        await eventually(published)
        assert await db.fetchval("select count(*) from promotion.outbox_relay") == 0


async def test_published_rows_are_purged_by_age_however_recently_they_were_published_again(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection
) -> None:
    async def row(event_id: str, created_days_ago: int, *, published: bool, parked: bool = False) -> None:
        await db.execute(
            "insert into promotion.outbox (event_id, event_type, topic, key, payload, created_at, published_at,"
            " parked_at) values ($1, 'salesops.promotion.planned.v1', 'salesops.promotions', 'K', '{}',"
            " now() - make_interval(days => $2), case when $3 then now() end, case when $4 then now() end)",
            event_id,
            created_days_ago,
            published,
            parked,
        )

    await row("old, published again just now", settings.relay_retention_days + 1, published=True)
    await row("old, parked", settings.relay_retention_days + 1, published=False, parked=True)
    await row("recent", 1, published=True)
    async with running(build_promotion(settings)):

        async def purged() -> bool:
            return await db.fetchval("select count(*) from promotion.outbox") == 2

        await eventually(purged, message="the relay never purged the old published row")
    kept = {r["event_id"] for r in await db.fetch("select event_id from promotion.outbox")}
    assert kept == {"old, parked", "recent"}
