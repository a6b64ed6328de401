"""Helpers for tests that drive the real services, database and broker."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from salesops.infra import free_port


def free_port_base(offsets: tuple[int, ...] = (1, 2, 3, 4, 5, 92)) -> int:
    """A `--port-base` for `salesops up` whose ports are all free now, below the ephemeral range (32768 and up
    on Linux) so that no client connection of another test can take one of them meanwhile."""
    for _ in range(500):
        base = random.randrange(20_000, 32_000, 100)
        if all(free_port(base + offset) == base + offset for offset in offsets):
            return base
    raise RuntimeError("no free port base between 20000 and 32000")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app in-process with its lifespan (relay and consumers included) and a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll `check` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s (last value: {last!r})")


async def _assigned_from_beginning(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of `topic` to `consumer` (no consumer group) and seek to their beginnings."""
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning()
    return assigned


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 15.0) -> list[Any]:
    """Read a topic from the beginning (no consumer group) until `expect` messages arrived or `timeout`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    messages: list[Any] = []
    try:
        await _assigned_from_beginning(consumer, topic)
        deadline = time.monotonic() + timeout
        while len(messages) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                messages.extend(records)
    finally:
        await consumer.stop()
    return messages


async def read_topic_to_end(bootstrap: str, topic: str, *, timeout: float = 15.0) -> list[Any]:
    """Everything on a topic: read from the beginning (no consumer group) until every partition's position reached
    the end offset (high watermark) it had when the read began, in partition order, then offset order.

    Exact only once nothing can publish to the topic any more (e.g. after the publishing app's lifespan ended: its
    shutdown drains the outbox relay); then it needs no wait for messages that do not come, and an extra or
    duplicate message is in the result. Fails if the end is not reached within `timeout` seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    by_partition: dict[TopicPartition, list[Any]] = {}
    try:
        async with asyncio.timeout(timeout):
            assigned = await _assigned_from_beginning(consumer, topic)
            if not assigned:
                raise AssertionError(f"topic {topic!r} has no partitions")
            ends = await consumer.end_offsets(assigned)
            pending = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=100)
                for tp, records in batch.items():
                    by_partition.setdefault(tp, []).extend(records)
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    except TimeoutError:
        raise AssertionError(f"topic {topic!r} not read to its end within {timeout}s") from None
    finally:
        await consumer.stop()
    return [record for tp in sorted(by_partition) for record in by_partition[tp]]


async def produce(
    bootstrap: str,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()
