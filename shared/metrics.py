"""Prometheus metrics: those of HTTP (every app, the console included) and those of a service's plumbing, each
app in a registry of its own. Helpers for what a service counts itself (open streams, webhook deliveries)."""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
