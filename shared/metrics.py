"""Prometheus metrics: those of HTTP (every app, the console included) and those of a service's plumbing, each
app in a registry of its own. Helpers for what a service counts itself (open streams, webhook deliveries), and
for what its process shows of itself (the database pool, the event loop's lag)."""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Buckets of short waits, from a tenth of a millisecond (a free pooled connection) to the pool's timeout (10 s).
WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How often the event loop's lag is sampled: a sleep this long, and by how much it overshoots.
LOOP_LAG_INTERVAL_S = 0.1


def observe_many(histogram: Histogram, counts: Mapping[float, int]) -> None:
    """Observe each amount of `counts` that many times: the same buckets, count and sum as that many
    `histogram.observe` calls, in one increment per bucket touched and one of the sum (prometheus-client observes
    a value at a time, each call taking its locks). Uses the histogram's `_upper_bounds`, `_buckets` and `_sum`,
    the fields `observe` itself updates (the client's version is pinned; a test holds the two to the same
    samples)."""
    if not counts:
        return
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    buckets: Tally[int] = Tally()
    total = 0.0
    for amount, times in counts.items():
        # `observe` counts an amount in the first bucket whose bound it does not exceed.
        buckets[bisect_left(bounds, amount)] += times
        total += amount * times
    histogram._sum.inc(total)
    for index, times in buckets.items():
        histogram._buckets[index].inc(times)


class HttpMetrics:
    """Requests served, by route template and status, and their latency (to the first byte for streams)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "salesops_http_requests_total", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "salesops_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=r
        )


class Streams:
    """Open server-sent event streams, by stream name: `with metrics.streams.open("alerts"): ...` around the
    generator's body keeps the gauge right whichever way the stream ends."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "salesops_sse_streams_open", "Server-sent event streams open now", ["stream"], registry=registry
        )

    @contextlib.contextmanager
    def open(self, stream: str) -> Iterator[None]:
        gauge = self.gauge.labels(stream)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()


class Webhooks:
    """Webhook delivery per endpoint: the dispatcher sets the backlog it finds when it claims due deliveries
    (`backlog(endpoint_id, n)`) and counts each attempt (`attempt(endpoint_id, ok=...)`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog_gauge = Gauge(
            "salesops_webhook_backlog_deliveries",
            "Webhook deliveries not yet delivered (due now or waiting for a retry), by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self.attempts = Counter(
            "salesops_webhook_attempts_total",
            "Webhook delivery attempts, by endpoint and outcome (delivered, failed)",
            ["endpoint", "outcome"],
            registry=registry,
        )

    def backlog(self, endpoint: str, deliveries: int) -> None:
        self.backlog_gauge.labels(endpoint).set(deliveries)

    def attempt(self, endpoint: str, *, ok: bool) -> None:
        self.attempts.labels(endpoint, "delivered" if ok else "failed").inc()

    def forget_backlog(self, endpoint: str) -> None:
        """No backlog left: the endpoint's backlog series goes away (absent reads as none)."""
        with contextlib.suppress(KeyError):
            self.backlog_gauge.remove(endpoint)

    def forget(self, endpoint: str) -> None:
        """An endpoint deleted: its series go away rather than stay at their last value."""
        with contextlib.suppress(KeyError):
            self.backlog_gauge.remove(endpoint)
        for outcome in ("delivered", "failed"):
            with contextlib.suppress(KeyError):
                self.attempts.remove(endpoint, outcome)


class Pool(Protocol):
    """What the pool gauges read of a connection pool (SQLAlchemy's `QueuePool`; `waiting` too when it has it, as
    `shared.db.TimedPool` does)."""

    def size(self) -> int: ...
    def checkedin(self) -> int: ...
    def checkedout(self) -> int: ...


class _PoolGauges(Collector):
    """Gauges of each service's pool, read from the pool when scraped (nothing runs between scrapes)."""

    def __init__(self) -> None:
        self.pools: dict[str, Callable[[], Pool]] = {}

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily(
            "salesops_db_pool_size",
            "Connections the database pool keeps (its size; it may open up to its overflow more)",
            labels=["service"],
        )
        open_ = GaugeMetricFamily(
            "salesops_db_pool_connections", "Database connections the pool holds open now", labels=["service"]
        )
        out = GaugeMetricFamily(
            "salesops_db_pool_checked_out_connections",
            "Database connections checked out of the pool now (in use by a request, a consumer or a task)",
            labels=["service"],
        )
        waiting = GaugeMetricFamily(
            "salesops_db_pool_waiting_checkouts",
            "Checkouts waiting now for a database connection (all taken) or for a new one to open",
            labels=["service"],
        )
        for service, current in self.pools.items():
            pool = current()
            size.add_metric([service], pool.size())
            open_.add_metric([service], pool.checkedin() + pool.checkedout())
            out.add_metric([service], pool.checkedout())
            waiting.add_metric([service], getattr(pool, "waiting", 0))
        return [size, open_, out, waiting]


class Process:
    """How the process itself is doing: the wait for a database connection (`checkout_wait`, given to
    `shared.db.create_engine`), the pool's gauges (`watch_pool`) and the event loop's lag (`watch_loop`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pool_wait = Histogram(
            "salesops_db_pool_checkout_wait_seconds",
            "Time to get a database connection from the pool: waiting for a free one when all are taken, or "
            "opening a new one",
            ["service"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "salesops_event_loop_lag_seconds",
            f"How late the event loop wakes a task from a {LOOP_LAG_INTERVAL_S:g} s sleep (sampled every"
            f" {LOOP_LAG_INTERVAL_S:g} s): how long ready work waits, behind other work or for a CPU",
            ["service"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._pools = _PoolGauges()
        registry.register(self._pools)

    def checkout_wait(self, service: str) -> Callable[[float], None]:
        return self.pool_wait.labels(service).observe

    def watch_pool(self, service: str, pool: Callable[[], Pool]) -> None:
        """Report the pool `pool()` returns when scraped (a function, since an engine replaces its pool when
        disposed)."""
        self._pools.pools[service] = pool

    async def watch_loop(self, service: str, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
        """Sample the event loop's lag until cancelled: one sleep of `interval_s` after another, each observed by
        how much it overshot."""
        lag = self.loop_lag.labels(service)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval_s)
            lag.observe(max(0.0, loop.time() - started - interval_s))


class Metrics(HttpMetrics):
    """The Prometheus metrics of one service process."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.outbox_published = Counter(
            "salesops_outbox_published_total", "Outbox rows published to Kafka", ["service"], registry=r
        )
        self.outbox_delay = Histogram(
            "salesops_outbox_publish_delay_seconds",
            "Time from an outbox row's commit to its publication",
            ["service"],
            registry=r,
        )
        self.relay_errors = Counter(
            "salesops_outbox_relay_errors_total", "Failed relay batches (retried)", ["service"], registry=r
        )
        self.outbox_pending = Gauge(
            "salesops_outbox_pending_rows",
            "Outbox rows waiting to be published (parked rows aside)",
            ["service"],
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "salesops_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row waiting to be published; 0 when none waits",
            ["service"],
            registry=r,
        )
        self.outbox_parked = Counter(
            "salesops_outbox_parked_total",
            "Outbox rows parked because the broker refuses them, by the error it gave",
            ["service", "error"],
            registry=r,
        )
        self.outbox_parked_rows = Gauge(
            "salesops_outbox_parked_rows",
            "Outbox rows parked now, waiting for an operator (`salesops outbox list-parked`)",
            ["service"],
            registry=r,
        )
        self.outbox_republished = Counter(
            "salesops_outbox_republished_total",
            "Outbox rows published again because the broker came back without its log (embedded broker)",
            ["service"],
            registry=r,
        )
        self.consumed = Counter(
            "salesops_events_consumed_total",
            "Events read by consumers, by outcome (processed, duplicate, ignored)",
            ["consumer", "type", "outcome"],
            registry=r,
        )
        self.handle_seconds = Histogram(
            "salesops_event_handle_seconds", "Time to handle one event", ["consumer", "type"], registry=r
        )
        self.retries = Counter("salesops_event_retries_total", "Handler retries", ["consumer", "kind"], registry=r)
        self.dead_lettered = Counter(
            "salesops_events_dead_lettered_total",
            "Messages sent to a dead-letter topic, by the consumer, the topic they were read from and the reason",
            ["consumer", "topic", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "salesops_consumer_lag_messages",
            "Messages of a partition the consumer group has not handled yet (high watermark - position), "
            "updated after each fetch",
            ["consumer", "topic", "partition"],
            registry=r,
        )
        self.streams = Streams(r)
        self.webhooks = Webhooks(r)
        self.process = Process(r)
