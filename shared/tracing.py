"""Trace context from the HTTP request through the outbox and Kafka to every consumer and webhook delivery.

Every event carries the W3C `traceparent` of what caused it in its CloudEvents `traceparent` extension, always.
With OpenTelemetry configured (the `otel` extra installed, and `OTEL_EXPORTER_OTLP_ENDPOINT` or
`SALESOPS_OTEL_ENABLED` set) those trace parents are real spans, exported over OTLP: the request's (FastAPI
instrumentation), the relay's send of each event, each consumer's processing, the database calls (asyncpg) and
outgoing HTTP (httpx) in between; see `shared.otel`. Without it the same trace and span ids are made by hand so
that log lines, responses and events still agree on one trace id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI

from shared.events import CloudEvent
from shared.observability import child_traceparent
from shared.settings import Settings

log = structlog.get_logger("salesops.tracing")

SendDone = Callable[[BaseException | None], None]
"""Ends the span of one send: with the error that refused the record, or None once it was acknowledged."""


@dataclass(frozen=True)
class Delivery:
    """Where a consumed record came from."""

    consumer: str
    topic: str
    partition: int
    offset: int


class Tracing:
    """Trace context without OpenTelemetry: each step gets a new span id in the trace of what caused it."""

    enabled = False

    def instrument_app(self, app: FastAPI) -> None:
        """Nothing to instrument."""

    def request_traceparent(self, incoming: str | None) -> str:
        """The traceparent of the request being served: a child of the caller's, or a new trace."""
        return child_traceparent(incoming)

    @contextmanager
    def consuming(self, event: CloudEvent, delivery: Delivery) -> Iterator[str]:
        """Around the handling of one consumed event; yields the traceparent of that handling, the parent of
        the events it publishes."""
        yield child_traceparent(event.traceparent)

    @contextmanager
    def consuming_batch(self, consumer: str, events: Sequence[CloudEvent]) -> Iterator[str | None]:
        """Around a batch handled in one unit of work (`Subscription.finish`); yields the traceparent of the
        batch's own work, if it has one."""
        yield None

    def sending(self, payload: bytes, *, topic: str, key: str) -> SendDone:
        """The relay sends one outbox row (the serialised event); call the result when the broker answered."""
        return _nothing

    def annotate(self, name: str, attributes: Mapping[str, str | int | float | bool]) -> None:
        """Note something on the current span (a retry, say)."""

    def failed(self, reason: str) -> None:
        """Mark the current span as failed (a webhook attempt the receiver refused, say)."""

    @contextmanager
    def delivering(self, traceparent: str | None, *, endpoint: str, url: str) -> Iterator[dict[str, str]]:
        """Around one webhook delivery of an event or change that carried `traceparent`: yields the headers that
        let the receiver continue the trace (`traceparent`). With OpenTelemetry the delivery is a span of the
        event's trace, and the HTTP call (httpx instrumentation) a child of it."""
        yield {"traceparent": child_traceparent(traceparent)} if traceparent else {}

    def flush(self) -> None:
        """Export what is still buffered (on shutdown)."""


def _nothing(_: BaseException | None) -> None:
    return None


def otel_configured(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """Tracing is off unless asked for: `SALESOPS_OTEL_ENABLED`, or an OTLP endpoint in the standard variables;
    `OTEL_SDK_DISABLED=true` turns it off whatever else says."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return settings.otel_enabled or any(
        environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_for(service: str, settings: Settings) -> Tracing:
    """The tracing of one service: OpenTelemetry when configured and installed, else trace context by hand."""
    if not otel_configured(settings):
        return Tracing()
    try:
        from shared.otel import OpenTelemetryTracing
    except ImportError as exc:
        log.warning("OpenTelemetry is configured but not installed (pip install 'salesops[otel]')", error=repr(exc))
        return Tracing()
    tracing: Any = OpenTelemetryTracing.configure(service)
    assert isinstance(tracing, Tracing)
    return tracing
