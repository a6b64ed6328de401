"""Observability: JSON logs carrying event and trace context, and W3C trace context made by hand (what tracing
does when OpenTelemetry is off, see `shared.tracing`). The Prometheus metrics are in `shared.metrics`."""

from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from shared.metrics import Metrics

__all__ = ["Metrics", "child_traceparent", "configure_logging", "logging_context", "parse_traceparent"]

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
        # Filtered first: a debug line below the level costs no rendering.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
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
    # A line per request or outgoing HTTP call (httpx logs each at INFO): access logs, not the service's own.
    for noisy in ("aiokafka", "uvicorn.access", "httpx"):
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
def logging_context(traceparent: str | None, **fields: object) -> Iterator[None]:
    """Every log line written inside names the trace and span of `traceparent` and carries `fields` (the event
    being handled, say)."""
    parsed = _TRACEPARENT.match(traceparent or "")
    trace = {"trace_id": parsed.group(1), "span_id": parsed.group(2)} if parsed else {}
    # Bound and then reset to what they were by their tokens: the same as `bound_contextvars`, without reading the
    # whole context first (this runs around every request).
    tokens = structlog.contextvars.bind_contextvars(**trace, **fields)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
