"""Reading Server-Sent Events in tests as a browser's EventSource does: a service under uvicorn on loopback,
the stream's opening comment, and events with their id, name and JSON data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from salesops.infra import free_port
from tests.support import eventually


@dataclass(frozen=True)
class Event:
    id: str
    event: str | None
    data: Any


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app (with its lifespan) under uvicorn on 127.0.0.1 and yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, timeout=20, message="server started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


async def connected(lines: AsyncIterator[str]) -> None:
    """Wait for the stream's opening comment: from then on, every committed change reaches it."""
    async with asyncio.timeout(10):
        async for line in lines:
            if line == ": connected":
                return
    raise AssertionError("stream ended before it was connected")


async def next_events(lines: AsyncIterator[str], n: int, timeout: float = 10) -> list[Event]:
    """Read `n` events (comments skipped) from an SSE line stream, as EventSource dispatches them."""
    events: list[Event] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        async for line in lines:
            if line == "":
                if "data" in fields:
                    events.append(Event(fields.get("id", ""), fields.get("event"), json.loads(fields["data"])))
                    if len(events) == n:
                        return events
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    raise AssertionError(f"stream ended after {len(events)} events")
