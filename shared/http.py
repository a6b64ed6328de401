"""The HTTP plumbing every app shares: a request body limit, and trace context, metrics and a log line per
request."""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import problem_response
from shared.metrics import HttpMetrics
from shared.observability import logging_context
from shared.tracing import Tracing

log = structlog.get_logger("salesops.service")

# Probes and scrapes: counted, never logged.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class BodySizeLimit:
    """Answers 413 to request bodies over the limit, whether or not they declare a Content-Length.

    A streamed body is counted as the app reads it; once over the limit the 413 is sent at once and the
    app sees a disconnect, so whatever it does afterwards never reaches the client.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        received = 0
        response_started = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not response_started:
                    rejected = True
                    await self._too_large(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            413, "Content Too Large", f"the request body exceeds {self.max_bytes} bytes", instance=scope["path"]
        )

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header `name` (lower case), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")


class ObserveRequests:
    """Trace context, request metrics and one log line per request.

    A plain ASGI middleware rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every
    request in a task group of its own with a streamed copy of the response, a large share of the cost of a
    small request. The figures are taken when the response starts, as before, so streams (SSE) count their
    time to first byte.
    """

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing or Tracing()
        # The labelled series per (method, route template, status): found once rather than on every request.
        self._counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        series = self._counted.get((method, route, status))
        if series is None:
            series = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_duration.labels(method, route),
            )
            if len(self._counted) < 10_000:  # route templates and statuses are few; bounded all the same
                self._counted[(method, route, status)] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"traceparent")
        # With OpenTelemetry, the request's server span (FastAPI instrumentation, outside this middleware).
        traceparent = self.tracing.request_traceparent(incoming.decode("latin-1") if incoming is not None else None)
        scope.setdefault("state", {})["traceparent"] = traceparent
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                status = message["status"]
                route = _route_template(scope)
                method = scope["method"]
                requests, duration = self._series(method, route, status)
                requests.inc()
                duration.observe(elapsed)
                message = {**message, "headers": [*message.get("headers", []), (b"traceparent", traceparent.encode())]}
                if route not in QUIET_ROUTES:
                    log.info(
                        "request",
                        method=method,
                        path=scope["path"],
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                    )
            await send(message)

        with logging_context(traceparent):
            await self.app(scope, receive, observed_send)
