"""No accepted request yields an event the broker refuses (413 at write time, nothing stored), and a row the broker
refuses anyway is parked: later rows flow, the metric, the log and readiness show it, an operator retries or
drops it with `salesops outbox`."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from salesops.cli import app as cli
from services.fulfillment_service.app import build_app as build_fulfillment
from services.promotion_service.app import build_app as build_promotion
from shared.events import EventType, OrderVolumeReportData, Topic, dead_letter_topic, new_event
from shared.settings import Settings
from tests.integration.test_order_volumes import DAY, line, report
from tests.integration.test_promotion_flow import promotion_body
from tests.support import bearer, eventually, produce, read_topic, read_topic_to_end, running

pytestmark = pytest.mark.integration

SMALL_LIMIT = 4096
LONG_SKU = "SKU-" + "L" * 36


def many_items(count: int) -> list[dict[str, Any]]:
    return [{"sku": f"{LONG_SKU}-{i:04d}", "uplift_pct": 10} for i in range(count)]


def gauge(metrics_text: str, name: str, service: str) -> float:
    match = re.search(rf'^{name}{{service="{service}"}} ([0-9.e+]+)$', metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def counter_total(metrics_text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}{{[^}}]*}} ([0-9.e+]+)$", metrics_text, re.MULTILINE))


async def operator(database_url: str, *args: str) -> Any:
    """Run `salesops outbox ...` as an operator would (in a thread: the command runs its own event loop)."""
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["outbox", *args], env={"SALESOPS_DATABASE_URL": database_url}
    )
    return result


async def test_a_promotion_whose_event_would_be_too_large_gets_413_and_nothing_is_stored(
    settings: Settings, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    settings.kafka_max_request_bytes = SMALL_LIMIT
    headers = bearer(api_keys["marketing"])
    async with running(build_promotion(settings)) as client:
        response = await client.post(
            "/v1/promotions", json=promotion_body("HUGE", items=many_items(80)), headers=headers
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["event_type"] == EventType.PROMOTION_PLANNED.value
        assert problem["event_bytes"] > SMALL_LIMIT == problem["max_event_bytes"]
        assert "salesops.promotion.planned.v1" in problem["detail"] and "HUGE" in problem["detail"]
        assert problem["errors"][0]["field"] == "body"
        assert await db.fetchval("select count(*) from promotion.promotions") == 0
        assert await db.fetchval("select count(*) from promotion.outbox") == 0

        # Nothing was kept under that id: the same id with a body that fits is a plain create.
        fits = await client.post("/v1/promotions", json=promotion_body("HUGE"), headers=headers)
        assert fits.status_code == 201, fits.text
    assert await db.fetchval("select count(*) from promotion.outbox") == 1


async def test_an_order_volume_report_whose_event_would_be_too_large_gets_413_and_nothing_is_stored(
    settings: Settings, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    settings.kafka_max_request_bytes = SMALL_LIMIT
    days = [line(LONG_SKU, DAY - timedelta(days=i)) for i in range(120)]
    async with running(build_fulfillment(settings)) as client:
        response = await client.post("/v1/order-volumes", json=report(*days), headers=bearer(api_keys["warehouse"]))
    assert response.status_code == 413, response.text
    assert response.json()["event_type"] == EventType.ORDER_VOLUME_REPORTED.value
    assert await db.fetchval("select count(*) from fulfillment.volumes") == 0
    assert await db.fetchval("select count(*) from fulfillment.outbox") == 0


async def test_an_incoming_event_that_would_cause_a_too_large_event_is_dead_lettered_at_once(
    settings: Settings, broker: Any, db: asyncpg.Connection
) -> None:
    settings.kafka_max_request_bytes = SMALL_LIMIT
    topic = Topic.WAREHOUSE_REPORTS.value
    body = report(*[line(LONG_SKU, DAY - timedelta(days=i)) for i in range(120)])
    data = OrderVolumeReportData.model_validate(body)
    raw = new_event(EventType.ORDER_VOLUME_REPORT, source="wms", subject="DC-EAST", data=data).to_json()
    async with running(build_fulfillment(settings)):
        await produce(broker.bootstrap_servers, topic, raw, key=b"DC-EAST")
        await read_topic(broker.bootstrap_servers, dead_letter_topic(topic), expect=1, timeout=20)
    dead = await read_topic_to_end(broker.bootstrap_servers, dead_letter_topic(topic))
    assert len(dead) == 1
    assert dict(dead[0].headers)["dlq-reason"] == b"event-too-large"
    assert await db.fetchval("select count(*) from fulfillment.volumes") == 0
    assert await db.fetchval("select count(*) from fulfillment.outbox") == 0


async def insert_row(db: asyncpg.Connection, payload: bytes, *, key: str = "SKU-BIG", topic: str = "") -> int:
    """An outbox row written behind the write-time check's back, as an older release or a larger limit could."""
    row_id: int = await db.fetchval(
        "insert into promotion.outbox (event_id, event_type, topic, key, payload) values ($1, $2, $3, $4, $5)"
        " returning id",
        str(uuid.uuid4()),
        EventType.PROMOTION_PLANNED.value,
        topic or Topic.PROMOTIONS.value,
        key,
        payload,
    )
    return row_id


async def test_a_row_the_broker_refuses_is_parked_visibly_and_later_rows_flow(
    settings: Settings, broker: Any, db: asyncpg.Connection, api_keys: dict[str, Any], database_url: str
) -> None:
    headers = bearer(api_keys["marketing"])
    too_large = b"x" * (settings.kafka_max_request_bytes + 1)
    async with running(build_promotion(settings)) as client:
        first = await insert_row(db, too_large)
        second = await insert_row(db, too_large)
        later = [f"AFTER-{i}" for i in range(3)]
        for promotion_id in later:
            assert (await client.post("/v1/promotions", json=promotion_body(promotion_id), headers=headers)).is_success

        async def published_later() -> bool:
            pending = await db.fetchval("select count(*) from promotion.outbox where published_at is null")
            return pending == 2

        await eventually(published_later, message="the rows after the refused ones were never published")
        messages = await read_topic(broker.bootstrap_servers, Topic.PROMOTIONS.value, expect=3, timeout=10)
        assert sorted(json.loads(m.value)["subject"] for m in messages) == later

        parked = await db.fetch("select id, park_reason from promotion.outbox where parked_at is not null order by id")
        assert [r["id"] for r in parked] == [first, second]
        assert all("MessageSizeTooLargeError" in r["park_reason"] for r in parked)

        ready = await client.get("/readyz")
        assert ready.status_code == 200, "a parked row must not take a serving service out of rotation"
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["outbox"] == "2 parked"
        assert ready.json()["operator_command"] == "salesops outbox list-parked --service promotion"
        metrics = (await client.get("/metrics")).text
        assert gauge(metrics, "salesops_outbox_parked_rows", "promotion") == 2
        assert counter_total(metrics, "salesops_outbox_parked_total") == 2

        listed = await operator(database_url, "list-parked", "--service", "promotion", "--json")
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.output)
        assert [(r["id"], r["key"], r["payload_bytes"]) for r in rows] == [
            (first, "SKU-BIG", len(too_large)),
            (second, "SKU-BIG", len(too_large)),
        ]

        # Retried as it is, the broker refuses it again: parked again, nothing else held up.
        retried = await operator(database_url, "retry", "--service", "promotion", "--id", str(first))
        assert retried.exit_code == 0, retried.output

        async def parked_twice() -> bool:
            text = (await client.get("/metrics")).text
            return counter_total(text, "salesops_outbox_parked_total") == 3

        await eventually(parked_twice, message="a retried row the broker still refuses was not parked again")

        dropped = await operator(database_url, "drop", "--service", "promotion", "--id", str(second))
        assert dropped.exit_code == 0, dropped.output
        assert await db.fetchval("select count(*) from promotion.outbox where id = $1", second) == 0
        not_parked = await operator(database_url, "drop", "--service", "promotion", "--id", str(second))
        assert not_parked.exit_code == 1
        assert (await client.get("/readyz")).json()["checks"]["outbox"] == "1 parked"

    # With a limit raised to what the broker takes, the retried row goes out and readiness is clear again.
    settings.kafka_max_request_bytes = 4 * len(too_large)
    async with running(build_promotion(settings)) as client:
        retried = await operator(database_url, "retry", "--service", "promotion", "--all")
        assert retried.exit_code == 0, retried.output
        assert f"[{first}]" in retried.output

        async def published() -> bool:
            return await db.fetchval("select published_at is not null from promotion.outbox where id = $1", first)

        await eventually(published, message="the retried row was not published under the larger limit")
        ready = (await client.get("/readyz")).json()
        assert (ready["status"], ready["checks"]["outbox"]) == ("ready", "ok")
        assert gauge((await client.get("/metrics")).text, "salesops_outbox_parked_rows", "promotion") == 0
    sizes = [len(m.value) for m in await read_topic_to_end(broker.bootstrap_servers, Topic.PROMOTIONS.value)]
    assert len(too_large) in sizes


async def test_a_row_refused_again_and_again_is_parked_after_the_configured_attempts(
    settings: Settings, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    settings.relay_max_attempts = 2
    settings.kafka_request_timeout_ms = 1000
    async with running(build_promotion(settings)) as client:
        stuck = await insert_row(db, b"{}", topic="salesops.not a valid topic!")
        posted = await client.post("/v1/promotions", json=promotion_body("AFTER"), headers=bearer(api_keys["admin"]))
        assert posted.status_code == 201

        async def parked() -> str | None:
            reason: str | None = await db.fetchval(
                "select park_reason from promotion.outbox where id = $1 and parked_at is not null", stuck
            )
            return reason

        reason = await eventually(parked, timeout=30, message="a row refused on every attempt was never parked")
        assert "UnknownTopicOrPartitionError" in reason and "after 2 attempts" in reason

        async def flowed() -> bool:
            return await db.fetchval("select count(*) from promotion.outbox where published_at is not null") == 1

        await eventually(flowed, message="the row behind the parked one was not published")


async def test_the_parked_operator_commands_explain_what_they_need(database_url: str) -> None:
    neither = await operator(database_url, "retry", "--service", "promotion")
    assert neither.exit_code == 2
    nothing = await operator(database_url, "list-parked", "--service", "planning")
    assert nothing.exit_code == 0
    assert "no parked events in the planning outbox" in nothing.output
    missing = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["outbox", "list-parked", "--service", "returns", "--data-dir", "/nonexistent"],
        env={"SALESOPS_DATABASE_URL": ""},
    )
    assert missing.exit_code == 2
    assert "no running PostgreSQL in /nonexistent/postgres" in missing.output
