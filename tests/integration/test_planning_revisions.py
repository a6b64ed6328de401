"""Planning through the real database and broker: item master, promotions moving the right weeks by the
right amount, mps.revised with its drivers, capacity conflicts, duplicates and out-of-order events."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from services.planning_service.app import build_app
from services.planning_service.settings import PlanningSettings
from shared.events import CloudEvent, EventType, MpsRevisedData, PromotionData, new_event, parse_data
from shared.settings import Settings
from tests.support import bearer, eventually, produce, read_topic, running

TODAY = date(2026, 11, 18)  # a Wednesday: the horizon starts Monday 2026-11-16
PROMO_WEEK = "2026-11-23"


@pytest.fixture
def planning_settings(settings: Settings) -> PlanningSettings:
    return PlanningSettings(**settings.model_dump(), clock_today=TODAY)


def promotion(promotion_id: str = "BF-2026", uplift: float = 50, version: int = 1, **extra: Any) -> PromotionData:
    body: dict[str, Any] = {
        "promotion_id": promotion_id,
        "name": "Black Friday",
        "starts_on": "2026-11-23",
        "ends_on": "2026-11-29",
        "items": [{"sku": "SKU-1", "uplift_pct": uplift}],
        "version": version,
    }
    return PromotionData.model_validate(body | extra)


async def publish(bootstrap: str, event_type: EventType, data: PromotionData, key: str = "SKU-1") -> CloudEvent:
    event = new_event(event_type, source="test", subject=data.promotion_id, data=data)
    await produce(bootstrap, "salesops.promotions", event.to_json(), key=key.encode())
    return event


def item(**extra: Any) -> dict[str, Any]:
    return {"name": "Widget", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 100} | extra


def week_of(plan: dict[str, Any], week_start: str) -> dict[str, Any]:
    return next(w for w in plan["weeks"] if w["week_start"] == week_start)


async def plans_events(bootstrap: str, expect: int) -> list[dict[str, Any]]:
    messages = await read_topic(bootstrap, "salesops.plans", expect=expect)
    return [json.loads(m.value) for m in messages]


async def test_a_promotion_moves_its_week_and_publishes_the_revision(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        created = await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        assert created.status_code == 201, created.text
        first = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert first["plan_version"] == 1
        assert len(first["weeks"]) == 26 and first["weeks"][0]["week_start"] == "2026-11-16"
        assert {w["forecast"] for w in first["weeks"]} == {100}
        assert [d["event_id"] for d in first["drivers"]] == ["item:SKU-1:1"]

        event = await publish(bootstrap, EventType.PROMOTION_PLANNED, promotion())

        async def revised() -> dict[str, Any] | None:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return plan if plan["plan_version"] == 2 else None

        plan = await eventually(revised, message="the promotion never revised the plan")
        promo_week = week_of(plan, PROMO_WEEK)
        assert promo_week["baseline"] == 100
        assert promo_week["promotion_uplift"] == 50
        assert promo_week["forecast"] == 150
        assert promo_week["gross_requirements"] == 150
        assert promo_week["mps_quantity"] == 150
        assert promo_week["projected_available"] == 0
        assert promo_week["changed_by"] == [event.id, "item:SKU-1:1"]
        others = [w for w in plan["weeks"] if w["week_start"] != PROMO_WEEK]
        assert {(w["forecast"], w["mps_quantity"]) for w in others} == {(100, 100)}
        assert plan["drivers"][0] == {
            "event_id": event.id,
            "type": "salesops.promotion.planned.v1",
            "summary": "BF-2026 +50% on SKU-1",
        }

        published = await plans_events(bootstrap, expect=2)
        revisions = [e for e in published if e["type"] == "salesops.mps.revised.v1"]
        assert [e["data"]["plan_version"] for e in revisions] == [1, 2]
        second = revisions[1]["data"]
        assert second["driver_event_ids"] == [event.id]
        assert sorted((c["week_start"], c["field"], c["before"], c["after"]) for c in second["changed_weeks"]) == [
            (PROMO_WEEK, "atp", 100, 150),  # what the week makes is free to promise
            (PROMO_WEEK, "forecast", 100, 150),
            (PROMO_WEEK, "mps_quantity", 100, 150),
        ]
        assert revisions[1]["subject"] == "SKU-1"

        history = (await client.get(f"/v1/mps/SKU-1/weeks/{PROMO_WEEK}", headers=planner)).json()
        assert [r["plan_version"] for r in history["data"]] == [2, 1]
        newest = history["data"][0]
        assert newest["drivers"][0]["event_id"] == event.id
        assert {(c["field"], c["before"], c["after"]) for c in newest["changes"]} == {
            ("forecast", 100, 150),
            ("mps_quantity", 100, 150),
            ("atp", 100, 150),
        }
        summary = (await client.get("/v1/mps", headers=planner)).json()
        assert summary["data"][0]["sku"] == "SKU-1"
        assert summary["data"][0]["total_forecast"] == 26 * 100 + 50
    assert await db.fetchval("select count(*) from planning.plan_revisions") == 2


async def test_updating_the_item_is_a_revision_and_an_identical_put_is_not(planning_settings, api_keys, db):
    planner = bearer(api_keys["planner"])
    async with running(build_app(planning_settings)) as client:
        assert (await client.put("/v1/items/SKU-1", json=item(), headers=planner)).status_code == 201
        same = await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        assert same.status_code == 200 and same.json()["revision"] == 1
        updated = await client.put("/v1/items/SKU-1", json=item(on_hand=250), headers=planner)
        assert updated.status_code == 200 and updated.json()["revision"] == 2
        plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert plan["plan_version"] == 2
        assert plan["drivers"][0] == {
            "event_id": "item:SKU-1:2",
            "type": "planning.item.updated",
            "summary": "item master updated",
        }
        # 250 on hand covers two weeks and half the third
        assert [w["mps_quantity"] for w in plan["weeks"][:4]] == [0, 0, 50, 100]
        listed = (await client.get("/v1/items?limit=1", headers=planner)).json()
        assert [i["sku"] for i in listed["data"]] == ["SKU-1"] and listed["next_after"] == "SKU-1"
    assert await db.fetchval("select count(*) from planning.outbox where event_type like '%mps.revised%'") == 2


async def test_capacity_conflict_is_detected_then_resolved_by_the_cancellation(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(weekly_capacity=120), headers=planner)
        await publish(bootstrap, EventType.PROMOTION_PLANNED, promotion())

        async def conflict() -> dict[str, Any] | None:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return plan["conflict"]

        found = await eventually(conflict, message="no capacity conflict")
        # week 2026-11-23 needs 150 against 120: 20 are pre-built in the week before, 10 stay short
        assert found["promotion_ids"] == ["BF-2026"]
        assert found["weeks"] == [{"week_start": PROMO_WEEK, "shortfall": 10}]
        plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        # the 10 short are made up the week after, within capacity
        assert [w["mps_quantity"] for w in plan["weeks"][:3]] == [120, 120, 110]
        assert week_of(plan, PROMO_WEEK)["capacity_shortfall"] == 10

        cancelled = promotion(version=2, status="cancelled")
        cancel = await publish(bootstrap, EventType.PROMOTION_CANCELLED, cancelled)

        async def resolved() -> bool:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return plan["conflict"] is None and plan["plan_version"] == 3

        await eventually(resolved, message="the cancellation never resolved the conflict")
        events = await plans_events(bootstrap, expect=5)
        types = [e["type"] for e in events]
        assert types.count("salesops.capacity-conflict.detected.v1") == 1
        assert types.count("salesops.capacity-conflict.resolved.v1") == 1
        detected = next(e for e in events if e["type"].endswith("detected.v1"))["data"]
        assert detected["total_shortfall"] == 10 and detected["plan_version"] == 2
        resolved_event = next(e for e in events if e["type"].endswith("resolved.v1"))["data"]
        assert resolved_event == {
            "sku": "SKU-1",
            "promotion_ids": ["BF-2026"],
            "weeks": [],
            "total_shortfall": 0,
            "plan_version": 3,
        }
        last = [e for e in events if e["type"] == "salesops.mps.revised.v1"][-1]["data"]
        assert last["driver_event_ids"] == [cancel.id]
    assert await db.fetchval("select count(*) from planning.conflicts") == 0


async def test_the_same_event_twice_makes_one_revision(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    event = new_event(EventType.PROMOTION_PLANNED, source="test", subject="BF-2026", data=promotion())
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        for _ in range(2):
            await produce(bootstrap, "salesops.promotions", event.to_json(), key=b"SKU-1")
        marker = await publish(
            bootstrap,
            EventType.PROMOTION_PLANNED,
            promotion("MARKER", uplift=10, starts_on="2027-03-01", ends_on="2027-03-07"),
        )

        async def marker_applied() -> bool:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return any(d["event_id"] == marker.id for d in plan["drivers"])

        await eventually(marker_applied)
        plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert week_of(plan, PROMO_WEEK)["forecast"] == 150
    # Events that arrive together may share a revision, but the duplicate never makes one of its own.
    revisions = await db.fetch("select driver_event_ids from planning.plan_revisions where sku = 'SKU-1'")
    assert sum(event.id in r["driver_event_ids"] for r in revisions) == 1
    assert await db.fetchval("select count(*) from planning.inbox where event_id = $1", event.id) == 1
    published = await db.fetchval("select count(*) from planning.outbox where event_type like '%mps.revised%'")
    assert published == len(revisions) == plan["plan_version"]


async def test_out_of_order_events_end_in_the_right_plan(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        # the revision (v2, +20 %) overtakes the plan it revises (v1, +50 %)
        await publish(bootstrap, EventType.PROMOTION_REVISED, promotion(uplift=20, version=2))
        await publish(bootstrap, EventType.PROMOTION_PLANNED, promotion(uplift=50, version=1))
        # a cancellation of a promotion planning never heard of, then its late `planned` of the same version
        await publish(bootstrap, EventType.PROMOTION_CANCELLED, promotion("GHOST", uplift=90, status="cancelled"))
        await publish(bootstrap, EventType.PROMOTION_PLANNED, promotion("GHOST", uplift=90))
        marker = await publish(
            bootstrap,
            EventType.PROMOTION_PLANNED,
            promotion("MARKER", uplift=10, starts_on="2027-03-01", ends_on="2027-03-07"),
        )

        async def marker_applied() -> bool:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return any(d["event_id"] == marker.id for d in plan["drivers"])

        await eventually(marker_applied)
        plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
        assert week_of(plan, PROMO_WEEK)["promotion_uplift"] == 20
        assert week_of(plan, PROMO_WEEK)["forecast"] == 120
        assert week_of(plan, "2027-03-01")["forecast"] == 110
        ghost = (await client.get("/v1/inputs/promotions/GHOST", headers=planner)).json()
        assert ghost["status"] == "cancelled"
    assert await db.fetchval("select count(*) from planning.outbox where topic like '%.dlq'") == 0


async def test_api_validation_auth_and_unknown_skus(planning_settings, api_keys, db):
    planner, crm = bearer(api_keys["planner"]), bearer(api_keys["crm"])
    async with running(build_app(planning_settings)) as client:
        negative = await client.put("/v1/items/SKU-1", json=item(on_hand=-1), headers=planner)
        assert negative.status_code == 422
        assert [e["field"] for e in negative.json()["errors"]] == ["on_hand"]
        lot = await client.put("/v1/items/SKU-1", json=item(lot_size=0), headers=planner)
        assert lot.status_code == 422 and lot.json()["errors"][0]["field"] == "lot_size"
        missing = await client.put("/v1/items/SKU-1", json={"on_hand": 1}, headers=planner)
        assert {e["field"] for e in missing.json()["errors"]} == {"name", "safety_stock"}
        assert (await client.put("/v1/items/SKU-1", json=item())).status_code == 401
        assert (await client.put("/v1/items/SKU-1", json=item(), headers=crm)).status_code == 403
        assert (await client.get("/v1/mps", headers=bearer(api_keys["marketing"]))).status_code == 403
        assert (await client.get("/v1/mps/NOPE", headers=planner)).status_code == 404
        assert (await client.get("/v1/items/NOPE", headers=planner)).status_code == 404
        assert (await client.get("/v1/mps/NOPE/history", headers=planner)).status_code == 404
        assert (await client.get("/v1/accuracy?sku=NOPE", headers=planner)).status_code == 404
        tuesday = await client.get("/v1/mps/SKU-1/weeks/2026-11-17", headers=planner)
        assert tuesday.status_code == 422
        scenario = {"promotions": [promotion().model_dump(mode="json") | {"ends_on": "2026-11-01"}]}
        for key in ("status", "version"):
            scenario["promotions"][0].pop(key)
        bad = await client.post("/v1/scenarios", json=scenario, headers=planner)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "promotions.0.ends_on"
        assert (await client.post("/v1/replan", headers=crm)).status_code == 403
    assert await db.fetchval("select count(*) from planning.items") == 0


async def test_a_frozen_week_keeps_its_quantity_and_shows_an_exception(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(frozen_weeks=2), headers=planner)
        event = await publish(broker.bootstrap_servers, EventType.PROMOTION_PLANNED, promotion())

        async def revised() -> dict[str, Any] | None:
            plan = (await client.get("/v1/mps/SKU-1", headers=planner)).json()
            return plan if plan["plan_version"] == 2 else None

        plan = await eventually(revised)
        assert plan["drivers"][0]["event_id"] == event.id
        assert week_of(plan, PROMO_WEEK)["forecast"] == 150
        # the promotion week is inside the fence: it keeps 100, the 50 are made right after the fence
        assert [w["mps_quantity"] for w in plan["weeks"][:3]] == [100, 100, 150]
        assert week_of(plan, PROMO_WEEK)["projected_available"] == -50
        assert plan["exceptions"] == [
            {
                "week_start": PROMO_WEEK,
                "kind": "frozen-fence",
                "planned_quantity": 100,
                "wanted_quantity": 150,
                "message": "frozen week keeps mps_quantity 100; current requirements want 150",
            }
        ]


async def test_a_full_replan_stores_every_chunk_and_publishes_the_contracts_events(
    planning_settings, broker, api_keys, db
):
    """`POST /v1/replan` in chunks of 2: every SKU's first plan, its revision, snapshot and `mps.revised` are
    stored by the chunk's set-based writes; the events are the contract's, byte for byte as the models make
    them. A second re-plan changes nothing; a changed item is one revision naming the re-plan."""
    planner = bearer(api_keys["planner"])
    settings = planning_settings.model_copy(update={"planning_replan_chunk_skus": 2})
    await db.execute(
        "INSERT INTO planning.items (sku, name, on_hand, safety_stock, lot_size, weekly_capacity, frozen_weeks,"
        " baseline_weekly_demand, revision)"
        " SELECT 'SKU-' || n, 'Item ' || n, 10 * n, n, 1 + n % 3, CASE WHEN n % 2 = 0 THEN 90 END, n % 2,"
        " 33.3 * n, 1 FROM generate_series(1, 5) AS n"
    )
    async with running(build_app(settings)) as client:
        answer = await client.post("/v1/replan", headers=planner)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["planned"], body["revised"]) == (5, 5)
        driver = body["driver_event_id"]

        published = await read_topic(broker.bootstrap_servers, "salesops.plans", expect=6)
        revised = [m for m in published if json.loads(m.value)["type"] == "salesops.mps.revised.v1"]
        assert sorted(m.key.decode() for m in revised) == [f"SKU-{n}" for n in range(1, 6)]
        for message in revised:
            event = CloudEvent.model_validate_json(message.value)
            data = parse_data(event, "salesops.plans")
            assert isinstance(data, MpsRevisedData)
            assert (data.plan_version, data.driver_event_ids, len(data.changed_weeks)) == (1, [driver], 26 * 6)
            assert {c.before for c in data.changed_weeks} == {None}
            rebuilt = new_event(
                EventType.MPS_REVISED,
                source=event.source,
                subject=event.subject or "",
                data=data,
                time=event.time,
                traceparent=event.traceparent,
            )
            assert message.value == rebuilt.model_copy(update={"id": event.id}).to_json()
        assert await db.fetchval("select count(*) from planning.plan_revisions") == 5
        assert await db.fetchval("select count(*) from planning.forecast_snapshots") == 5
        outbox = await db.fetch("select event_type, count(*) from planning.outbox group by event_type")
        # SKU-4 plans 133.2 a week against a capacity of 90: its shortfall is a capacity conflict
        assert dict(outbox) == {"salesops.mps.revised.v1": 5, "salesops.capacity-conflict.detected.v1": 1}
        history = (await client.get("/v1/mps/SKU-3/history", headers=planner)).json()["data"]
        assert [(r["plan_version"], len(r["changes"])) for r in history] == [(1, 26 * 6)]
        assert history[0]["drivers"][0]["event_id"] == driver
        plan = (await client.get("/v1/mps/SKU-3", headers=planner)).json()
        assert plan["weeks"][0]["forecast"] == pytest.approx(99.9)

        again = (await client.post("/v1/replan", headers=planner)).json()
        assert (again["planned"], again["revised"]) == (5, 0)
        await db.execute("UPDATE planning.items SET on_hand = on_hand + 500 WHERE sku = 'SKU-2'")
        third = (await client.post("/v1/replan", headers=planner)).json()
        assert (third["planned"], third["revised"]) == (5, 1)
        history = (await client.get("/v1/mps/SKU-2/history", headers=planner)).json()["data"]
        assert history[0]["plan_version"] == 2 and history[0]["drivers"][0]["event_id"] == third["driver_event_id"]
        assert {c["field"] for c in history[0]["changes"]} >= {"projected_available", "mps_quantity"}
        assert all(c["before"] is not None for c in history[0]["changes"])
    assert await db.fetchval("select count(*) from planning.plan_revisions") == 6
