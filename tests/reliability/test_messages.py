"""Duplicate storms and poison messages on every consumed topic, against the four services in-process."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from salesops.infra import EmbeddedBroker
from shared.events import (
    AccountChangedData,
    CapacityConflictData,
    EventData,
    EventType,
    OrderVolumeReportData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
    SalesOrderData,
    Topic,
    dead_letter_topic,
    new_event,
)
from shared.service import Runtime
from shared.settings import Settings
from tests.reliability.harness import (
    REPORT,
    SERVICES,
    Load,
    build_apps,
    describe,
    live_system,
    record_ledger,
    scaled,
    settle,
)
from tests.support import eventually, read_topic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONSUMED_TOPICS = (
    Topic.PROMOTIONS,
    Topic.WAREHOUSE_REPORTS,
    Topic.ORDER_VOLUMES,
    Topic.RETURNS,
    Topic.PLANS,
    Topic.ORDERS,
    Topic.ACCOUNTS,
)


def consumed_total(runtime: Runtime) -> float:
    """Every message a service's consumers finished with: processed, duplicate, ignored or dead-lettered."""
    total = 0.0
    for metric in (runtime.metrics.consumed, runtime.metrics.dead_lettered):
        for family in metric.collect():
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def readers(apps: dict[str, FastAPI]) -> dict[str, list[tuple[str, str]]]:
    """topic -> [(service, consumer group)] of the running apps."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name, app in apps.items():
        for consumer in app.state.runtime.consumers:
            for topic in consumer.subscription.topics:
                found.setdefault(topic, []).append((name, consumer.subscription.name))
    return found


async def snapshot(db: asyncpg.Connection) -> dict[str, int]:
    tables = await db.fetch(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema = any($1) and table_type = 'BASE TABLE' and table_name <> 'alembic_version'",
        list(SERVICES),
    )
    counts = {}
    for row in tables:
        name = f"{row['table_schema']}.{row['table_name']}"
        counts[name] = await db.fetchval(f"select count(*) from {name}")
    return counts


async def test_every_event_delivered_three_times_is_applied_once(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    run = f"D{uuid.uuid4().hex[:6].upper()}"
    apps = build_apps(settings)
    async with live_system(settings, apps) as urls:
        async with Load(urls, api_keys["admin"], run=run) as load:
            target = scaled(40, 500)
            await eventually(
                lambda: _at_least(load.ledger.total_accepted(), target), timeout=120, message="load stalled"
            )
        first = await settle(db, load.ledger, run, timeout=60)
        assert first.ok(), describe(first)
        # Every consumer, not only those the accounting looks at, must have caught up before the snapshot.
        await eventually(
            lambda: _caught_up(apps, db, broker.bootstrap_servers), timeout=60, interval=0.3, message="never quiet"
        )
        before = await snapshot(db)

        # Replay every topic's content twice more, byte for byte (same event ids, keys and headers).
        by_topic = readers(apps)
        consumed_before = {name: consumed_total(app.state.runtime) for name, app in apps.items()}
        expected_more: Counter[str] = Counter()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
        await producer.start()
        try:
            for topic in CONSUMED_TOPICS:
                messages = await read_topic(broker.bootstrap_servers, topic, expect=10**9, timeout=2)
                for _copy in range(2):
                    for message in messages:
                        await producer.send(
                            topic, value=message.value, key=message.key, headers=list(message.headers or ())
                        )
                await producer.flush()
                REPORT.messages_sent[f"duplicates on {topic}"] += 2 * len(messages)
                for service, _group in by_topic.get(topic, []):
                    expected_more[service] += 2 * len(messages)
        finally:
            await producer.stop()

        async def replay_consumed() -> bool:
            return all(
                consumed_total(apps[name].state.runtime) >= consumed_before[name] + expected_more[name] for name in apps
            )

        await eventually(replay_consumed, timeout=scaled(60, 300), interval=0.2, message="the replay was not consumed")
        after = await snapshot(db)
        result = await settle(db, load.ledger, run, timeout=5)
    record_ledger(load.ledger, result, scenario="duplicates")
    REPORT.faults["every event delivered 3x"] += 1
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    assert not changed, f"a replay changed stored state: {changed}"
    assert result.ok(), describe(result)


async def _caught_up(apps: dict[str, FastAPI], db: asyncpg.Connection, bootstrap: str) -> bool:
    """Nothing waits in any outbox, no account waits for its cost recount, and each service has finished with every
    message on the topics it reads."""
    for schema in ("promotion", "fulfillment", "returns", "planning"):
        if await db.fetchval(f"select count(*) from {schema}.outbox where published_at is null"):
            return False
    if await db.fetchval("select count(*) from returns.cost_recounts"):
        return False  # marks the recount task removes shortly (it gathers them for `COST_RECOUNT_DELAY_S`)
    sizes = await topic_sizes(bootstrap, CONSUMED_TOPICS)
    for app in apps.values():
        expected = sum(sizes[t] for c in app.state.runtime.consumers for t in c.subscription.topics)
        if consumed_total(app.state.runtime) < expected:
            return False
    return True


async def topic_sizes(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Messages on each topic: the sum of its partitions' end offsets (the in-memory logs start at 0)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata of every topic
        sizes = {}
        for topic in topics:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(partitions) if partitions else {}
            sizes[topic] = sum(ends.values())
        return sizes
    finally:
        await consumer.stop()


async def _at_least(value: int, target: int) -> bool:
    return value >= target


# ---------------------------------------------------------------- poison

POISON_KINDS = ("not-json", "wrong-envelope", "unknown-type", "invalid-data", "huge")


def good_event(topic: str, run: str, index: int) -> tuple[bytes, bytes]:
    """(key, value) of a valid event of a type some consumer of the topic handles."""
    today = date.today()
    sku = f"{run}-SKU-{index % 17}"
    event_type: EventType
    data: EventData
    if topic == Topic.PROMOTIONS:
        event_type = EventType.PROMOTION_PLANNED
        starts = today + timedelta(days=20 + index % 20)
        data = PromotionData(
            promotion_id=f"{run}-P-{index}",
            name="poison run",
            starts_on=starts,
            ends_on=starts + timedelta(days=2),
            items=[{"sku": sku, "uplift_pct": 15}],  # type: ignore[list-item]
        )
    elif topic == Topic.WAREHOUSE_REPORTS:
        event_type = EventType.ORDER_VOLUME_REPORT
        line = {"sku": f"{run}-W-{index}", "day": today - timedelta(days=2), "units_ordered": 5}
        data = OrderVolumeReportData(
            warehouse_id="DC-P",
            lines=[{**line, "units_shipped": 5, "units_backordered": 0}],  # type: ignore[list-item]
        )
    elif topic == Topic.ORDER_VOLUMES:
        event_type = EventType.ORDER_VOLUME_REPORTED
        day = {"day": today - timedelta(days=2), "units_ordered": 5, "units_shipped": 5, "units_backordered": 0}
        data = OrderVolumeReportedData(sku=f"{run}-V-{index}", days=[day])  # type: ignore[list-item]
    elif topic == Topic.RETURNS:
        event_type = EventType.RETURN_RECORDED
        data = ReturnData(
            return_id=f"{run}-R-{index}",
            sku=sku,
            quantity=1,
            account_id="ACC",
            reason="no_longer_needed",
            condition="resellable",
            returned_on=today,
        )
    elif topic == Topic.ORDERS:
        event_type = EventType.SALES_ORDER_BOOKED
        promised = today + timedelta(days=14 + index % 14)
        line = {"line_id": "1", "sku": sku, "quantity": 4, "requested_on": promised, "promised_on": promised}
        data = SalesOrderData(
            order_id=f"{run}-SO-{index}",
            account_id=f"{run}-ACC-{index % 5}",
            ordered_on=today,
            status="open",
            version=1,
            booked_at=datetime.now(UTC),
            lines=[{**line, "shipped_quantity": 0, "open_quantity": 4}],  # type: ignore[list-item]
        )
    elif topic == Topic.ACCOUNTS:
        event_type = EventType.ACCOUNT_CHANGED
        data = AccountChangedData(
            account_id=f"{run}-ACC-{index}",
            name=f"Account {index}",
            segment="emerging",
            version=1,
            changed_at=datetime.now(UTC),
        )
    else:
        event_type = EventType.CAPACITY_CONFLICT_DETECTED
        week = today + timedelta(days=28)
        data = CapacityConflictData(
            sku=sku,
            promotion_ids=[f"{run}-UNKNOWN-{index}"],
            weeks=[{"week_start": week - timedelta(days=week.weekday()), "shortfall": 3}],  # type: ignore[list-item]
            total_shortfall=3,
            plan_version=index + 1,
        )
    event = new_event(event_type, source="reliability", subject=sku, data=data)
    return sku.encode(), event.to_json()


def event_id_of(value: bytes) -> str:
    return str(json.loads(value)["id"])


def poison(kind: str, topic: str, run: str, index: int) -> bytes:
    _key, valid = good_event(topic, run, 10_000 + index)
    document = json.loads(valid)
    if kind == "not-json":
        return b"\xff\xfe not json at all {"
    if kind == "wrong-envelope":
        return json.dumps({"id": document["id"], "payload": document["data"]}).encode()
    if kind == "unknown-type":
        return json.dumps({**document, "type": "salesops.nonsense.v1"}).encode()
    if kind == "invalid-data":
        return json.dumps({**document, "data": {"sku": "", "nonsense": True}}).encode()
    # ~1.5 MB: a valid envelope whose data is invalid and huge.
    return json.dumps({**document, "data": {"padding": "x" * 1_500_000}}).encode()


@asynccontextmanager
async def consumers_only(apps: dict[str, FastAPI]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield


async def inbox_rows(db: asyncpg.Connection, event_ids: list[str]) -> int:
    total = 0
    for schema in SERVICES:
        total += await db.fetchval(f"select count(*) from {schema}.inbox where event_id = any($1)", event_ids)
    return int(total)


async def test_poison_goes_to_dead_letters_with_reasons_and_the_rest_flows(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection
) -> None:
    run = f"X{uuid.uuid4().hex[:6].upper()}"
    good_per_topic = scaled(100, 1000)
    poison_per_topic = scaled(5, 10)  # reduced: one of each kind; full: 1 %
    apps = build_apps(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, max_request_size=4 * 1024 * 1024, linger_ms=5
    )
    await producer.start()
    rates: dict[str, float] = {}
    try:
        async with consumers_only(apps):
            by_topic = readers(apps)
            for phase, with_poison, tag in (("without poison", False, "A"), ("with poison", True, "B")):
                expected_rows = 0
                event_ids: list[str] = []
                started = time.monotonic()
                poison_every = good_per_topic // poison_per_topic if with_poison else 0
                for topic in CONSUMED_TOPICS:
                    sent_poison = 0
                    for index in range(good_per_topic):
                        key, value = good_event(topic, f"{run}{tag}", index)
                        event_ids.append(event_id_of(value))
                        await producer.send(topic, value=value, key=key)
                        if poison_every and index % poison_every == 0 and sent_poison < poison_per_topic:
                            kind = POISON_KINDS[sent_poison % len(POISON_KINDS)]
                            await producer.send(topic, value=poison(kind, topic, run, index), key=key)
                            REPORT.bad_inputs[f"poison {kind}"] += 1
                            sent_poison += 1
                    expected_rows += good_per_topic * len(by_topic.get(topic, []))
                    REPORT.messages_sent[f"good events ({phase})"] += good_per_topic
                await producer.flush()

                async def all_good_processed(ids: list[str] = event_ids, rows: int = expected_rows) -> bool:
                    return await inbox_rows(db, ids) >= rows

                await eventually(
                    all_good_processed,
                    timeout=scaled(120, 600),
                    interval=0.2,
                    message=f"good events were not all processed ({phase})",
                )
                elapsed = time.monotonic() - started
                rates[phase] = round(len(event_ids) / elapsed, 1)
                assert await inbox_rows(db, event_ids) == expected_rows

        for topic in CONSUMED_TOPICS:
            groups = [group for _service, group in by_topic.get(topic, [])]
            letters = await read_topic(
                broker.bootstrap_servers,
                dead_letter_topic(topic),
                expect=poison_per_topic * len(groups),
                timeout=30,
            )
            seen: Counter[tuple[str, str]] = Counter()
            for letter in letters:
                headers = {k: v.decode() for k, v in letter.headers or ()}
                assert headers.get("dlq-reason"), f"a dead letter on {topic} says no reason"
                assert headers["dlq-original-topic"] == topic
                seen[(headers["dlq-consumer"], headers["dlq-reason"])] += 1
            for group in groups:
                mine = sum(n for (g, _reason), n in seen.items() if g == group)
                assert mine == poison_per_topic, f"{group} dead-lettered {mine} of {poison_per_topic} on {topic}"
            reasons = sorted({reason for (_g, reason) in seen})
            REPORT.measurements.setdefault("dead-letter reasons", {})[topic.value] = reasons
    finally:
        await producer.stop()
    REPORT.measurements["consumer throughput, good events/s (same run)"] = rates
