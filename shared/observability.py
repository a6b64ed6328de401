"""Observability: JSON logs carrying event and trace context, Prometheus metrics, W3C trace context."""

from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from shared.events import CloudEvent

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and the standard library (uvicorn, aiokafka, sqlalchemy) through one JSON renderer."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.contextvars.bind_contextvars(service=service)


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace_id, parent span id) of a valid W3C traceparent header, else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32:
        return None
    return match.group(1), match.group(2)


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: continues the parent's trace when there is one."""
    parsed = parse_traceparent(parent)
    trace_id = parsed[0] if parsed else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


@contextmanager
def bind_event_context(event: CloudEvent) -> Iterator[None]:
    """Every log line written while handling an event names the event and its trace."""
    traceparent = child_traceparent(event.traceparent)
    with structlog.contextvars.bound_contextvars(
        event_id=event.id,
        event_type=event.type,
        trace_id=traceparent.split("-")[1],
        span_id=traceparent.split("-")[2],
    ):
        yield


class Metrics:
    """The Prometheus metrics of one service process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "salesops_http_requests_total", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "salesops_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=r
        )
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
            "Messages sent to a dead-letter topic",
            ["consumer", "topic", "reason"],
            registry=r,
        )
