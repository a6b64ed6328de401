"""Planning from demand and supply signals on the real database and broker: order history becomes the
baseline, spikes drive sensing (until retracted), returns come back as receipts, launches copy a reference."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.planning_service.app import build_app
from services.planning_service.settings import PlanningSettings
from shared.events import (
    CloudEvent,
    ComplaintData,
    EventData,
    EventType,
    LaunchData,
    OrderSpikeData,
    OrderVolumeReportedData,
    ReturnData,
    new_event,
)
from shared.settings import Settings
from tests.support import bearer, eventually, produce, running

TODAY = date(2026, 11, 18)  # the horizon starts Monday 2026-11-16


@pytest.fixture
def planning_settings(settings: Settings) -> PlanningSettings:
    return PlanningSettings(**settings.model_dump(), clock_today=TODAY)


async def publish(bootstrap: str, topic: str, event_type: EventType, data: EventData, key: str) -> CloudEvent:
    event = new_event(event_type, source="test", subject=key, data=data)
    await produce(bootstrap, topic, event.to_json(), key=key.encode())
    return event


def volumes(sku: str, first: date, days: int, units: int) -> OrderVolumeReportedData:
    lines = [
        {
            "day": (first + timedelta(days=n)).isoformat(),
            "units_ordered": units,
            "units_shipped": units,
            "units_backordered": 0,
        }
        for n in range(days)
    ]
    return OrderVolumeReportedData.model_validate({"sku": sku, "days": lines})


def item(**extra: Any) -> dict[str, Any]:
    return {"name": "Widget", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 100} | extra


async def plan_after(client: Any, headers: dict[str, str], sku: str, event: CloudEvent) -> dict[str, Any]:
    """The SKU's plan once `event` is among its drivers."""

    async def applied() -> dict[str, Any] | None:
        response = await client.get(f"/v1/mps/{sku}", headers=headers)
        if response.status_code != 200:
            return None
        plan = response.json()
        return plan if any(d["event_id"] == event.id for d in plan["drivers"]) else None

    found: dict[str, Any] = await eventually(applied, message=f"{event.type} never shaped the plan of {sku}")
    return found


async def test_order_history_that_arrived_before_the_item_becomes_the_baseline(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        # four complete weeks at 10 a day, before planning knows the item
        history = await publish(
            bootstrap,
            "salesops.order-volumes",
            EventType.ORDER_VOLUME_REPORTED,
            volumes("SKU-2", date(2026, 10, 19), 28, 10),
            "SKU-2",
        )

        async def stored() -> bool:
            response = await client.get("/v1/drivers?sku=SKU-2", headers=planner)
            return any(d["event_id"] == history.id for d in response.json()["data"])

        await eventually(stored)
        assert (await client.get("/v1/mps/SKU-2", headers=planner)).status_code == 404
        await client.put("/v1/items/SKU-2", json=item(), headers=planner)
        plan = (await client.get("/v1/mps/SKU-2", headers=planner)).json()
        assert {w["baseline"] for w in plan["weeks"]} == {70}  # history wins over the seed of 100
        assert {d["event_id"] for d in plan["drivers"]} == {"item:SKU-2:1", history.id}

        # a correction replaces one day of the last week (10 -> 17): that week is 77, the level 70 + 0.3 * 7
        correction = await publish(
            bootstrap,
            "salesops.order-volumes",
            EventType.ORDER_VOLUME_REPORTED,
            volumes("SKU-2", date(2026, 11, 15), 1, 17),
            "SKU-2",
        )
        plan = await plan_after(client, planner, "SKU-2", correction)
        assert plan["plan_version"] == 2
        assert {w["baseline"] for w in plan["weeks"]} == {72.1}


async def test_an_unexplained_spike_raises_the_near_term_forecast_until_retracted(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    topic = "salesops.order-volumes"
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-4", json=item(baseline_weekly_demand=70), headers=planner)
        explained = OrderSpikeData(
            sku="SKU-4", day=date(2026, 11, 16), units=40, baseline=10, explained_by_promotion_id="BF"
        )
        ignored = await publish(bootstrap, topic, EventType.ORDER_SPIKE_DETECTED, explained, "SKU-4")
        spike = OrderSpikeData(sku="SKU-4", day=date(2026, 11, 17), units=40, baseline=10)
        detected = await publish(bootstrap, topic, EventType.ORDER_SPIKE_DETECTED, spike, "SKU-4")
        plan = await plan_after(client, planner, "SKU-4", detected)
        # one spike day this week: its 30 units above the detector's 10 are added to this week, nothing later
        assert [w["sensing_adjustment"] for w in plan["weeks"][:3]] == [30, 0, 0]
        assert [w["forecast"] for w in plan["weeks"][:2]] == [100, 70]
        assert plan["plan_version"] == 2  # the explained spike changed nothing
        assert ignored.id not in {d["event_id"] for d in plan["drivers"]}

        retraction = OrderSpikeData(sku="SKU-4", day=date(2026, 11, 17), units=40, baseline=10, status="retracted")
        retracted = await publish(bootstrap, topic, EventType.ORDER_SPIKE_RETRACTED, retraction, "SKU-4")
        plan = await plan_after(client, planner, "SKU-4", retracted)
        assert {w["sensing_adjustment"] for w in plan["weeks"]} == {0}
        assert {w["forecast"] for w in plan["weeks"]} == {70}

        # a spike of a SKU planning has no item for is kept and harms nothing
        unknown = OrderSpikeData(sku="SKU-UNKNOWN", day=date(2026, 11, 17), units=40, baseline=10)
        marker = await publish(bootstrap, topic, EventType.ORDER_SPIKE_DETECTED, unknown, "SKU-UNKNOWN")

        async def recorded() -> bool:
            response = await client.get("/v1/drivers?sku=SKU-UNKNOWN", headers=planner)
            return any(d["event_id"] == marker.id for d in response.json()["data"])

        await eventually(recorded)
        assert (await client.get("/v1/mps/SKU-UNKNOWN", headers=planner)).status_code == 404


async def test_returns_come_back_as_receipts_and_replacements_add_requirements(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-3", json=item(), headers=planner)
        resellable = ReturnData(
            return_id="R-1",
            sku="SKU-3",
            quantity=30,
            account_id="ACME",
            reason="no_longer_needed",
            condition="resellable",
            returned_on=date(2026, 11, 25),
        )
        receipt = await publish(bootstrap, "salesops.returns", EventType.RETURN_RECORDED, resellable, "SKU-3")
        plan = await plan_after(client, planner, "SKU-3", receipt)
        week = plan["weeks"][1]
        assert week["week_start"] == "2026-11-23"
        assert (week["returns_receipts"], week["mps_quantity"], week["projected_available"]) == (30, 70, 0)

        complaint = ComplaintData(
            complaint_id="C-1",
            account_id="ACME",
            sku="SKU-3",
            category="quality",
            severity="high",
            description="broken",
            received_on=date(2026, 11, 18),
        )
        await publish(bootstrap, "salesops.returns", EventType.COMPLAINT_RECORDED, complaint, "ACME")
        replaced = ReturnData(
            return_id="R-2",
            sku="SKU-3",
            quantity=5,
            account_id="ACME",
            reason="defective",
            condition="scrap",
            returned_on=date(2026, 11, 18),
            resolution="replacement",
        )
        replacement = await publish(bootstrap, "salesops.returns", EventType.RETURN_RECORDED, replaced, "SKU-3")
        plan = await plan_after(client, planner, "SKU-3", replacement)
        first = plan["weeks"][0]
        assert (first["forecast"], first["gross_requirements"], first["mps_quantity"]) == (100, 105, 105)
        assert plan["plan_version"] == 3


async def test_a_launch_follows_its_reference_sku(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/REF", json=item(baseline_weekly_demand=80), headers=planner)
        await client.put("/v1/items/NEW", json=item(baseline_weekly_demand=0), headers=planner)
        launch = LaunchData(
            launch_id="L-1", sku="NEW", launch_on=date(2026, 11, 23), reference_sku="REF", scale_pct=50, ramp_weeks=2
        )
        event = await publish(bootstrap, "salesops.promotions", EventType.LAUNCH_PLANNED, launch, "NEW")
        plan = await plan_after(client, planner, "NEW", event)
        assert [w["baseline"] for w in plan["weeks"][:4]] == [0, 20, 40, 40]
        reference = (await client.get("/v1/mps/REF", headers=planner)).json()
        assert reference["plan_version"] == 1  # the reference itself is not re-planned
