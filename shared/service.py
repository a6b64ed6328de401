"""Assembly of one service: engine, producer, outbox relay, consumers, HTTP plumbing and lifespan."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import structlog
import swagger_ui_bundle
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import inbox, outbox
from shared.asyncapi import install_asyncapi
from shared.auth import KeyStore, identity_router
from shared.db import UnitOfWork, create_engine, database_ready, is_transient
from shared.errors import install_problem_handlers, problem_response, service_unavailable
from shared.events import ALL_TOPICS, CloudEvent
from shared.headers import API_SECURITY_HEADERS, SecurityHeaders
from shared.kafka import EventConsumer, Producer, Subscription
from shared.observability import Metrics, child_traceparent, configure_logging
from shared.openapi import install_openapi, operation_id
from shared.relay import OutboxRelay
from shared.settings import Settings

log = structlog.get_logger("salesops.service")

BackgroundTask = Callable[["Runtime"], Coroutine[Any, Any, None]]


@dataclass
class ServiceSpec:
    """What makes a service itself: its name, schema, tables, routes, subscriptions and background tasks."""

    name: str
    metadata: MetaData
    routers: Sequence[APIRouter]
    subscriptions: Sequence[Subscription] = ()
    background: Sequence[BackgroundTask] = ()
    description: str = ""
    # The contract topics this service is the producer of (described in its /asyncapi.json).
    publishes: Sequence[str] = ()
    version: str = "1.0.0"

    @property
    def schema(self) -> str:
        assert self.metadata.schema is not None
        return self.metadata.schema

    @property
    def source(self) -> str:
        return f"salesops/{self.name}-service"

    @property
    def outbox(self) -> Table:
        return self.metadata.tables[f"{self.schema}.outbox"]

    @property
    def inbox(self) -> Table:
        return self.metadata.tables[f"{self.schema}.inbox"]


@dataclass
class Runtime:
    """Everything a running service shares between requests, consumers and background tasks."""

    spec: ServiceSpec
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: Producer
    relay: OutboxRelay
    keys: KeyStore
    metrics: Metrics
    consumers: list[EventConsumer] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def unit_of_work(self, traceparent: str | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.sessionmaker,
            source=self.spec.source,
            record_outbox=lambda session, events: outbox.record_events(
                session, self.spec.outbox, events, max_bytes=self.settings.kafka_max_request_bytes
            ),
            on_commit=self.relay.wake,
            traceparent=traceparent,
        )

    async def claim(self, uow: UnitOfWork, consumer: str, event: CloudEvent) -> bool:
        return await inbox.claim(uow.session, self.spec.inbox, consumer, event)


def build_runtime(spec: ServiceSpec, settings: Settings) -> Runtime:
    engine = create_engine(settings)
    metrics = Metrics()
    producer = Producer(settings, client_id=f"{spec.name}-service", topics=ALL_TOPICS)
    relay = OutboxRelay(
        engine=engine,
        table=spec.outbox,
        producer=producer,
        name=spec.name,
        metrics=metrics,
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
        retention=timedelta(days=settings.relay_retention_days),
        max_attempts=settings.relay_max_attempts,
        republish_on_new_broker=settings.relay_republish_on_new_broker,
    )
    runtime = Runtime(
        spec=spec,
        settings=settings,
        engine=engine,
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        producer=producer,
        relay=relay,
        keys=KeyStore(settings.api_keys_file),
        metrics=metrics,
    )
    runtime.consumers = [
        EventConsumer(
            sub,
            settings=settings,
            producer=producer,
            unit_of_work=runtime.unit_of_work,
            claim=runtime.claim,
            metrics=metrics,
        )
        for sub in spec.subscriptions
    ]
    return runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    runtime = get_runtime(request)
    async with runtime.unit_of_work(request.state.traceparent) as uow:
        yield uow


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow)]


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
        declared = dict(scope.get("headers") or []).get(b"content-length")
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

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"traceparent")
        traceparent = child_traceparent(incoming.decode("latin-1") if incoming is not None else None)
        scope.setdefault("state", {})["traceparent"] = traceparent
        started = time.perf_counter()
        _, trace_id, span_id, _ = traceparent.split("-", 3)

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                status = message["status"]
                route = _route_template(scope)
                metrics: Metrics = scope["app"].state.runtime.metrics
                method = scope["method"]
                metrics.http_requests.labels(method, route, str(status)).inc()
                metrics.http_duration.labels(method, route).observe(elapsed)
                message = {**message, "headers": [*message.get("headers", []), (b"traceparent", traceparent.encode())]}
                if route not in {"/healthz", "/readyz", "/metrics"}:
                    log.info(
                        "request",
                        method=method,
                        path=scope["path"],
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                    )
            await send(message)

        with structlog.contextvars.bound_contextvars(trace_id=trace_id, span_id=span_id):
            await self.app(scope, receive, observed_send)


def create_app(spec: ServiceSpec, settings: Settings) -> FastAPI:
    configure_logging(spec.name, settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(spec, settings)
        app.state.runtime = runtime
        runtime.tasks.append(asyncio.create_task(runtime.relay.run(), name="outbox-relay"))
        for consumer in runtime.consumers:
            runtime.tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{consumer.subscription.name}"))
        for task in spec.background:
            runtime.tasks.append(asyncio.create_task(task(runtime), name=getattr(task, "__name__", "background")))
        log.info("service started", consumers=[c.subscription.name for c in runtime.consumers])
        try:
            yield
        finally:
            await _shutdown(runtime)

    app = FastAPI(
        title=f"salesops {spec.name} service",
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    install_offline_docs(app)
    install_openapi(app)
    install_asyncapi(app, spec.name, spec.publishes, spec.subscriptions, settings.kafka_bootstrap_servers)
    app.state.settings = settings
    install_problem_handlers(app)

    @app.exception_handler(outbox.EventTooLarge)
    async def _event_too_large(request: Request, exc: outbox.EventTooLarge) -> JSONResponse:
        return problem_response(
            413,
            "Content Too Large",
            exc.detail,
            errors=[{"field": "body", "message": exc.detail, "type": "event_too_large"}],
            instance=request.url.path,
            event_type=exc.event_type,
            event_bytes=exc.size,
            max_event_bytes=exc.limit,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            response = service_unavailable(request, exc)
        else:
            log.exception("unhandled error")
            response = problem_response(
                500, "Internal Server Error", "an unexpected error occurred", instance=request.url.path
            )
        # Answered from outside the middleware stack, so the headers the middleware adds are set here.
        response.headers.update(API_SECURITY_HEADERS)
        return response

    app.add_middleware(ObserveRequests)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    app.include_router(health_router())
    app.include_router(identity_router())
    for router in spec.routers:
        app.include_router(router)
    return app


def install_offline_docs(app: FastAPI) -> None:
    """`/docs` from the Swagger UI assets of an installed package: works offline, no CDN."""
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="data:,",
        )
        page.headers["content-security-policy"] = docs_policy(bytes(page.body))
        return page


def docs_policy(html: bytes) -> str:
    """The docs page's own policy: its assets from this origin and, of inline scripts, only the one it ships
    (allowed by its hash)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in re.findall(rb"<script>(.*?)</script>", html, re.DOTALL)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the database and the broker are reachable",
        description=(
            "503 when the database or the broker is unreachable. Parked outbox events (ones the broker refuses) "
            "leave the service ready, since it serves and publishes everything else, but turn `status` into "
            "`degraded` and are counted under `checks.outbox`."
        ),
        responses={503: {"description": "a dependency is unreachable"}},
    )
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        db_ok, broker_ok = await asyncio.gather(database_ready(runtime.engine), runtime.producer.ready())
        parked = await _parked_or_none(runtime) if db_ok else None
        ready = db_ok and broker_ok
        body: dict[str, Any] = {
            "status": "unavailable" if not ready else "degraded" if parked else "ready",
            "checks": {
                "database": "ok" if db_ok else "unreachable",
                "broker": "ok" if broker_ok else "unreachable",
                "outbox": "unknown" if parked is None else f"{parked} parked" if parked else "ok",
            },
        }
        if parked:
            body["parked_events"] = parked
            body["operator_command"] = f"salesops outbox list-parked --service {runtime.spec.name}"
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(runtime: RuntimeDep) -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _parked_or_none(runtime: Runtime, timeout_s: float = 2.0) -> int | None:
    try:
        async with asyncio.timeout(timeout_s):
            return await runtime.relay.count_parked()
    except Exception:
        return None


async def _shutdown(runtime: Runtime) -> None:
    """Drain: stop consumers after their current event, flush the relay, then close connections."""
    grace = runtime.settings.shutdown_grace_s
    for consumer in runtime.consumers:
        consumer.stop()
    runtime.relay.stop()
    consumer_tasks = [t for t in runtime.tasks if t.get_name().startswith(("consumer-", "outbox-relay"))]
    if consumer_tasks:
        _, still_running = await asyncio.wait(consumer_tasks, timeout=grace)
        for task in still_running:
            task.cancel()
    await runtime.relay.drain(timeout_s=min(5.0, grace))
    for task in runtime.tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    await runtime.producer.stop()
    await runtime.engine.dispose()
    log.info("service stopped")
