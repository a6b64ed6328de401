"""Webhook receivers on loopback for tests: a CRM that records what it receives, one that accepts and never
answers, and helpers to register endpoints and read their deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import uvicorn

from services.returns_service.settings import ReturnsSettings
from shared.settings import Settings
from tests.support import bearer, eventually

TODAY = date(2026, 11, 30)


@dataclass
class Receiver:
    """A CRM stand-in that records each request's headers and answers 200."""

    requests: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        self.requests.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def serving(app: Any, host: str, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, timeout=10, message=f"receiver on {host}:{port} started")
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@asynccontextmanager
async def hanging_endpoint() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """Accepts connections, reads nothing, answers nothing; yields its URL and the connections it holds."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks", held
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def settings_for(settings: Settings, **overrides: Any) -> ReturnsSettings:
    values: dict[str, Any] = {
        "clock_today": TODAY,
        "webhook_allow_private_targets": True,
        "webhook_backoff_initial_s": 0.05,
        "webhook_backoff_max_s": 0.2,
        "webhook_poll_interval_s": 0.05,
        **overrides,
    }
    return ReturnsSettings(**settings.model_dump(), **values)


def critical(complaint_id: str) -> dict[str, Any]:
    return {
        "complaint_id": complaint_id,
        "account_id": "ACME",
        "sku": "SKU-1",
        "category": "quality",
        "severity": "critical",
        "description": "smoke from the unit",
        "received_on": "2026-11-29",
    }


async def register(client: httpx.AsyncClient, key: str, url: str) -> str:
    response = await client.post("/v1/webhooks", json={"url": url}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def deliveries(client: httpx.AsyncClient, key: str, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=bearer(key))
    assert response.status_code == 200, response.text
    return list(response.json()["data"])
