"""Fitted baseline models in the running service, on the real database and broker: fitted in the background
and stored, applied by every re-plan, kept across a restart, fitted again when a week begins or old weeks
are corrected; short histories keep the smoothing; accuracy and `salesops backtest` replay stored history."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from salesops.cli import app as cli
from services.planning_service.app import build_app
from services.planning_service.domain import BaselineModel, Item, SkuInputs, plan_sku
from services.planning_service.settings import PlanningSettings
from shared.events import EventType, OrderVolumeReportedData, new_event
from shared.settings import Settings
from tests.support import bearer, eventually, produce, running

TODAY = date(2026, 11, 18)  # the horizon starts Monday 2026-11-16
HORIZON = date(2026, 11, 16)
NEXT_WEEK = date(2026, 11, 25)


def planning(settings: Settings, today: date = TODAY, **extra: Any) -> PlanningSettings:
    values: dict[str, Any] = {"planning_fit_check_s": 0.1, "planning_rollover_check_s": 0.1} | extra
    return PlanningSettings(**settings.model_dump(), clock_today=today, **values)


def daily(weeks: int, per_week: Any, *, until: date = HORIZON) -> dict[date, int]:
    """Units ordered per day over the `weeks` complete weeks before `until`: week w (0 = oldest) orders
    per_week(w) units, spread over its seven days."""
    first = until - timedelta(weeks=weeks)
    days: dict[date, int] = {}
    for week in range(weeks):
        total = int(per_week(week))
        for day in range(7):
            days[first + timedelta(weeks=week, days=day)] = total // 7 + (1 if day < total % 7 else 0)
    return days


def weekly(days: dict[date, int]) -> dict[date, float]:
    weeks: dict[date, float] = defaultdict(float)
    for day, units in days.items():
        weeks[day - timedelta(days=day.weekday())] += units
    return dict(weeks)


async def report(bootstrap: str, sku: str, days: dict[date, int]) -> None:
    lines = [
        {"day": day.isoformat(), "units_ordered": units, "units_shipped": units, "units_backordered": 0}
        for day, units in sorted(days.items())
    ]
    data = OrderVolumeReportedData.model_validate({"sku": sku, "days": lines})
    event = new_event(EventType.ORDER_VOLUME_REPORTED, source="test", subject=sku, data=data)
    await produce(bootstrap, "salesops.order-volumes", event.to_json(), key=sku.encode())


def item(sku: str) -> Item:
    return Item(sku=sku, name=sku, on_hand=0, safety_stock=0, baseline_weekly_demand=10)


def trending(week: int) -> float:
    """A clear upward trend (70 -> 215 units a week over two years) with a little deterministic noise."""
    return 70 + 1.4 * week + (6, -4, 3, -5, 2)[week % 5]


async def stored_model(db: Any, sku: str, origin: date) -> Any:
    row = await db.fetchrow(
        "select method, model, origin, fitted_at, history_digest from planning.baseline_models where sku = $1", sku
    )
    return row if row is not None and row["origin"] == origin else None


async def drivers(db: Any, sku: str) -> list[Any]:
    return list(await db.fetch("select event_id, summary from planning.drivers where $1 = any(skus)", sku))


async def settled(
    db: Any, client: Any, headers: dict[str, str], sku: str, week: date, history: dict[date, float], weeks: int
) -> tuple[Any, dict[str, Any]] | None:
    """The stored model and the plan, once a model fitted for `week` on all `weeks` of history is applied."""
    row = await db.fetchrow(
        "select method, model, origin, fitted_at, history_digest, history_changes, checked_changes"
        " from planning.baseline_models where sku = $1",
        sku,
    )
    if row is None or row["model"] is None or row["origin"] != week or row["history_changes"] > row["checked_changes"]:
        return None
    if json.loads(row["history_digest"])["observed_weeks"] != weeks:
        return None
    model = BaselineModel.from_json(json.loads(row["model"]))
    today = week + timedelta(days=2)
    expected = plan_sku(SkuInputs(item(sku), history, baseline_model=model), week, 26, today=today)
    plan = (await client.get(f"/v1/mps/{sku}", headers=headers)).json()
    baseline = [w["baseline"] for w in plan["weeks"]]
    if baseline != pytest.approx([w.baseline for w in expected.weeks], abs=1e-6):
        return None
    return row, plan


# Three waits for the fit worker, each up to 120 s on a busy machine.
@pytest.mark.timeout(420)
async def test_models_fitted_in_the_background_are_stored_used_kept_and_refitted(settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    days = daily(104, trending)
    async with running(build_app(planning(settings))) as client:
        put = await client.put(
            "/v1/items/TREND", json={"name": "TREND", "on_hand": 0, "safety_stock": 0}, headers=planner
        )
        assert put.status_code == 201
        await report(broker.bootstrap_servers, "TREND", dict(list(days.items())[:364]))
        await report(broker.bootstrap_servers, "TREND", dict(list(days.items())[364:]))

        row, plan = await eventually(
            lambda: settled(db, client, planner, "TREND", HORIZON, weekly(days), 104),
            # The fit worker runs at a lower priority than everything else (nice +10): on a busy machine it waits.
            timeout=120,
            message="no model fitted on the whole history was applied to the trending SKU",
        )
    model = BaselineModel.from_json(json.loads(row["model"]))
    assert row["method"] == "ets" and model.origin == HORIZON and model.trend > 0
    assert any(d["event_id"].startswith(f"fit:{HORIZON.isoformat()}") for d in await drivers(db, "TREND"))
    smoothing = plan_sku(SkuInputs(item("TREND"), weekly(days)), HORIZON, 26, today=TODAY)
    baseline = [w["baseline"] for w in plan["weeks"]]
    # the smoothing lags a trend; the fitted model follows it
    assert baseline[0] > smoothing.weeks[0].baseline + 5
    assert baseline[12] > baseline[0]

    # a restart keeps the model: an event's re-plan applies it, nothing is fitted again
    async with running(build_app(planning(settings))) as client:
        put = await client.put(
            "/v1/items/TREND", json={"name": "TREND", "on_hand": 500, "safety_stock": 0}, headers=planner
        )
        assert put.status_code == 200
        after_restart = (await client.get("/v1/mps/TREND", headers=planner)).json()
        assert [w["baseline"] for w in after_restart["weeks"]] == pytest.approx(baseline, abs=1e-6)
        assert (await stored_model(db, "TREND", HORIZON))["fitted_at"] == row["fitted_at"]

        # a correction of old weeks (the first year's orders were twice what was reported) is material
        doubled = {day: 2 * units for day, units in list(days.items())[:364]}
        await report(broker.bootstrap_servers, "TREND", doubled)

        async def refitted() -> Any:
            found = await stored_model(db, "TREND", HORIZON)
            return found if found is not None and found["fitted_at"] != row["fitted_at"] else None

        corrected = await eventually(refitted, timeout=120, message="the corrected history was never fitted again")
        assert corrected["history_digest"] != row["history_digest"]

    # a new week: the rollover re-plans at once with the stored models, then every model is fitted again
    async with running(build_app(planning(settings, NEXT_WEEK))) as client:
        next_monday = HORIZON + timedelta(weeks=1)
        corrected_history = weekly({**days, **doubled})
        rolled, plan = await eventually(
            lambda: settled(db, client, planner, "TREND", next_monday, corrected_history, 105),
            timeout=120,
            message="no model was fitted for the new week",
        )
        assert rolled["method"] == "ets"
        assert plan["weeks"][0]["week_start"] == next_monday.isoformat()


async def test_a_short_history_keeps_the_smoothing(settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    days = daily(6, lambda week: 70 + 10 * week)
    async with running(build_app(planning(settings, planning_fit_workers=0))) as client:
        await client.put("/v1/items/SHORT", json={"name": "SHORT", "on_hand": 0, "safety_stock": 0}, headers=planner)
        await report(broker.bootstrap_servers, "SHORT", days)

        async def checked() -> Any:
            row = await db.fetchrow(
                "select method, model, history_changes, checked_changes from planning.baseline_models where sku = $1",
                "SHORT",
            )
            digest_seen = row is not None and row["history_changes"] == row["checked_changes"]
            plan = (await client.get("/v1/mps/SHORT", headers=planner)).json()
            reported = any(d["type"] == EventType.ORDER_VOLUME_REPORTED for d in plan.get("drivers", []))
            return (row, plan) if digest_seen and reported and row["history_changes"] else None

        row, plan = await eventually(checked, timeout=30, message="the short history was never looked at")
    assert row["method"] == "smoothing" and row["model"] is None
    smoothing = plan_sku(SkuInputs(item("SHORT"), weekly(days)), HORIZON, 26, today=TODAY)
    assert plan["weeks"][0]["baseline"] == pytest.approx(smoothing.weeks[0].baseline)
    assert plan["weeks"][0]["baseline"] == plan["weeks"][25]["baseline"]  # flat: no trend, no season


async def test_accuracy_has_numbers_right_after_twelve_weeks_of_orders(settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    days = daily(12, lambda week: 100 + (8, -6, 4, -3)[week % 4])
    async with running(build_app(planning(settings, planning_fit_workers=0))) as client:
        await client.put("/v1/items/TWELVE", json={"name": "T", "on_hand": 0, "safety_stock": 0}, headers=planner)
        await report(broker.bootstrap_servers, "TWELVE", days)

        async def measured() -> Any:
            found = (await client.get("/v1/accuracy?sku=TWELVE", headers=planner)).json()["data"]
            replayed = found[0]["backtest"] if found else None
            return found[0] if replayed and replayed["weeks_compared"] else None

        accuracy = await eventually(measured, message="accuracy never had numbers for twelve weeks of history")
    # no week was forecast live yet: the live figures stay empty, the replayed history has numbers
    assert accuracy["weeks_compared"] == 0 and accuracy["wmape"] is None
    replayed = accuracy["backtest"]
    # origins 8, 6, 4 and 2 weeks back (each with at least 4 weeks before it), 4 weeks ahead, complete weeks only
    assert replayed["origins"] == 4 and replayed["weeks_compared"] == 4 + 4 + 4 + 2
    assert 0 < replayed["wmape"] < 0.2
    assert replayed["demand_class"] == "smooth" and replayed["model"] is None
    assert set(replayed["standard"]) == {"seasonal naive", "ETS"}
    assert replayed["standard"]["ETS"]["weeks_compared"] == replayed["weeks_compared"]
    assert replayed["by_week_kind"]["normal"]["weeks_compared"] == replayed["weeks_compared"]


async def test_backtest_command_replays_the_stored_history(settings, broker, api_keys, database_url, monkeypatch):
    planner = bearer(api_keys["planner"])
    async with running(build_app(planning(settings, planning_fit_workers=0))) as client:
        for sku, per_week in (("STEADY", lambda w: 100 + (8, -6, 4, -3)[w % 4]), ("RISING", trending)):
            await client.put(f"/v1/items/{sku}", json={"name": sku, "on_hand": 0, "safety_stock": 0}, headers=planner)
            await report(broker.bootstrap_servers, sku, daily(30, per_week))

        async def loaded() -> bool:
            plans = (await client.get("/v1/mps", headers=planner)).json()["data"]
            return len(plans) == 2 and all(p["total_forecast"] > 26 * 50 for p in plans)

        await eventually(loaded, message="the history never reached the plans")
    monkeypatch.setenv("SALESOPS_DATABASE_URL", database_url)
    # the command runs its own event loop: off this test's
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["backtest", "--as-of", TODAY.isoformat(), "--origins", "3", "--step", "4", "--workers", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["skus"] == 2 and found["skus_scored"] == 2
    overall = found["by_week_kind"]["all"]
    # 3 origins x 4 weeks ahead x 2 SKUs, all complete weeks
    assert {method: figures["weeks"] for method, figures in overall.items()} == {
        "salesops": 24,
        "seasonal naive": 24,
        "ETS": 24,
    }
    assert all(0 <= figures["wmape"] < 0.5 for figures in overall.values())
    assert set(found["by_demand_class"]) == {"smooth"}
    assert [s["sku"] for s in found["per_sku"]] == ["RISING", "STEADY"]
    tables = await asyncio.to_thread(
        CliRunner().invoke, cli, ["backtest", "--as-of", TODAY.isoformat(), "--workers", "1", "--sku", "RISING"]
    )
    assert tables.exit_code == 0, tables.output
    assert "by demand class" in tables.output and "RISING" in tables.output
