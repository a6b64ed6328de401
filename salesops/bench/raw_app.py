"""The raw HTTP baseline: a bare FastAPI JSON endpoint doing one asyncpg insert, nothing else (no auth, no
outbox, no middleware), run under uvicorn like the services: `uvicorn salesops.bench.raw_app:app`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import asyncpg
from fastapi import FastAPI

_INSERT = (
    "INSERT INTO bench_raw_returns (return_id, sku, quantity, account_id, reason, condition, returned_on)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The endpoint changes no session state, so a released connection needs no reset: asyncpg's default
    would send four statements (unlock, close, unlisten, reset) after every insert."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The same pool size as a service's SQLAlchemy engine (pool 10 + overflow 10).
    pool = await asyncpg.create_pool(os.environ["BENCH_RAW_DSN"], min_size=1, max_size=20, reset=_keep_session)
    assert pool is not None
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/ingest", status_code=201)
async def ingest(body: dict[str, Any]) -> dict[str, str]:
    pool: asyncpg.Pool = app.state.pool
    await pool.execute(
        _INSERT,
        body["return_id"],
        body["sku"],
        body["quantity"],
        body["account_id"],
        body["reason"],
        body["condition"],
        date.fromisoformat(body["returned_on"]),
    )
    return {"return_id": body["return_id"]}


RAW_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_raw_returns (return_id text PRIMARY KEY, sku text NOT NULL,"
    " quantity int NOT NULL, account_id text NOT NULL, reason text NOT NULL, condition text NOT NULL,"
    " returned_on date NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)
