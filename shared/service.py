"""Assembly of one service: the app, its middleware and documents, and the lifespan that starts and drains the
relay, the consumers and the background tasks. What a service is made of is in `shared.runtime`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared import outbox
from shared.asyncapi import install_asyncapi
from shared.auth import identity_router
from shared.db import is_transient
from shared.docs import install_offline_docs
from shared.errors import install_problem_handlers, problem_response, service_unavailable
from shared.headers import API_SECURITY_HEADERS, SecurityHeaders, install_cors
from shared.health import health_router
from shared.http import BodySizeLimit, ObserveRequests
from shared.metrics import Metrics
from shared.observability import configure_logging
from shared.openapi import install_openapi, operation_id
from shared.runtime import (
    BackgroundTask,
    Runtime,
    RuntimeDep,
    ServiceSpec,
    UnitOfWorkDep,
    build_runtime,
    get_runtime,
    get_uow,
)
from shared.settings import Settings
from shared.tracing import tracing_for

__all__ = [
    "BackgroundTask",
    "Runtime",
    "RuntimeDep",
    "ServiceSpec",
    "UnitOfWorkDep",
    "build_runtime",
    "create_app",
    "get_runtime",
    "get_uow",
]

log = structlog.get_logger("salesops.service")


def create_app(spec: ServiceSpec, settings: Settings) -> FastAPI:
    configure_logging(spec.name, settings.log_level, settings.log_format)
    metrics = Metrics()
    tracing = tracing_for(spec.name, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(spec, settings, metrics=metrics, tracing=tracing)
        app.state.runtime = runtime
        runtime.tasks.append(asyncio.create_task(runtime.relay.run(), name="outbox-relay"))
        runtime.tasks.append(asyncio.create_task(metrics.process.watch_loop(spec.name), name="event-loop-lag"))
        for consumer in runtime.consumers:
            runtime.tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{consumer.subscription.name}"))
        for task in spec.background:
            runtime.tasks.append(asyncio.create_task(task(runtime), name=getattr(task, "__name__", "background")))
        log.info("service started", consumers=[c.subscription.name for c in runtime.consumers])
        # What start-up built (modules, models, the app) lives as long as the process: moved out of the
        # collector's generations, a full collection then walks only what requests and events left behind.
        gc.collect()
        gc.freeze()
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
    app.state.spec = spec
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

    app.add_middleware(ObserveRequests, metrics=metrics, tracing=tracing)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    install_cors(app, settings.cors_origins)  # last: outermost, so preflights are answered first
    app.include_router(health_router())
    app.include_router(identity_router())
    for router in spec.routers:
        app.include_router(router)
    tracing.instrument_app(app)
    return app


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
    runtime.tracing.flush()
    log.info("service stopped")
