"""The wrk driver: its report is parsed exactly, its script gives every request its own id, and a real wrk run
against a loopback server sends exactly the requests it reports, with no id twice."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from salesops.bench import wrk
from salesops.bench.harness import wait_until

WRK_STDOUT = """Running 2s test @ http://127.0.0.1:8123
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.22ms    2.38ms  19.93ms   83.41%
  2653 requests in 2.01s, 0.98MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1322.79
WRK_REPORT {"requests": 2653, "duration_us": 2010000, "bytes": 1027604, "errors": {"connect": 0, "read": 1, \
"write": 0, "status": 3, "timeout": 2}, "latency_us": {"min": 215, "mean": 3221.5, "max": 19930, "p50": 2222, \
"p90": 8004, "p99": 17443, "p999": 19930}}
"""


def test_the_report_line_is_read_from_wrk_output() -> None:
    result = wrk.parse_report(WRK_STDOUT)

    assert result.requests == 2653
    assert result.duration_s == pytest.approx(2.01)
    assert result.errors == {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2}
    assert result.latency_ms["p99"] == pytest.approx(17.443)
    assert result.latency_ms["mean"] == pytest.approx(3.2215, abs=1e-3)
    # 4xx/5xx answers are not successes; socket errors never counted as requests.
    assert result.succeeded == 2650
    assert result.failed == 6
    assert result.rate == pytest.approx(2650 / 2.01)
    assert result.summary()["per_s"] == pytest.approx(1318.4, abs=0.1)


def test_output_without_a_report_is_an_error_not_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="no wrk report"):
        wrk.parse_report("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_the_script_quotes_bodies_and_headers_verbatim() -> None:
    lua = wrk.script(
        "POST", "/v1/returns", ['{"id": "@ID@", "note": "a]]b"}'], {"Authorization": "Bearer x]]y]=]z"}, "run1"
    )

    # Long strings whose level no value closes early: the Lua sees the bytes unchanged.
    assert '[=[{"id": "@ID@", "note": "a]]b"}]=]' in lua
    assert "[ [[Authorization]] ] = [==[Bearer x]]y]=]z]==]" in lua
    assert 'local prefix = "run1"' in lua
    assert 'body:gsub("@ID@", prefix .. "-" .. thread_id .. "-" .. counter)' in lua


def test_a_path_that_would_break_the_script_is_refused() -> None:
    with pytest.raises(ValueError, match="not usable"):
        wrk.script("POST", '/v1/"returns', [], {}, "run1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_real_run_sends_a_distinct_id_in_every_request(tmp_path: Path) -> None:
    try:
        await asyncio.to_thread(wrk.ensure_wrk)
    except wrk.WrkUnavailable as exc:
        pytest.skip(str(exc))
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append({"path": scope["path"], "auth": dict(scope["headers"]).get(b"authorization"), **json.loads(body)})
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        assert await wait_until(started, timeout_s=10, interval_s=0.02)
        result = await wrk.run(
            f"http://127.0.0.1:{port}",
            method="POST",
            path="/things",
            bodies=['{"id": "A-@ID@", "kind": "a"}', '{"id": "B-@ID@", "kind": "b"}'],
            headers={"Authorization": "Bearer k"},
            prefix="t1",
            connections=4,
            seconds=1,
            workdir=tmp_path,
        )
    finally:
        server.should_exit = True
        await serving

    assert result.requests > 50 and result.failed == 0
    # Requests in flight when wrk stops are served but not counted: at most one per connection.
    assert result.requests <= len(seen) <= result.requests + 4
    ids = [s["id"] for s in seen]
    assert len(set(ids)) == len(ids)
    assert {s["kind"] for s in seen} == {"a", "b"}
    assert all(s["path"] == "/things" and s["auth"] == b"Bearer k" for s in seen)
    assert all(i.split("-", 1)[1].startswith("t1-1-") for i in ids)


def test_as_root_wrk_is_installed_with_apt_get_updating_the_lists_only_on_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wrk.os, "geteuid", lambda: 0)
    monkeypatch.setattr(wrk.shutil, "which", lambda name, path=None: "/usr/bin/apt-get" if name == "apt-get" else None)

    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    assert wrk._install_commands() == [install, ["apt-get", "update"], install]


def test_without_root_or_sudo_the_measure_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrk.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(wrk.shutil, "which", lambda name, path=None: None)

    with pytest.raises(wrk.WrkUnavailable, match="apt-get install wrk"):
        wrk.ensure_wrk()


def test_with_sudo_the_install_never_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrk.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(wrk.shutil, "which", lambda name, path=None: f"/usr/bin/{name}" if name != "wrk" else None)

    commands = wrk._install_commands()
    assert all(c[:2] == ["sudo", "-n"] for c in commands)
