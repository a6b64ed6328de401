"""The console's reverse proxy against a fake upstream served over real HTTP (so streaming is really tested)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from salesops.console import ConsoleSettings, build_app
from salesops.console.app import PLOTLY_JS
from salesops.infra import free_port
from tests.support import eventually


class FakeUpstream:
    """Echoes what it received; its alert stream sends one event, then waits for the test to release the next."""

    def __init__(self) -> None:
        self.release_second_event = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/echo", self.echo, methods=["GET", "POST", "PUT"]),
                Route("/v1/denied", self.denied),
                Route("/v1/alerts/stream", self.stream),
            ]
        )

    async def echo(self, request: Request) -> Response:
        body = {
            "method": request.method,
            "headers": {k: v for k, v in request.headers.items()},
            "query": list(request.query_params.multi_items()),
            "body": (await request.body()).decode(),
        }
        return JSONResponse(body, status_code=201 if request.method == "POST" else 200, headers={"x-upstream": "yes"})

    async def denied(self, request: Request) -> Response:
        return JSONResponse(
            {"title": "Unauthorized", "detail": "no key"},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
            media_type="application/problem+json",
        )

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            after = request.headers.get("last-event-id", "0")
            try:
                yield f"id: {int(after) + 1}\ndata: {json.dumps({'n': 1})}\n\n".encode()
                await self.release_second_event.wait()
                yield b": heartbeat\n\n"
                yield f"id: {int(after) + 2}\ndata: {json.dumps({'n': 2})}\n\n".encode()
                await asyncio.Event().wait()  # a live stream never ends on its own
            finally:
                self.stream_closed.set()

        return StreamingResponse(events(), media_type="text/event-stream")


@asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, message="test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    async with serving(fake.app) as url:
        yield fake, url
    fake.release_second_event.set()


@pytest.fixture
async def console(upstream: tuple[FakeUpstream, str]) -> AsyncIterator[httpx.AsyncClient]:
    _, url = upstream
    settings = ConsoleSettings.model_validate({"returns_url": url, "planning_url": url, "promotion_url": url})
    async with serving(build_app(settings)) as console_url, httpx.AsyncClient(base_url=console_url) as client:
        yield client


async def test_authorization_and_resume_headers_reach_the_service_but_cookies_do_not(console):
    response = await console.get(
        "/api/planning/v1/echo",
        headers={"Authorization": "Bearer sk_planner_x", "Last-Event-ID": "41", "Cookie": "session=secret"},
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["authorization"] == "Bearer sk_planner_x"
    assert seen["last-event-id"] == "41"
    assert "cookie" not in seen
    assert response.headers["x-upstream"] == "yes"


async def test_method_query_body_and_status_pass_through(console):
    response = await console.post(
        "/api/promotion/v1/echo?sku=A&sku=B&status=at_risk",
        content=b'{"promotion_id": "P"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["query"] == [["sku", "A"], ["sku", "B"], ["status", "at_risk"]]
    assert echoed["body"] == '{"promotion_id": "P"}'
    assert echoed["headers"]["content-type"] == "application/json"


async def test_service_errors_come_back_unchanged(console):
    response = await console.get("/api/returns/v1/denied")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "no key"


async def test_server_sent_events_stream_through_unbuffered(console, upstream):
    fake, _ = upstream
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "7", "Authorization": "Bearer k"}
    async with console.stream("GET", "/api/returns/v1/alerts/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = ""
        chunks = response.aiter_text()

        async def read_until(marker: str) -> None:
            nonlocal received
            while marker not in received:
                received += await anext(chunks)

        # The upstream holds the second event until the first has reached the browser side: a buffering
        # proxy would time out here.
        await asyncio.wait_for(read_until("id: 8\n"), timeout=5)
        assert "id: 9" not in received
        fake.release_second_event.set()
        await asyncio.wait_for(read_until("id: 9\n"), timeout=5)
    assert 'data: {"n": 2}' in received


async def test_a_browser_going_away_closes_the_stream_to_the_service(console, upstream):
    fake, _ = upstream
    async with console.stream("GET", "/api/returns/v1/alerts/stream", headers={"Accept": "text/event-stream"}) as r:
        assert "id: 1" in await asyncio.wait_for(anext(r.aiter_text()), timeout=5)
    await asyncio.wait_for(fake.stream_closed.wait(), timeout=10)


async def test_unknown_service_is_a_404_problem(console):
    response = await console.get("/api/inventory/v1/items")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "inventory" in response.json()["detail"]


async def test_unreachable_service_is_a_502_problem(console):
    closed = ConsoleSettings.model_validate({"fulfillment_url": f"http://127.0.0.1:{free_port()}"})
    async with serving(build_app(closed)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/api/fulfillment/v1/spikes")
    assert response.status_code == 502
    assert "fulfillment" in response.json()["detail"]


async def test_the_page_and_plotly_come_from_the_console_itself(console):
    page = await console.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<label for="sku">' in html and '<label for="api-key">' in html
    assert 'aria-live="polite"' in html
    assert "/vendor/plotly.min.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    plotly = await console.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200
    assert len(plotly.content) == PLOTLY_JS.stat().st_size > 1_000_000
    assert (await console.get("/static/console.js")).status_code == 200
    assert (await console.get("/readyz")).json() == {"status": "ready"}
