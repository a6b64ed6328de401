"""Scenarios are bounded and computed off the event loop: one that names too many SKUs is refused at once
(never a 503 "retry"), the largest allowed one is cheap, and while one is being planned the service keeps
answering other requests."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from typing import Any

import pytest

from services.planning_service import queries
from services.planning_service.app import build_app
from services.planning_service.schemas import MAX_SCENARIO_PROMOTIONS, MAX_SCENARIO_SKUS
from services.planning_service.settings import PlanningSettings
from shared.settings import Settings
from tests.support import bearer, running

TODAY = date(2026, 11, 18)


def scenario(promotions: int, items: int, cannibalized: int = 0) -> dict[str, Any]:
    return {
        "promotions": [
            {
                "promotion_id": f"WHAT-IF-{p}",
                "name": "what if",
                "starts_on": "2026-11-30",
                "ends_on": "2026-12-13",
                "post_promo_dip_pct": 20,
                "post_promo_dip_weeks": 2,
                "items": [{"sku": f"SKU-{p * items + i}", "uplift_pct": 40} for i in range(items)],
                "cannibalized": [{"sku": f"CAN-{p * cannibalized + i}", "pct": 5} for i in range(cannibalized)],
            }
            for p in range(promotions)
        ]
    }


async def seed_items_with_history(db: Any, count: int) -> None:
    """`count` items, each with three years of daily order history: what a scenario loads and plans."""
    await db.execute(
        """
        insert into planning.items (sku, name, on_hand, safety_stock, lot_size, weekly_capacity, frozen_weeks,
                                    baseline_weekly_demand, revision)
        select 'SKU-' || g, 'item', 100, 20, 1, 400, 0, 100, 1 from generate_series(0, $1 - 1) g
        """,
        count,
    )
    await db.execute(
        """
        insert into planning.daily_volumes (sku, day, units_ordered, units_shipped, units_backordered)
        select 'SKU-' || g, d::date, 10 + g % 7, 10, 0
        from generate_series(0, $1 - 1) g, generate_series(date '2023-11-13', date '2026-11-17', interval '1 day') d
        """,
        count,
    )


@pytest.fixture
def pinned(settings: Settings) -> PlanningSettings:
    return PlanningSettings(**settings.model_dump(), clock_today=TODAY)


async def test_a_scenario_beyond_its_bounds_is_refused_naming_the_promotions(
    pinned: PlanningSettings, api_keys: dict[str, Any]
) -> None:
    reader = bearer(api_keys["planner"])
    async with running(build_app(pinned)) as client:
        over = await client.post("/v1/scenarios", json=scenario(20, MAX_SCENARIO_SKUS // 20 + 1), headers=reader)
        assert over.status_code == 422, over.text
        assert [e["field"] for e in over.json()["errors"]] == ["promotions"]
        assert f"{MAX_SCENARIO_SKUS:,}" in over.json()["detail"]

        too_many = await client.post("/v1/scenarios", json=scenario(MAX_SCENARIO_PROMOTIONS + 1, 1), headers=reader)
        assert too_many.status_code == 422, too_many.text
        assert [e["field"] for e in too_many.json()["errors"]] == ["promotions"]

        # The body once answered 503 "retry" though it can never succeed: 200,000 SKUs in 100 promotions.
        huge = await client.post("/v1/scenarios", json=scenario(100, 1000, 1000), headers=reader)
        assert huge.status_code in (413, 422), huge.text
        assert "Retry-After" not in huge.headers


async def test_the_largest_allowed_scenario_is_answered_in_full(
    pinned: PlanningSettings, api_keys: dict[str, Any], db: Any
) -> None:
    await seed_items_with_history(db, MAX_SCENARIO_SKUS)
    reader = bearer(api_keys["planner"])
    async with running(build_app(pinned)) as client:
        body = scenario(MAX_SCENARIO_PROMOTIONS, MAX_SCENARIO_SKUS // MAX_SCENARIO_PROMOTIONS)
        response = await client.post("/v1/scenarios", json=body, headers=reader)
        assert response.status_code == 200, response.text
        result = response.json()
        assert len(result["plans"]) == MAX_SCENARIO_SKUS and result["skus_without_item"] == []
        assert result["plans"][0]["weeks"][2]["promotion_uplift"] > 0


async def test_a_scenario_being_planned_does_not_hold_back_other_requests(
    pinned: PlanningSettings, api_keys: dict[str, Any], db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_items_with_history(db, 3)
    reader = bearer(api_keys["planner"])
    planning = threading.Event()
    release = threading.Event()
    held_too_long: list[bool] = []
    plan_many = queries.plan_many

    def slow_plan_many(*args: Any, **kwargs: Any) -> Any:
        # Stands for a long computation. On the event loop it would block every other request until released;
        # the wait is bounded so that such a regression fails the test instead of hanging it.
        planning.set()
        if not release.wait(timeout=20):
            held_too_long.append(True)
        return plan_many(*args, **kwargs)

    monkeypatch.setattr(queries, "plan_many", slow_plan_many)
    async with running(build_app(pinned)) as client:
        what_if = asyncio.create_task(client.post("/v1/scenarios", json=scenario(1, 3), headers=reader))
        assert await asyncio.to_thread(planning.wait, 20)
        other = await asyncio.wait_for(client.get("/v1/items/SKU-1", headers=reader), timeout=10)
        assert other.status_code == 200
        assert (await asyncio.wait_for(client.get("/healthz"), timeout=10)).status_code == 200
        assert not what_if.done()
        release.set()
        answered = await asyncio.wait_for(what_if, timeout=30)
    assert answered.status_code == 200, answered.text
    assert [p["sku"] for p in answered.json()["plans"]] == ["SKU-0", "SKU-1", "SKU-2"]
    assert held_too_long == []
