"""`salesops events`: read any topic as CloudEvents, and print the AsyncAPI document of the whole system.

`tail` is a plain aiokafka consumer without a group (it commits nothing and disturbs no service), so it works
against the embedded broker as well as against Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from rich.console import Console
from rich.table import Table

from shared.events import ALL_TOPICS, CloudEvent, InvalidEvent, Topic
from shared.inbound import read_envelope

app = typer.Typer(help="Events on the broker: read a topic, describe every channel.", no_args_is_help=True)

# `salesops up` starts its embedded broker at port-base + 92 (8092 by default) when that port is free.
DEFAULT_BOOTSTRAP = "127.0.0.1:8092"


class Output(StrEnum):
    json = "json"
    table = "table"


@dataclass
class Received:
    """One message of a topic: its CloudEvent, or why it is not one."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    headers: dict[str, str]
    event: CloudEvent | None = None
    invalid: dict[str, str] | None = None
    value: str | None = None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(),
            "key": self.key,
            "headers": self.headers,
        }
        if self.event is not None:
            document["event"] = self.event.model_dump(mode="json", exclude_none=True)
        else:
            document["invalid"] = self.invalid
            document["value"] = self.value
        return document


@dataclass
class TailOptions:
    from_beginning: bool = False
    types: Sequence[str] = ()
    max_messages: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class UnknownTopic(Exception):
    pass


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


def decode(message: ConsumerRecord[bytes, bytes]) -> Received:
    headers = {name: _text(raw) for name, raw in message.headers or ()}
    received = Received(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=datetime.fromtimestamp(message.timestamp / 1000, UTC),
        key=_text(message.key) if message.key is not None else None,
        headers=headers,
    )
    try:
        received.event = read_envelope(message.value, message.headers)
    except InvalidEvent as invalid:
        received.invalid = {"reason": invalid.reason, "detail": invalid.detail}
        received.value = _text(message.value) if message.value is not None else None
    return received


def wanted(received: Received, types: Sequence[str]) -> bool:
    """No filter takes everything; otherwise the event's type matches one pattern (`*` wildcards allowed)."""
    if not types:
        return True
    return received.event is not None and any(fnmatchcase(received.event.type, t) for t in types)


def topic_name(topic: str) -> str:
    """`promotions` and `promotions.dlq` are short for the contract's `salesops.` topics."""
    if topic not in ALL_TOPICS and f"salesops.{topic}" in ALL_TOPICS:
        return f"salesops.{topic}"
    return topic


async def tail(bootstrap_servers: str, topic: str, options: TailOptions, emit: Callable[[Received], None]) -> int:
    """Read `topic` (every partition) from its end, or its beginning, until `max_messages` were emitted or the
    task is cancelled; returns how many were emitted."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if options.from_beginning else "latest",
        client_id="salesops-events-tail",
    )
    await consumer.start()
    emitted = 0
    try:
        await consumer.topics()  # fetches the cluster's metadata, so the topic's partitions are known
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise UnknownTopic(f"no topic {topic!r} on {bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if options.from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)  # resolves the start offsets before anyone is told we are ready
        options.ready.set()
        while options.max_messages is None or emitted < options.max_messages:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    received = decode(record)
                    if not wanted(received, options.types):
                        continue
                    emit(received)
                    emitted += 1
                    if options.max_messages is not None and emitted >= options.max_messages:
                        return emitted
    finally:
        await consumer.stop()
    return emitted


def json_lines(received: Received) -> None:
    sys.stdout.write(json.dumps(received.as_json(), ensure_ascii=False) + "\n")
    sys.stdout.flush()


class TableRows:
    """Rows of one table as they arrive: one heading, fixed columns so the rows line up."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.headed = False

    def __call__(self, received: Received) -> None:
        table = Table(show_header=not self.headed, box=None, pad_edge=False, expand=True)
        table.add_column("at", width=8, no_wrap=True, style="dim")
        table.add_column("time", width=19, no_wrap=True)
        table.add_column("type", width=38, no_wrap=True, style="bold")
        table.add_column("subject", width=16, no_wrap=True)
        table.add_column("data", ratio=1, no_wrap=True, overflow="ellipsis")
        at = f"{received.partition}:{received.offset}"
        if received.event is not None:
            event = received.event
            when = (event.time or received.timestamp).strftime("%Y-%m-%d %H:%M:%S")
            data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
            table.add_row(at, when, event.type, event.subject or "", data)
        else:
            reason = (received.invalid or {}).get("reason", "invalid")
            when = received.timestamp.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(at, when, f"[red]({reason})[/]", received.key or "", received.value or "")
        self.console.print(table)
        self.headed = True


@app.command("tail")
def tail_command(
    topic: Annotated[str, typer.Argument(help="a topic, e.g. salesops.promotions (or promotions, plans.dlq)")],
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest message, not at the next one")] = False,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="only events of this type (repeatable; * matches anything)"),
    ] = None,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="stop after this many messages")] = None,
    output: Annotated[Output, typer.Option(help="json: one JSON document a line; table: for reading")] = Output.json,
    bootstrap_servers: Annotated[
        str,
        typer.Option(envvar="SALESOPS_KAFKA_BOOTSTRAP_SERVERS", help="the broker (default: the one of `salesops up`)"),
    ] = DEFAULT_BOOTSTRAP,
) -> None:
    """Print a topic's messages as CloudEvents, with their Kafka coordinates and headers, until --max or Ctrl-C.

    Messages that are not CloudEvents (say, in a dead-letter topic) are shown with the reason and their raw value.
    """
    emit: Callable[[Received], None] = json_lines if output is Output.json else TableRows(Console())
    options = TailOptions(from_beginning=from_beginning, types=type_ or (), max_messages=max_messages)
    try:
        asyncio.run(tail(bootstrap_servers, topic_name(topic), options, emit))
    except UnknownTopic as exc:
        Console(stderr=True).print(f"[red]{exc}[/]; the contract's topics: {', '.join(t.value for t in Topic)}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass


def system_document() -> dict[str, Any]:
    """The AsyncAPI document of the whole system: every service's channels and operations, and the warehouse
    systems that publish their reports themselves."""
    from services.fulfillment_service.app import build_app as fulfillment
    from services.planning_service.app import build_app as planning
    from services.promotion_service.app import build_app as promotion
    from services.returns_service.app import build_app as returns
    from shared.asyncapi import EventRoles, combined_document

    parts = [builder().state.event_roles for builder in (promotion, fulfillment, returns, planning)]
    parts.append(
        EventRoles("warehouse-systems", "warehouse systems", publishes=(Topic.WAREHOUSE_REPORTS.value,), external=True)
    )
    return combined_document(parts)


@app.command("asyncapi")
def asyncapi_command(
    out: Annotated[Path | None, typer.Option(help="write to this file instead of standard output")] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of every topic, event and dead-letter channel (docs/asyncapi.json)."""
    text = json.dumps(system_document(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
