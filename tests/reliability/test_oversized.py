"""Requests whose events the broker would refuse, under a steady mixed load: each is answered 413 and stores
nothing; a row that reaches an outbox anyway (written past the check) is parked, and everything else the
services accepted is reflected downstream, with nothing left stuck in any outbox."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from salesops.infra import EmbeddedBroker
from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from shared.events import EventType, Topic
from shared.settings import Settings
from tests.reliability.harness import REPORT, Load, describe, live_system, outbox_backlog, record_ledger, scaled, settle
from tests.support import bearer, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Small enough that modest requests already make events over it; the load's own events stay far below.
LIMIT = 8192


def oversized_request(run: str, index: int) -> tuple[str, str, dict[str, Any]]:
    """(path, id, body): a promotion with many long SKUs, or one SKU's report over many days."""
    ident = f"{run}-BIG-{index:03d}"
    if index % 2 == 0:
        items = [{"sku": f"{ident}-SKU-{i:03d}-" + "L" * 24, "uplift_pct": 10} for i in range(150)]
        body = {"promotion_id": ident, "name": "oversized", "starts_on": "2026-12-01", "ends_on": "2026-12-07"}
        return "/v1/promotions", ident, {**body, "items": items}
    today = date.today()
    lines = [
        {
            "sku": ident,
            "day": (today - timedelta(days=1 + d)).isoformat(),
            "units_ordered": 5,
            "units_shipped": 5,
            "units_backordered": 0,
        }
        for d in range(150)
    ]
    return "/v1/order-volumes", ident, {"warehouse_id": "DC-BIG", "lines": lines}


async def accepted_more(load: Load, count: int) -> None:
    target = load.ledger.total_accepted() + count

    async def reached() -> bool:
        return load.ledger.total_accepted() >= target

    await eventually(reached, timeout=90, interval=0.1, message=f"the load stalled below {target} accepted")


async def test_oversized_events_are_refused_or_parked_and_hold_nothing_back(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    run = f"O{uuid.uuid4().hex[:6].upper()}"
    step = scaled(20, 150)
    attempts = scaled(10, 60)
    small = settings.model_copy(update={"kafka_max_request_bytes": LIMIT})
    apps: dict[str, FastAPI] = {
        "promotion": build_promotion(small),
        "fulfillment": build_fulfillment(small),
        "returns": build_returns(settings),
        "planning": build_planning(settings),
    }
    refused: list[str] = []
    async with (
        live_system(settings, apps) as urls,
        Load(urls, api_keys["admin"], run=run) as load,
        httpx.AsyncClient(timeout=10.0, headers=bearer(api_keys["admin"])) as client,
    ):
        await accepted_more(load, step)
        for index in range(attempts):
            path, ident, body = oversized_request(run, index)
            service = "promotion" if path == "/v1/promotions" else "fulfillment"
            response = await client.post(urls[service] + path, json=body)
            assert response.status_code == 413, f"{path}: {response.status_code} {response.text[:300]}"
            assert response.json()["event_bytes"] > LIMIT
            refused.append(ident)
        injected = await db.fetchval(
            "insert into promotion.outbox (event_id, event_type, topic, key, payload) values ($1, $2, $3, $4, $5)"
            " returning id",
            str(uuid.uuid4()),
            EventType.PROMOTION_PLANNED.value,
            Topic.PROMOTIONS.value,
            f"{run}-INJECTED",
            json.dumps({"subject": f"{run}-INJECTED", "padding": "x" * LIMIT}).encode(),
        )
        await accepted_more(load, step)
        await load.stop()
        result = await settle(db, load.ledger, run, timeout=scaled(60, 180))
        stuck = await outbox_backlog(db)
        parked = [r["id"] for r in await db.fetch("select id from promotion.outbox where parked_at is not null")]
        readiness = (await client.get(urls["promotion"] + "/readyz")).json()

    stored = await db.fetchval(
        "select (select count(*) from promotion.promotions where promotion_id like $1)"
        " + (select count(*) from fulfillment.volumes where sku like $1)"
        " + (select count(*) from promotion.outbox where key like $1 and key <> $2)",
        f"{run}-BIG-%",
        f"{run}-INJECTED",
    )
    record_ledger(load.ledger, result, scenario="oversized events")
    REPORT.stuck += stuck
    REPORT.bad_inputs["request whose event the broker would refuse (413)"] += len(refused)
    REPORT.faults["outbox row over the producer's limit written past the check"] += 1
    REPORT.measurements["oversized events"] = {
        "refused with 413": len(refused),
        "stored from refused requests": int(stored),
        "rows parked": len(parked),
        "accepted alongside": load.ledger.total_accepted(),
        "lost": result.lost,
        "stuck": stuck,
    }
    assert not load.ledger.unexpected, load.ledger.unexpected[:5]
    assert stored == 0, "a refused request left something behind"
    assert parked == [injected]
    assert readiness["checks"]["outbox"] == "1 parked"
    assert result.ok(), describe(result)
    assert stuck == 0
