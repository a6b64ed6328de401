"""Planning what-ifs and time on the real database and broker: scenarios commit nothing, a new ISO week
re-plans every SKU and snapshots its forecast, and accuracy compares those snapshots with what was ordered."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.planning_service.app import build_app
from services.planning_service.settings import PlanningSettings
from shared.events import EventType, OrderVolumeReportedData, new_event
from shared.settings import Settings
from tests.support import bearer, eventually, produce, running

TABLES = (
    "items",
    "plans",
    "plan_revisions",
    "conflicts",
    "forecast_snapshots",
    "drivers",
    "promotions",
    "outbox",
)


def item(**extra: Any) -> dict[str, Any]:
    return {"name": "Widget", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 100} | extra


async def row_counts(db: Any) -> dict[str, int]:
    return {t: int(await db.fetchval(f"select count(*) from planning.{t}")) for t in TABLES}


async def test_a_scenario_shows_the_plan_and_conflict_and_commits_nothing(settings: Settings, api_keys, db):
    planner = bearer(api_keys["planner"])
    pinned = PlanningSettings(**settings.model_dump(), clock_today=date(2026, 11, 18))
    async with running(build_app(pinned)) as client:
        await client.put("/v1/items/SKU-1", json=item(weekly_capacity=120), headers=planner)
        await client.put("/v1/items/SKU-2", json=item(), headers=planner)
        before = await row_counts(db)
        body = {
            "promotions": [
                {
                    "promotion_id": "BF-2026",
                    "name": "Black Friday",
                    "starts_on": "2026-11-23",
                    "ends_on": "2026-11-29",
                    "items": [{"sku": "SKU-1", "uplift_pct": 50}],
                    "cannibalized": [{"sku": "SKU-2", "pct": 10}, {"sku": "SKU-9", "pct": 5}],
                }
            ]
        }
        response = await client.post("/v1/scenarios", json=body, headers=planner)
        assert response.status_code == 200, response.text
        result = response.json()
        plans = {p["sku"]: p for p in result["plans"]}
        assert plans["SKU-1"]["weeks"][1]["forecast"] == 150
        assert plans["SKU-2"]["weeks"][1]["forecast"] == 90
        assert result["conflicts"] == [
            {
                "sku": "SKU-1",
                "promotion_ids": ["BF-2026"],
                "weeks": [{"week_start": "2026-11-23", "shortfall": 10}],
                "total_shortfall": 10,
                "plan_version": None,
            }
        ]
        assert result["skus_without_item"] == ["SKU-9"]
        assert result["committed"] is False
        assert await row_counts(db) == before
        current = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert current["plan_version"] == 1 and current["weeks"][1]["forecast"] == 100


async def test_a_new_week_replans_snapshots_and_accuracy_follows(settings: Settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    week_one = PlanningSettings(**settings.model_dump(), clock_today=date(2026, 11, 18))
    async with running(build_app(week_one)) as client:
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        await eventually(lambda: db.fetchval("select value from planning.planning_state"))
    assert await db.fetchval("select forecast from planning.forecast_snapshots where week_start = '2026-11-16'") == 100

    week_two = PlanningSettings(**settings.model_dump(), clock_today=date(2026, 11, 25), planning_rollover_check_s=0.1)
    async with running(build_app(week_two)) as client:

        async def rolled() -> dict[str, Any] | None:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return plan if plan["plan_version"] == 2 else None

        plan = await eventually(rolled, message="the new week never re-planned the SKU")
        assert plan["weeks"][0]["week_start"] == "2026-11-23" and len(plan["weeks"]) == 26
        assert plan["drivers"][0]["event_id"] == "week:2026-11-23"
        snapshots = await db.fetch("select week_start, forecast from planning.forecast_snapshots order by 1")
        assert [(r["week_start"], r["forecast"]) for r in snapshots] == [
            (date(2026, 11, 16), 100),
            (date(2026, 11, 23), 100),
        ]
        # what was really ordered in the week of 2026-11-16: 12 a day
        lines = [
            {
                "day": (date(2026, 11, 16) + timedelta(days=n)).isoformat(),
                "units_ordered": 12,
                "units_shipped": 12,
                "units_backordered": 0,
            }
            for n in range(7)
        ]
        data = OrderVolumeReportedData.model_validate({"sku": "SKU-1", "days": lines})
        event = new_event(EventType.ORDER_VOLUME_REPORTED, source="test", subject="SKU-1", data=data)
        await produce(broker.bootstrap_servers, "salesops.order-volumes", event.to_json(), key=b"SKU-1")

        async def measured() -> dict[str, Any] | None:
            found = (await client.get("/v1/accuracy?sku=SKU-1", headers=planner)).json()["data"]
            return found[0] if found and found[0]["weeks_compared"] else None

        accuracy = await eventually(measured, message="no accuracy after the actuals arrived")
        assert accuracy["weeks_compared"] == 1
        assert accuracy["wmape"] == pytest.approx(16 / 84)
        assert accuracy["bias"] == pytest.approx(16 / 84)
        assert accuracy["mae"] == pytest.approx(16)

        replanned = await client.post("/v1/replan", headers=planner)
        assert replanned.status_code == 200
        assert replanned.json()["planned"] == 1 and replanned.json()["revised"] == 0
