"""Load generators: a closed loop for throughput, an open loop for latency at a steady rate, and the
percentiles their figures are reported with. httpx on 127.0.0.1 only, bounded in count and in time."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class LoadResult:
    """What a closed-loop run did: completed requests, failures and per-request latencies."""

    completed: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # Open loop only: how late the sender got round to each due request (its own lag), and how many
    # requests waited for an in-flight slot because the system had fallen behind.
    sender_lag_s: list[float] = field(default_factory=list)
    held_back: int = 0

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "completed": self.completed,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_s": round(self.rate, 1),
            "latency_p50_ms": round(percentile(self.latencies_s, 50) * 1000, 2),
            "latency_p99_ms": round(percentile(self.latencies_s, 99) * 1000, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        if self.sender_lag_s:
            document["sender_lag_ms"] = {
                "p50": round(percentile(self.sender_lag_s, 50) * 1000, 2),
                "p99": round(percentile(self.sender_lag_s, 99) * 1000, 2),
                "max": round(max(self.sender_lag_s) * 1000, 2),
            }
            document["held_back_by_in_flight_cap"] = self.held_back
        return document


RequestFactory = Callable[[int], tuple[str, str, Any]]


async def closed_loop(
    base_url: str,
    make_request: RequestFactory,
    *,
    workers: int,
    max_requests: int,
    max_seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """N workers each sending the next request as soon as the previous one answered, until `max_requests`
    were sent or `max_seconds` passed. `make_request(i)` gives (method, path, json body)."""
    result = LoadResult()
    counter = iter(range(max_requests))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for index in counter:
                if time.perf_counter() >= deadline:
                    return
                method, path, body = make_request(index)
                sent = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body)
                except httpx.HTTPError:
                    result.failed += 1
                    continue
                result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
                if response.is_success:
                    result.completed += 1
                    result.latencies_s.append(time.perf_counter() - sent)
                else:
                    result.failed += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        result.elapsed_s = time.perf_counter() - started
    return result


async def open_loop(
    base_url: str,
    make_request: RequestFactory,
    *,
    rate_per_s: float,
    duration_s: float,
    on_sent: Callable[[int, float], None],
    headers: dict[str, str] | None = None,
    max_in_flight: int = 256,
) -> LoadResult:
    """Requests due on a fixed schedule (i / rate), whether or not earlier ones answered, so a slow system
    shows as latency instead of slowing the generator down. Latency counts from when a request was due, not
    from when it left: a sender held back by a system that falls behind (or by its own load) cannot hide the
    wait (no coordinated omission). How late the sender itself got round to each due request is kept beside
    it (`sender_lag_s`), since this sender shares the machine with what it measures. `on_sent(i, due)` gets the
    wall-clock time request i was due. In-flight requests are capped at the connection count, so an
    overloaded system queues requests here, on the schedule's clock, and not inside the HTTP client."""
    result = LoadResult()
    total = max(1, int(rate_per_s * duration_s))
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    gate = asyncio.Semaphore(max_in_flight)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60.0, limits=limits) as client:

        async def one(index: int, late: float, created: float) -> None:
            method, path, body = make_request(index)
            due = started + index / rate_per_s
            # The sender's own lag: how late its loop got round to the request (not counting a wait for an
            # in-flight slot, which is the system's backlog) plus how long the task took to start.
            result.sender_lag_s.append(max(0.0, late + time.perf_counter() - created))
            on_sent(index, wall_started + index / rate_per_s)
            try:
                response = await client.request(method, path, json=body)
            except httpx.HTTPError:
                result.failed += 1
                return
            finally:
                gate.release()
            result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
            if response.is_success:
                result.completed += 1
                result.latencies_s.append(time.perf_counter() - due)
            else:
                result.failed += 1

        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        wall_started = time.time()
        free = started  # when the loop was last released by the in-flight cap
        for index in range(total):
            due = started + index / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = time.perf_counter() - max(due, free)
            if gate.locked():
                result.held_back += 1
            await gate.acquire()
            free = time.perf_counter()
            tasks.append(asyncio.create_task(one(index, late, free)))
        await asyncio.gather(*tasks)
        result.elapsed_s = time.perf_counter() - started
    return result


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    return {
        "count": len(latencies_s),
        "p50_ms": round(percentile(latencies_s, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies_s, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies_s, 99) * 1000, 1),
        "max_ms": round(max(latencies_s, default=0.0) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies_s) * 1000, 1) if latencies_s else 0.0,
    }
