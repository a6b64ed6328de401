"""The alert stream over a real HTTP connection on loopback: live events, and a reconnect with
Last-Event-ID that replays exactly what was missed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from salesops.infra import free_port
from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.settings import Settings
from tests.support import bearer, eventually

TODAY = date(2026, 11, 30)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY, sse_poll_interval_s=0.5, sse_heartbeat_s=1)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run the service (with its lifespan) under uvicorn on 127.0.0.1 and yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server), timeout=20, message="service started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def next_events(lines: AsyncIterator[str], n: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Read `n` data events (comments and heartbeats skipped) from an SSE line stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        async for line in lines:
            if line == "":
                if "data" in current:
                    events.append(current)
                    if len(events) == n:
                        return events
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
    raise AssertionError(f"stream ended after {len(events)} events")


async def connected(lines: AsyncIterator[str]) -> None:
    """Wait for the stream's opening comment: from then on, every committed change reaches it."""
    async with asyncio.timeout(10):
        async for line in lines:
            if line == ": connected":
                return
    raise AssertionError("stream ended before it was connected")


def critical(n: int) -> dict[str, Any]:
    return {
        "complaint_id": f"C-{n}",
        "account_id": "ACME",
        "category": "quality",
        "severity": "critical",
        "description": "burning smell",
        "received_on": "2026-11-29",
    }


async def test_reconnect_with_last_event_id_gets_exactly_what_was_missed(returns_settings, api_keys) -> None:
    crm, desk = bearer(api_keys["crm"]), bearer(api_keys["returns-desk"])
    async with (
        serving(build_app(returns_settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        assert (await http.get("/v1/alerts/stream", headers=desk)).status_code == 403
        bad = await http.get("/v1/alerts/stream", headers={**crm, "Last-Event-ID": "abc"})
        assert bad.status_code == 422

        async with http.stream("GET", "/v1/alerts/stream", headers=crm) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            await connected(lines)
            assert 'salesops_sse_streams_open{stream="alerts"} 1.0' in (await http.get("/metrics")).text
            for n in (1, 2):
                assert (await http.post("/v1/complaints", json=critical(n), headers=desk)).status_code == 201
            first = await next_events(lines, 2)
        assert [json.loads(e["data"])["data"]["details"]["complaint_id"] for e in first] == ["C-1", "C-2"]
        assert json.loads(first[0]["data"])["change"] == "raised"
        last_id = first[-1]["id"]

        for n in (3, 4):  # while disconnected
            await http.post("/v1/complaints", json=critical(n), headers=desk)
        async with http.stream("GET", "/v1/alerts/stream", headers={**crm, "Last-Event-ID": last_id}) as stream:
            lines = stream.aiter_lines()
            missed = await next_events(lines, 2)
            await http.post("/v1/complaints", json=critical(5), headers=desk)
            [live] = await next_events(lines, 1)
        assert [json.loads(e["data"])["data"]["details"]["complaint_id"] for e in missed] == ["C-3", "C-4"]
        assert json.loads(live["data"])["data"]["details"]["complaint_id"] == "C-5"
        ids = [int(e["id"]) for e in [*first, *missed, live]]
        assert ids == sorted(ids) and len(set(ids)) == 5


async def test_idle_stream_sends_heartbeats(returns_settings, api_keys) -> None:
    comments: list[str] = []
    async with (
        serving(build_app(returns_settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", "/v1/alerts/stream", headers=bearer(api_keys["crm"])) as stream,
        asyncio.timeout(10),
    ):
        async for line in stream.aiter_lines():
            if line.startswith(":"):
                comments.append(line)
            if ": heartbeat" in comments:
                break
    assert comments[0] == ": connected"


@pytest.mark.parametrize(
    ("headers", "params", "field"),
    [
        ({"Last-Event-ID": "99999999999999999999"}, {}, "header.Last-Event-ID"),
        ({"Last-Event-ID": "9223372036854775808"}, {}, "header.Last-Event-ID"),  # one past the largest bigint
        ({"Last-Event-ID": "-1"}, {}, "header.Last-Event-ID"),
        ({"Last-Event-ID": "1e3"}, {}, "header.Last-Event-ID"),
        ({"Last-Event-ID": b"\xb2"}, {}, "header.Last-Event-ID"),  # a superscript two: a digit to str.isdigit
        ({}, {"last_event_id": "\u0663"}, "query.last_event_id"),  # an Arabic-Indic three
        ({}, {"last_event_id": "99999999999999999999"}, "query.last_event_id"),
    ],
)
async def test_last_event_id_out_of_range_answers_422_naming_it(
    returns_settings, api_keys, headers: dict[str, str | bytes], params: dict[str, str], field: str
) -> None:
    async with (
        serving(build_app(returns_settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        response = await http.get("/v1/alerts/stream", headers={**bearer(api_keys["crm"]), **headers}, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field


async def test_the_largest_event_id_is_accepted(returns_settings, api_keys) -> None:
    headers = {**bearer(api_keys["crm"]), "Last-Event-ID": str(2**63 - 1)}
    async with (
        serving(build_app(returns_settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", "/v1/alerts/stream", headers=headers) as stream,
    ):
        assert stream.status_code == 200
        await connected(stream.aiter_lines())


def write_keys(path: Path, keys: dict[str, tuple[str, list[str], bool]]) -> None:
    path.write_text(
        json.dumps({"keys": [{"name": n, "key": k, "scopes": s, "revoked": r} for n, (k, s, r) in keys.items()]})
    )


async def test_revoking_a_key_ends_the_streams_opened_with_it(returns_settings, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = {
        "crm": ("sk_crm_" + "c" * 24, ["alerts:read"], False),
        "other-crm": ("sk_other_" + "o" * 24, ["alerts:read"], False),
        "desk": ("sk_desk_" + "d" * 24, ["returns:write"], False),
    }
    write_keys(path, keys)
    settings = returns_settings.model_copy(update={"api_keys_file": path, "sse_poll_interval_s": 0.2})
    crm, other, desk = (bearer(keys[n][0]) for n in ("crm", "other-crm", "desk"))
    async with (
        serving(build_app(settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        http.stream("GET", "/v1/alerts/stream", headers=crm) as revoked_stream,
        http.stream("GET", "/v1/alerts/stream", headers=other) as kept_stream,
    ):
        revoked_lines, kept_lines = revoked_stream.aiter_lines(), kept_stream.aiter_lines()
        await connected(revoked_lines)
        await connected(kept_lines)
        assert (await http.post("/v1/complaints", json=critical(1), headers=desk)).status_code == 201
        assert len(await next_events(revoked_lines, 1)) == 1

        write_keys(path, {**keys, "crm": (keys["crm"][0], ["alerts:read"], True)})
        rest: list[str] = []
        async with asyncio.timeout(15):  # the key file is re-read every 2 s, the stream checks every poll
            async for line in revoked_lines:
                rest.append(line)
        assert ": key revoked" in rest
        assert (await http.get("/v1/alerts/stream", headers=crm)).status_code == 401

        # Only the revoked key's stream ended.
        assert (await http.post("/v1/complaints", json=critical(2), headers=desk)).status_code == 201
        kept = await next_events(kept_lines, 2)
        assert json.loads(kept[-1]["data"])["data"]["details"]["complaint_id"] == "C-2"
