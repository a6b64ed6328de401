"""The console as `salesops console` runs it: a huge request body with a bogus key leaves its memory alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from salesops.infra import free_port
from tests.support import eventually

pytestmark = pytest.mark.e2e

HUGE = 256 * 1024 * 1024
CHUNK = 1024 * 1024


async def huge_body() -> AsyncIterator[bytes]:
    chunk = b"x" * CHUNK
    for _ in range(HUGE // CHUNK):
        yield chunk


async def drain(request: Request) -> Response:
    """A service that reads whatever it is sent, as a service reads a body up to its own limit."""
    async for _ in request.stream():
        pass
    return Response(status_code=401)


@asynccontextmanager
async def sink_service() -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/v1/promotions", drain, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, message="the sink service did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def start_console(port: int, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "salesops", "console", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def test_a_huge_body_with_a_bogus_key_gets_413_and_the_console_stays_small(tmp_path: Path):
    port = free_port()
    async with sink_service() as service_url:
        env = {**os.environ, "SALESOPS_CONSOLE_PROMOTION_URL": service_url}
        log = (tmp_path / "console.log").open("ab")
        console = start_console(port, env, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:

                async def ready() -> bool:
                    try:
                        return (await client.get("/readyz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await eventually(ready, timeout=30, message="the console did not start")
                memory = psutil.Process(console.pid)
                before = memory.memory_info().rss
                headers = {"Authorization": "Bearer sk_bogus", "content-type": "application/json"}
                declared = await client.post(
                    "/api/promotion/v1/promotions",
                    content=huge_body(),
                    headers={**headers, "content-length": str(HUGE)},
                )
                streamed = await client.post("/api/promotion/v1/promotions", content=huge_body(), headers=headers)
                grown = memory.memory_info().rss - before
                still_serving = await client.get("/readyz")
        finally:
            console.terminate()
            await asyncio.to_thread(console.wait, 30)
            log.close()
    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text
    assert still_serving.status_code == 200
    # 256 MiB went by twice; the console read at most its 8 MiB limit of either.
    assert grown < 48 * 1024 * 1024, f"the console grew by {grown / 2**20:.0f} MiB"
