"""`salesops events tail` against the real broker: CloudEvents in structured and binary mode, messages that are
none, type filters, starting at the end or the beginning, --max, and Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from salesops.events import Received, TailOptions, UnknownTopic, tail
from shared.events import EventType, LaunchData, PromotionData, new_event

pytestmark = pytest.mark.integration

TOPIC = "salesops.promotions"


def promotion_event(promotion_id: str) -> bytes:
    data = PromotionData.model_validate(
        {
            "promotion_id": promotion_id,
            "name": "tailed",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-07",
            "items": [{"sku": "SKU-T", "uplift_pct": 10}],
        }
    )
    return new_event(EventType.PROMOTION_PLANNED, source="tests", subject=promotion_id, data=data).to_json()


def launch_event(launch_id: str) -> bytes:
    data = LaunchData.model_validate(
        {"launch_id": launch_id, "sku": "SKU-NEW", "launch_on": "2026-12-01", "reference_sku": "SKU-OLD"}
    )
    return new_event(EventType.LAUNCH_PLANNED, source="tests", subject=launch_id, data=data).to_json()


async def produce_all(bootstrap: str, messages: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in messages:
            # One key: a single partition keeps the order the assertions expect.
            await producer.send_and_wait(TOPIC, value=value, key=b"SKU-T", headers=headers)
    finally:
        await producer.stop()


async def collect(bootstrap: str, options: TailOptions, topic: str = TOPIC) -> list[Received]:
    received: list[Received] = []
    async with asyncio.timeout(20):
        await tail(bootstrap, topic, options, received.append)
    return received


async def test_tail_reads_structured_and_binary_cloudevents_and_shows_what_is_not_one(broker):
    binary_headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"bin-1"),
        ("ce_source", b"warehouse/dc-east"),
        ("ce_type", EventType.PROMOTION_PLANNED.value.encode()),
        ("content-type", b"application/json"),
    ]
    await produce_all(
        broker.bootstrap_servers,
        [
            (promotion_event("P-1"), [("content-type", b"application/cloudevents+json")]),
            (b"{not json", []),
            (json.dumps({"promotion_id": "P-2"}).encode(), binary_headers),
        ],
    )
    structured, poison, binary = await collect(
        broker.bootstrap_servers, TailOptions(from_beginning=True, max_messages=3)
    )
    assert structured.event is not None and structured.event.subject == "P-1"
    assert structured.headers == {"content-type": "application/cloudevents+json"}
    assert (structured.topic, structured.key) == (TOPIC, "SKU-T")
    assert poison.event is None and poison.invalid is not None
    assert poison.invalid["reason"] == "not-json" and poison.value == "{not json"
    assert binary.event is not None
    assert (binary.event.id, binary.event.source) == ("bin-1", "warehouse/dc-east")
    assert binary.event.data == {"promotion_id": "P-2"}
    document = poison.as_json()
    assert json.loads(json.dumps(document))["invalid"]["reason"] == "not-json"


async def test_tail_filters_by_type_with_wildcards(broker):
    await produce_all(
        broker.bootstrap_servers,
        [(promotion_event("P-1"), []), (launch_event("L-1"), []), (b"junk", []), (promotion_event("P-2"), [])],
    )
    launches = await collect(
        broker.bootstrap_servers, TailOptions(from_beginning=True, types=["salesops.launch.*"], max_messages=1)
    )
    assert [r.event.subject for r in launches if r.event] == ["L-1"]
    promotions = await collect(
        broker.bootstrap_servers,
        TailOptions(from_beginning=True, types=[EventType.PROMOTION_PLANNED.value], max_messages=2),
    )
    assert [r.event.subject for r in promotions if r.event] == ["P-1", "P-2"]


async def test_tail_starts_at_the_end_unless_asked_for_the_beginning(broker):
    await produce_all(broker.bootstrap_servers, [(promotion_event("OLD"), [])])
    options = TailOptions(max_messages=1)
    received: list[Received] = []
    task = asyncio.create_task(tail(broker.bootstrap_servers, TOPIC, options, received.append))
    async with asyncio.timeout(20):
        await options.ready.wait()
        await produce_all(broker.bootstrap_servers, [(promotion_event("NEW"), [])])
        assert await task == 1
    assert [r.event.subject for r in received if r.event] == ["NEW"]


async def test_tail_refuses_a_topic_the_broker_does_not_have(broker):
    with pytest.raises(UnknownTopic, match=r"salesops\.nothing"):
        await collect(broker.bootstrap_servers, TailOptions(max_messages=1), topic="salesops.nothing")


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "salesops", "events", "tail", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, **kwargs)


async def test_the_command_prints_json_lines_and_a_table(broker):
    await produce_all(broker.bootstrap_servers, [(promotion_event("P-1"), []), (launch_event("L-1"), [])])
    bootstrap = ["--bootstrap-servers", broker.bootstrap_servers]
    lines = await asyncio.to_thread(run_cli, "promotions", "--from-beginning", "--max", "2", *bootstrap)
    assert lines.returncode == 0, lines.stderr
    documents = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [d["event"]["type"] for d in documents] == [EventType.PROMOTION_PLANNED, EventType.LAUNCH_PLANNED]
    assert documents[0]["topic"] == TOPIC and documents[0]["event"]["data"]["promotion_id"] == "P-1"

    table = await asyncio.to_thread(
        run_cli, TOPIC, "--from-beginning", "--max", "1", "--type", "salesops.launch.*", "--output", "table", *bootstrap
    )
    assert table.returncode == 0, table.stderr
    assert "salesops.launch.planned.v1" in table.stdout and "L-1" in table.stdout
    assert "salesops.promotion.planned.v1" not in table.stdout

    unknown = await asyncio.to_thread(run_cli, "salesops.nothing", "--max", "1", *bootstrap)
    assert unknown.returncode == 2
    assert "no topic 'salesops.nothing'" in unknown.stderr


async def test_the_command_stops_cleanly_on_ctrl_c(broker):
    await produce_all(broker.bootstrap_servers, [(promotion_event("P-1"), [])])
    command = [sys.executable, "-m", "salesops", "events", "tail", TOPIC, "--from-beginning"]
    command += ["--bootstrap-servers", broker.bootstrap_servers]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            first = await process.stdout.readline()
        assert json.loads(first)["event"]["subject"] == "P-1"
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
