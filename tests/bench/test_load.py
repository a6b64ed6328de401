"""The open-loop sender: latency counts from when a request was due, a system that falls behind holds requests
back at the in-flight cap (counted), and the sender's own lag is kept apart from that wait."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from salesops.bench.harness import wait_until
from salesops.bench.load import open_loop, percentile

SERVICE_S = 0.05


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_slow_system_shows_as_latency_from_the_due_time_not_as_a_slower_sender() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(SERVICE_S)
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    due: dict[int, float] = {}
    try:

        async def started() -> bool:
            return bool(server.started)

        assert await wait_until(started, timeout_s=10, interval_s=0.02)
        result = await open_loop(
            f"http://127.0.0.1:{port}",
            lambda i: ("POST", "/things", {"i": i}),
            rate_per_s=100,
            duration_s=0.3,
            on_sent=lambda i, wall: due.__setitem__(i, wall),
            max_in_flight=2,
        )
    finally:
        server.should_exit = True
        await serving

    assert result.completed == 30 and result.failed == 0
    # Two in flight at 50 ms each serve 40/s against 100/s offered: requests wait for a slot, counted. Most of
    # the 28 after the first two find both slots taken; a sender starved of CPU sends some late enough to find
    # one free, so the bound leaves room for that.
    assert result.held_back >= 10
    # The last request was due at 0.29 s but could only be served after the 28 before it: ~0.75 s in all.
    assert max(result.latencies_s) >= 15 * SERVICE_S - 0.3
    assert min(result.latencies_s) >= SERVICE_S
    # The wait for a slot is the system's; the sender itself kept its schedule (its own lag is a small part
    # of what the requests waited, however busy the machine).
    assert percentile(result.sender_lag_s, 50) < percentile(result.latencies_s, 50) / 2
    assert len(result.sender_lag_s) == 30
    # on_sent gets the due times: one every 10 ms.
    gaps = [due[i + 1] - due[i] for i in range(29)]
    assert all(abs(g - 0.01) < 1e-6 for g in gaps)
    assert "held_back_by_in_flight_cap" in result.summary()
