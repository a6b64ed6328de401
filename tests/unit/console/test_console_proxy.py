"""The console's reverse proxy against a fake upstream served over real HTTP (so streaming is really tested)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salesops.console import ConsoleSettings, build_app
from salesops.console.app import PLOTLY_JS
from salesops.console.proxy import _console_location
from salesops.infra import free_port
from tests.support import eventually


class FakeUpstream:
    """Echoes what it received; its alert stream sends one event, then waits for the test to release the next."""

    def __init__(self) -> None:
        self.release_second_event = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.sink_requests = 0
        self.sink_bytes = 0
        self.app = Starlette(
            routes=[
                Route("/v1/echo", self.echo, methods=["GET", "POST", "PUT"]),
                Route("/v1/denied", self.denied),
                Route("/v1/alerts/stream", self.stream),
                Route("/v1/sink", self.sink, methods=["POST"]),
            ]
        )

    async def sink(self, request: Request) -> Response:
        self.sink_requests += 1
        async for chunk in request.stream():
            self.sink_bytes += len(chunk)
        return Response(status_code=204)

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


class CountingReceive:
    """What the console read of request bodies, counted at the server's edge."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.body_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


LIMIT = 64 * 1024


@pytest.fixture
async def counted_console(
    upstream: tuple[FakeUpstream, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, CountingReceive]]:
    _, url = upstream
    settings = ConsoleSettings.model_validate(
        {"returns_url": url, "planning_url": url, "promotion_url": url, "max_request_bytes": LIMIT}
    )
    app = CountingReceive(build_app(settings))
    async with serving(app) as console_url, httpx.AsyncClient(base_url=console_url, timeout=30) as client:
        yield client, app


@pytest.fixture
async def console(counted_console: tuple[httpx.AsyncClient, CountingReceive]) -> httpx.AsyncClient:
    return counted_console[0]


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
        headers={"content-type": "application/json", "Authorization": "Bearer k"},
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


BIG = 8 * 1024 * 1024  # over a hundred times the limit


async def big_body(chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(BIG // chunk):
        yield b"x" * chunk


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_body_gets_413_and_is_never_read_past_the_limit(counted_console, upstream, declared):
    console, counter = counted_console
    fake, _ = upstream
    headers = {"Authorization": "Bearer sk_bogus", "content-type": "application/json"}
    response = await console.post(
        "/api/planning/v1/sink", content=b"x" * BIG if declared else big_body(), headers=headers
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert str(LIMIT) in response.json()["detail"]
    if declared:
        # Refused on the declared length: not a byte read, nothing sent on.
        assert counter.body_bytes == 0
        assert fake.sink_requests == 0
    else:
        # Read chunk by chunk up to the limit: at most one socket read past it, never the whole body.
        assert counter.body_bytes <= LIMIT + 512 * 1024 < BIG
        assert fake.sink_bytes <= LIMIT
    # The console is still fine, and the same connection or a new one carries on.
    assert (await console.post("/api/planning/v1/sink", content=b"{}", headers=headers)).status_code == 204
    assert fake.sink_bytes <= LIMIT + 2


async def test_a_body_within_the_limit_streams_through_whole(console, upstream):
    fake, _ = upstream
    headers = {"Authorization": "Bearer k"}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024):
            yield b"y" * 1024

    assert (await console.post("/api/planning/v1/sink", content=chunks(), headers=headers)).status_code == 204
    assert fake.sink_bytes == LIMIT
    assert (await console.post("/api/planning/v1/sink", content=b"z" * LIMIT, headers=headers)).status_code == 204
    assert fake.sink_bytes == 2 * LIMIT


async def test_a_body_without_a_key_is_refused_before_it_is_read(counted_console, upstream):
    console, counter = counted_console
    fake, _ = upstream
    response = await console.post("/api/planning/v1/sink", content=b"x" * BIG)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization" in response.json()["detail"]
    assert counter.body_bytes == 0
    assert fake.sink_requests == 0


async def test_a_trailing_slash_redirect_points_at_the_console_not_the_service(console, upstream):
    _, upstream_url = upstream
    upstream_port = upstream_url.rsplit(":", 1)[1]
    response = await console.get("/api/planning/v1/echo/?sku=A", headers={"Authorization": "Bearer k"})
    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "/api/planning/v1/echo?sku=A"
    leaked = [f"{k}: {v}" for k, v in response.headers.items() if upstream_port in v or "127.0.0.1" in v]
    assert leaked == []
    followed = await console.get(response.headers["location"], headers={"Authorization": "Bearer k"})
    assert followed.status_code == 200
    assert followed.json()["query"] == [["sku", "A"]]


def test_locations_are_rewritten_to_console_paths():
    upstreams = {"promotion": "http://10.0.0.5:8001", "returns": "http://returns.internal/api"}
    assert _console_location("http://10.0.0.5:8001/v1/x?y=1", "promotion", upstreams) == "/api/promotion/v1/x?y=1"
    assert _console_location("/v1/promotions/BF", "promotion", upstreams) == "/api/promotion/v1/promotions/BF"
    # Another service's internal address maps to that service's console path; its path prefix is dropped.
    assert _console_location("http://returns.internal/api/v1/r", "promotion", upstreams) == "/api/returns/v1/r"
    assert _console_location("http://10.0.0.5:8002/v1/x", "promotion", upstreams) == "http://10.0.0.5:8002/v1/x"
    assert _console_location("https://example.com/a", "promotion", upstreams) == "https://example.com/a"
    assert _console_location("//10.0.0.5:8001/v1", "promotion", upstreams) == "//10.0.0.5:8001/v1"


async def test_every_console_response_carries_security_headers_and_the_page_has_no_inline_script(console):
    for path in ("/", "/static/console.js", "/vendor/plotly.min.js", "/api/planning/v1/echo", "/api/nope/x"):
        response = await console.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'", path
        assert policy["script-src"] == "'self'", path
        assert "unsafe" not in response.headers["content-security-policy"], path
    html = (await console.get("/")).text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts and all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers are scripts too"
    assert "style=" not in html
