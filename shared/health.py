"""Health, readiness and metrics endpoints of a service."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.db import database_ready
from shared.runtime import Runtime, RuntimeDep


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
