"""The metrics against the real broker and database: consumer lag per partition, the outbox backlog and the age of
its oldest row, and every app's /metrics passing `promtool check metrics` (skipped where promtool is missing;
`.ci/run` installs it)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from salesops.console.app import build_app as build_console
from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service import tables as planning_tables
from services.planning_service.app import build_app as build_planning
from services.promotion_service import tables as promotion_tables
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from shared.db import timed_pool
from shared.events import EventType, Topic
from shared.service import ServiceSpec, build_runtime
from shared.subscription import Subscription
from tests.consumer_events import planned_promotion
from tests.integration.test_promotion_flow import promotion_body
from tests.support import bearer, eventually, produce, running

pytestmark = pytest.mark.integration

BUILDERS = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "returns": build_returns,
    "planning": build_planning,
}
PROMTOOL = shutil.which("promtool")


def promtool_check(text: str) -> str:
    """Problems `promtool check metrics` finds in an exposition ('' when none)."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    return "" if done.returncode == 0 else (done.stdout + done.stderr).decode()


async def test_consumer_lag_is_what_is_left_of_each_partition_after_each_fetch(settings, broker):
    settings.consumer_batch_size = 1
    release = asyncio.Event()
    handled: list[str] = []

    async def slow(uow, event, data):
        handled.append(data.promotion_id)
        if len(handled) == 2:
            await release.wait()

    spec = ServiceSpec(
        name="planning",
        metadata=planning_tables.metadata,
        routers=[],
        subscriptions=[Subscription("lag-test", (Topic.PROMOTIONS.value,), {EventType.PROMOTION_PLANNED.value: slow})],
    )
    runtime = build_runtime(spec, settings)
    for n in range(5):
        await produce(
            broker.bootstrap_servers, Topic.PROMOTIONS.value, planned_promotion(f"P{n}").to_json(), key=b"SKU-1"
        )
    [consumer] = runtime.consumers
    task = asyncio.create_task(consumer.run())

    def lag() -> dict[str, float]:
        samples = [s for f in runtime.metrics.consumer_lag.collect() for s in f.samples]
        return {s.labels["partition"]: s.value for s in samples if s.labels["consumer"] == "lag-test"}

    try:
        # One message fetched and handled, the second one in hand: four behind the high watermark.
        assert 4.0 in (await eventually(lambda: _truthy(lag() if len(handled) == 2 else {}))).values()
        release.set()
        await eventually(lambda: _truthy(len(handled) == 5 and set(lag().values()) == {0.0}))
        assert len(lag()) == settings.topic_partitions, "every assigned partition has its series"
    finally:
        release.set()
        consumer.stop()
        await asyncio.wait_for(task, timeout=15)
        await runtime.producer.stop()
        await runtime.engine.dispose()
    assert lag() == {}, "a stopped consumer leaves no stale series"


async def test_the_relay_reports_the_outbox_backlog_and_the_age_of_its_oldest_row(settings, broker, db):
    spec = ServiceSpec(name="promotion", metadata=promotion_tables.metadata, routers=[])
    runtime = build_runtime(spec, settings)
    for age_s in (90, 30):
        await db.execute(
            "insert into promotion.outbox (event_id, event_type, topic, key, payload, created_at)"
            " values ($1, $2, $3, $4, $5, now() - make_interval(secs => $6))",
            str(uuid.uuid4()),
            EventType.PROMOTION_PLANNED.value,
            Topic.PROMOTIONS.value,
            "SKU-1",
            planned_promotion("OLD").to_json(),
            float(age_s),
        )

    def gauge(name: str) -> float | None:
        return runtime.metrics.registry.get_sample_value(name, {"service": "promotion"})

    try:
        pending, age = await runtime.relay.measure_backlog()
        assert pending == 2 and 90 <= age < 120
        assert gauge("salesops_outbox_pending_rows") == 2
        assert gauge("salesops_outbox_oldest_pending_age_seconds") == age
        assert await runtime.relay.publish_batch() == 2
        assert await runtime.relay.measure_backlog() == (0, 0.0)
        assert gauge("salesops_outbox_pending_rows") == 0
        assert gauge("salesops_outbox_oldest_pending_age_seconds") == 0
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs it from Debian)")
@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_every_service_exposes_metrics_promtool_accepts(settings, api_keys, service):
    async with running(BUILDERS[service](settings)) as client:
        await client.get("/v1/whoami", headers=bearer(api_keys["admin"]))
        if service == "promotion":
            created = await client.post(
                "/v1/promotions", json=promotion_body("PROM-1"), headers=bearer(api_keys["marketing"])
            )
            assert created.status_code == 201, created.text

        async def consumer_series() -> str:
            text = (await client.get("/metrics")).text
            return text if "salesops_consumer_lag_messages{" in text and "salesops_outbox_pending_rows{" in text else ""

        text = await eventually(consumer_series, message=f"{service} never reported its consumer lag and backlog")
    for family in (
        "salesops_http_requests_total",
        "salesops_events_dead_lettered_total",
        "salesops_sse_streams_open",
        "salesops_webhook_backlog_deliveries",
        "salesops_webhook_attempts_total",
        "salesops_outbox_oldest_pending_age_seconds",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    assert promtool_check(text) == ""


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs it from Debian)")
async def test_the_console_exposes_metrics_promtool_accepts():
    async with running(build_console()) as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'salesops_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in response.text
    assert promtool_check(response.text) == ""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_service_reports_its_database_pool_and_its_event_loop_lag(settings):
    """The pool's gauges follow connections taken and given back, a checkout that waited for a free connection
    shows in the wait histogram, and a loop held up shows in the lag histogram."""
    settings.db_pool_size = 3
    settings.db_max_overflow = 0
    app = build_returns(settings)
    returns = (("service", "returns"),)

    def value(text: str, name: str, **labels: str) -> float:
        return samples(text).get((name, tuple(sorted({"service": "returns", **labels}.items()))), 0.0)

    async with running(app) as client:

        async def scrape() -> str:
            return (await client.get("/metrics")).text

        text = await scrape()
        assert samples(text)[("salesops_db_pool_size", returns)] == 3
        engine = app.state.runtime.engine
        pool = timed_pool(engine)
        held = []
        waiter: asyncio.Task[Any] | None = None
        try:
            # Every connection taken, whatever the service's listeners and tasks hold (a task's may be returned
            # meanwhile, and is taken in turn).
            while pool.checkedout() < 3:
                held.append(await engine.connect())
            text = await scrape()
            assert value(text, "salesops_db_pool_checked_out_connections") == 3
            assert value(text, "salesops_db_pool_connections") == 3
            waited_before = value(text, "salesops_db_pool_checkout_wait_seconds_count") - value(
                text, "salesops_db_pool_checkout_wait_seconds_bucket", le="0.25"
            )

            async def one_more() -> Any:
                return await engine.connect()

            # One more checkout waits for the test to let go. A connection a background task gives back meanwhile
            # goes to it instead: that one is kept too, and another checkout queued, until one is still waiting.
            for _ in range(20):
                waiter = asyncio.create_task(one_more())
                await asyncio.sleep(0.3)
                if not waiter.done():
                    break
                held.append(waiter.result())
            else:
                pytest.fail("the service's tasks kept giving connections back")
            assert value(await scrape(), "salesops_db_pool_waiting_checkouts") >= 1
        finally:
            for conn in held:
                await conn.close()
        assert waiter is not None
        await (await asyncio.wait_for(waiter, timeout=5)).close()
        text = await scrape()
        waited = value(text, "salesops_db_pool_checkout_wait_seconds_count") - value(
            text, "salesops_db_pool_checkout_wait_seconds_bucket", le="0.25"
        )
        assert waited >= waited_before + 1, "the checkout that waited more than 0.25 s is not in the histogram"

        async def given_back() -> bool:
            return value(await scrape(), "salesops_db_pool_checked_out_connections") < 3

        await eventually(given_back, message="connections given back are still reported checked out")

        def slow_samples(text: str) -> float:
            return value(text, "salesops_event_loop_lag_seconds_count") - value(
                text, "salesops_event_loop_lag_seconds_bucket", le="0.25"
            )

        slow_before = slow_samples(await scrape())
        time.sleep(0.4)  # noqa: ASYNC251 - the loop held up, as by a long synchronous computation

        async def lag_seen() -> bool:
            return slow_samples(await scrape()) >= slow_before + 1

        await eventually(lag_seen, message="the event loop's lag is not reported")


async def _truthy(value: object) -> object:
    return value
