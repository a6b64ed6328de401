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


async def test_a_capacity_change_is_planned_beside_the_current_plan_and_commits_nothing(
    settings: Settings, api_keys, db
):
    planner = bearer(api_keys["planner"])
    pinned = PlanningSettings(**settings.model_dump(), clock_today=date(2026, 11, 18))
    async with running(build_app(pinned)) as client:
        await client.put("/v1/items/SKU-1", json=item(safety_stock=30), headers=planner)
        await client.put("/v1/items/SKU-2", json=item(), headers=planner)
        current = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert {w["mps_quantity"] for w in current["weeks"]} == {130, 100}  # builds safety stock, then demand
        before = await row_counts(db)

        body = {"items": [{"sku": "SKU-1", "weekly_capacity": 80, "on_hand": 50}, {"sku": "SKU-7", "lot_size": 10}]}
        response = await client.post("/v1/scenarios", json=body, headers=planner)
        assert response.status_code == 200, response.text
        result = response.json()
        assert [p["sku"] for p in result["plans"]] == ["SKU-1"]
        assert result["skus_without_item"] == ["SKU-7"]
        plan = result["plans"][0]
        assert plan["item_changes"] == {"weekly_capacity": 80, "on_hand": 50}
        assert plan["current_plan_version"] == current["plan_version"]
        weeks = plan["weeks"]
        assert {w["capacity"] for w in weeks} == {80}
        assert all(w["mps_quantity"] <= 80 for w in weeks)
        # 50 on hand and 80 made cover the first week's 100 and the safety stock of 30; from then on 100 a week
        # are wanted and 80 made: 20 more short every week, never caught up.
        assert [w["projected_available"] for w in weeks[:3]] == [30, 10, -10]
        assert weeks[0]["capacity_shortfall"] == 0 and all(w["capacity_shortfall"] > 0 for w in weeks[1:])
        changed = {(c["field"], c["week_start"]) for c in plan["changes"]}
        assert ("mps_quantity", weeks[0]["week_start"]) in changed
        assert ("projected_available", weeks[-1]["week_start"]) in changed
        for change in plan["changes"]:
            week = next(w for w in weeks if w["week_start"] == change["week_start"])
            was = next(w for w in current["weeks"] if w["week_start"] == change["week_start"])
            assert (change["before"], change["after"]) == (was[change["field"]], week[change["field"]])
        assert result["committed"] is False
        assert await row_counts(db) == before
        assert (await client.get("/v1/mps/SKU-1", headers=planner)).json() == current
        assert (await client.get("/v1/items/SKU-1", headers=planner)).json()["weekly_capacity"] is None

        # Unlimited capacity (null) lifts a limit; with a promotion both are planned together.
        await client.put("/v1/items/SKU-2", json=item(weekly_capacity=100), headers=planner)
        promotion = {
            "promotion_id": "BF-2026",
            "name": "Black Friday",
            "starts_on": "2026-11-23",
            "ends_on": "2026-11-29",
            "items": [{"sku": "SKU-2", "uplift_pct": 50}],
        }
        limited = (await client.post("/v1/scenarios", json={"promotions": [promotion]}, headers=planner)).json()
        assert [c["sku"] for c in limited["conflicts"]] == ["SKU-2"]
        lifted = await client.post(
            "/v1/scenarios",
            json={"promotions": [promotion], "items": [{"sku": "SKU-2", "weekly_capacity": None}]},
            headers=planner,
        )
        assert lifted.status_code == 200, lifted.text
        assert lifted.json()["conflicts"] == []
        assert lifted.json()["plans"][0]["item_changes"] == {"weekly_capacity": None}
        assert lifted.json()["plans"][0]["weeks"][1]["forecast"] == 150


@pytest.mark.parametrize(
    ("items", "fields"),
    [
        ([{"sku": "SKU-1", "weekly_capacity": -1}], ["items.0.weekly_capacity"]),
        ([{"sku": "SKU-1", "on_hand": None}], ["items.0.on_hand"]),
        ([{"sku": "SKU-1", "lot_size": 0.5}], ["items.0.lot_size"]),
        ([{"sku": "SKU-1", "safety_stock": 1e13}], ["items.0.safety_stock"]),
        ([{"sku": "SKU-1"}], ["items.0"]),
        ([{"sku": "SKU-1", "capacity": 10}], ["items.0.capacity"]),
        ([{"sku": "", "on_hand": 1}], ["items.0.sku"]),
        ([{"sku": "SKU-1", "on_hand": 1}, {"sku": "SKU-1", "lot_size": 5}], ["items.1.sku"]),
        ([], ["promotions"]),
        ([{"sku": f"SKU-{n}", "on_hand": 1} for n in range(201)], ["items"]),
    ],
)
async def test_a_scenario_refuses_bad_item_changes_naming_the_field(settings: Settings, api_keys, items, fields):
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/scenarios", json={"items": items}, headers=bearer(api_keys["planner"]))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == fields


async def test_promotions_and_item_changes_share_the_scenario_bound(settings: Settings, api_keys):
    promotion = {
        "promotion_id": "BIG",
        "name": "big",
        "starts_on": "2026-11-23",
        "ends_on": "2026-11-29",
        "items": [{"sku": f"SKU-{n}", "uplift_pct": 10} for n in range(150)],
    }
    items = [{"sku": f"OTHER-{n}", "on_hand": 1} for n in range(51)]
    async with running(build_app(settings)) as client:
        response = await client.post(
            "/v1/scenarios", json={"promotions": [promotion], "items": items}, headers=bearer(api_keys["planner"])
        )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["items"]
    assert "201 SKUs" in response.json()["detail"]


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
