"""Plans and revisions stored either way (`planning_plan_storage`), against the real database: the same item
changes give the same API answers and the same `mps.revised` events whichever form is stored; `expanded` writes
exactly what versions before the compact form wrote and read; and the migration's downgrade spells compact rows
out into that very form, after which the API answers byte for byte as before."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from typing import Any

import asyncpg
import pytest
from alembic import command

from services.planning_service.app import build_app
from services.planning_service.domain import PlanWeek
from services.planning_service.settings import PlanningSettings
from shared import migrations
from shared.settings import Settings
from tests.support import bearer, running

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 18)  # the horizon starts Monday 2026-11-16
WEEK = "2026-11-30"
BEFORE_COMPACT = "0007_plan_documents_json"

# Each step changes the plans differently: first plans (every week new), stock that moves some fields of some
# weeks, a capacity that leaves shortfalls, lots and a frozen fence (exceptions).
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("SKU-1", {"on_hand": 0, "safety_stock": 10, "baseline_weekly_demand": 100}),
    ("SKU-2", {"on_hand": 40, "safety_stock": 0, "baseline_weekly_demand": 35.5, "lot_size": 20}),
    ("SKU-1", {"on_hand": 250, "safety_stock": 10, "baseline_weekly_demand": 100}),
    ("SKU-1", {"on_hand": 250, "safety_stock": 10, "baseline_weekly_demand": 120, "weekly_capacity": 90}),
    ("SKU-2", {"on_hand": 40, "safety_stock": 5, "baseline_weekly_demand": 35.5, "lot_size": 20, "frozen_weeks": 3}),
]
READS = [
    "/v1/mps?limit=10",
    "/v1/mps/SKU-1",
    "/v1/mps/SKU-2",
    "/v1/mps/SKU-1/history",
    "/v1/mps/SKU-2/history",
    f"/v1/mps/SKU-1/weeks/{WEEK}",
    "/v1/atp/SKU-1",
    "/v1/atp/SKU-2",
]
_VOLATILE = re.compile(rb'"(generated_at|updated_at|time|traceparent)":"[^"]*"|replan:[0-9a-f-]{36}')


def _blank(found: re.Match[bytes]) -> bytes:
    return b'"%b":"-"' % found[1] if found[1] else b"replan:-"


def planning(settings: Settings, database_url: str, storage: str) -> PlanningSettings:
    return PlanningSettings(
        **{**settings.model_dump(), "database_url": database_url},
        clock_today=TODAY,
        planning_plan_storage=storage,
        planning_fit_workers=0,
    )


async def plan_the_steps(settings: PlanningSettings, planner: dict[str, str], conn: asyncpg.Connection) -> None:
    """The item changes one by one, then a full re-plan (its chunk's events written by the store) after a
    change of every item's stock."""
    async with running(build_app(settings)) as client:
        for sku, fields in STEPS:
            response = await client.put(f"/v1/items/{sku}", json={"name": sku, **fields}, headers=planner)
            assert response.status_code in (200, 201), response.text
        await conn.execute("UPDATE planning.items SET on_hand = on_hand + 7, revision = revision + 1")
        replanned = await client.post("/v1/replan", headers=planner)
        assert replanned.status_code == 200 and replanned.json()["revised"] == 2, replanned.text


async def api_answers(settings: PlanningSettings, planner: dict[str, str]) -> dict[str, bytes]:
    answers = {}
    async with running(build_app(settings)) as client:
        for path in READS:
            response = await client.get(path, headers=planner)
            assert response.status_code == 200, (path, response.text)
            answers[path] = response.content
    return answers


def without_timestamps(answers: dict[str, bytes]) -> dict[str, bytes]:
    """The answers with the times of writing blanked: what two databases planned apart differ in."""
    return {path: _VOLATILE.sub(_blank, body) for path, body in answers.items()}


async def stored(conn: asyncpg.Connection) -> dict[str, Any]:
    """Every stored plan's weeks and revision's changes, as text and with the JSON type of the document."""
    plans = await conn.fetch("SELECT sku, weeks::text AS doc, json_typeof(weeks) AS kind FROM planning.plans")
    revisions = await conn.fetch(
        "SELECT sku, plan_version, changes::text AS doc, json_typeof(changes) AS kind, driver_event_ids"
        " FROM planning.plan_revisions"
    )
    return {
        "plans": {r["sku"]: r for r in plans},
        "revisions": {(r["sku"], r["plan_version"]): r for r in revisions},
    }


async def outbox_events(conn: asyncpg.Connection) -> list[bytes]:
    """The planning events written, in order, each with its id, time and trace context blanked."""
    rows = await conn.fetch("SELECT event_id, payload FROM planning.outbox ORDER BY id")
    return [_VOLATILE.sub(_blank, r["payload"].replace(r["event_id"].encode(), b"-")) for r in rows]


def read_as_before_compact_storage(weeks: Any, changes: Any) -> None:
    """What versions before the compact form did with a stored plan and revision: a `PlanWeek` from each week's
    object, and the changes as a list of `{week_start, field, before, after}`."""
    assert isinstance(weeks, list) and isinstance(changes, list)
    for week in weeks:
        PlanWeek(**{**week, "week_start": date.fromisoformat(week["week_start"])})
    assert all(set(change) == {"week_start", "field", "before", "after"} for change in changes)


async def test_either_storage_gives_the_same_answers_and_events_and_the_downgrade_spells_compact_out(
    settings: Settings, database_url: str, postgres_server: Any, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    planner = bearer(api_keys["planner"])
    compact = planning(settings, database_url, "compact")
    expanded_url = await postgres_server.create_database()
    expanded = planning(settings, expanded_url, "expanded")
    expanded_db = await asyncpg.connect(postgres_server.dsn(expanded_url.split("?")[0].rsplit("/", 1)[1]))
    try:
        await plan_the_steps(compact, planner, db)
        await plan_the_steps(expanded, planner, expanded_db)

        compact_rows = await stored(db)
        expanded_rows = await stored(expanded_db)
        revisions = {("SKU-1", v) for v in range(1, 5)} | {("SKU-2", v) for v in range(1, 4)}
        assert set(compact_rows["revisions"]) == set(expanded_rows["revisions"]) == revisions
        assert {r["kind"] for r in compact_rows["plans"].values()} == {"object"}
        assert {r["kind"] for r in compact_rows["revisions"].values()} == {"object"}
        assert {r["kind"] for r in expanded_rows["plans"].values()} == {"array"}
        assert {r["kind"] for r in expanded_rows["revisions"].values()} == {"array"}
        for sku, row in expanded_rows["plans"].items():
            for (revised, _), revision in expanded_rows["revisions"].items():
                if revised == sku:
                    read_as_before_compact_storage(json.loads(row["doc"]), json.loads(revision["doc"]))
        # the spelled-out changes are the very bytes the revision's event carries
        expanded_events = await outbox_events(expanded_db)
        for revision in expanded_rows["revisions"].values():
            assert sum(revision["doc"].encode() in event for event in expanded_events) == 1

        compact_answers = await api_answers(compact, planner)
        expanded_answers = await api_answers(expanded, planner)
        assert without_timestamps(compact_answers) == without_timestamps(expanded_answers)
        assert await outbox_events(db) == expanded_events
        assert sum(b'"salesops.mps.revised.v1"' in event for event in expanded_events) == 7

        # Going back: the downgrade spells the compact rows out, as the expanded writer writes them.
        config = migrations.alembic_config("planning", database_url)
        await asyncio.to_thread(command.downgrade, config, BEFORE_COMPACT)
        spelled_out = await stored(db)
        for sku, row in spelled_out["plans"].items():
            assert row["kind"] == "array"
            assert json.loads(row["doc"]) == json.loads(expanded_rows["plans"][sku]["doc"])
        for key, row in spelled_out["revisions"].items():
            assert row["kind"] == "array"
            assert json.loads(row["doc"]) == json.loads(expanded_rows["revisions"][key]["doc"])
        assert await api_answers(compact, planner) == compact_answers

        await asyncio.to_thread(migrations.upgrade, "planning", database_url)
        assert await stored(db) == spelled_out, "the upgrade changes no row"
    finally:
        await expanded_db.close()


async def test_a_plan_written_compact_is_revised_spelled_out_after_the_storage_goes_back(
    settings: Settings, database_url: str, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    planner = bearer(api_keys["planner"])
    first, second = STEPS[0][1], STEPS[2][1]
    async with running(build_app(planning(settings, database_url, "compact"))) as client:
        assert (await client.put("/v1/items/SKU-1", json={"name": "w", **first}, headers=planner)).status_code == 201
    async with running(build_app(planning(settings, database_url, "expanded"))) as client:
        assert (await client.put("/v1/items/SKU-1", json={"name": "w", **second}, headers=planner)).status_code == 200
        history = (await client.get("/v1/mps/SKU-1/history", headers=planner)).json()
    kinds = await db.fetch("SELECT plan_version, json_typeof(changes) AS kind FROM planning.plan_revisions")
    assert {r["plan_version"]: r["kind"] for r in kinds} == {1: "object", 2: "array"}
    assert await db.fetchval("SELECT json_typeof(weeks) FROM planning.plans WHERE sku = 'SKU-1'") == "array"
    assert [r["plan_version"] for r in history["data"]] == [2, 1]
    assert len(history["data"][1]["changes"]) == 26 * 6
    assert {c["field"] for c in history["data"][0]["changes"]} <= {"projected_available", "mps_quantity", "atp"}
