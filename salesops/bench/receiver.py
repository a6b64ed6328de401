"""A loopback CRM for the latency measure: a bare ASGI app that notes when each webhook arrived (wall clock,
keyed by the alert's complaint id) and hands the notes back on `GET /received`. Run with uvicorn."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import Receive, Scope, Send

received: dict[str, float] = {}


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        arrived = time.time()
        document: dict[str, Any] = json.loads(b"".join(chunks))
        data = document.get("data", {})
        key = (data.get("details") or {}).get("complaint_id") or data.get("id", "")
        # The first delivery counts; a retry of the same alert is not a new arrival.
        received.setdefault(key, arrived)
        await _reply(send, 204, b"")
        return
    if scope["path"] == "/received":
        await _reply(send, 200, json.dumps(received).encode())
        return
    await _reply(send, 200, b'{"status": "ok"}')
