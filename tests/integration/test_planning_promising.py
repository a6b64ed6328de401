"""Booked orders and promising through the real database and broker: order and account events shape the
plan's booked_orders and ATP, the ATP view and promise checks answer under an allocation policy, a capacity
cut breaks the stable promise (not the strategic one) and restoring it brings the promise back; duplicate,
out-of-order and poison order events change nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.planning_service.app import build_app
from services.planning_service.settings import PlanningSettings
from shared.events import AccountChangedData, CloudEvent, EventType, SalesOrderData, new_event
from shared.settings import Settings
from tests.support import bearer, eventually, produce, read_topic_to_end, running

TODAY = date(2026, 11, 18)  # a Wednesday: the horizon starts Monday 2026-11-16
BOOKED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def planning_settings(settings: Settings) -> PlanningSettings:
    return PlanningSettings(**settings.model_dump(), clock_today=TODAY)


def order_body(
    order_id: str,
    account_id: str,
    quantity: int,
    promised_on: str,
    *,
    version: int = 1,
    booked_days: int = 0,
    line_id: str = "1",
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "account_id": account_id,
        "ordered_on": "2026-11-02",
        "status": "open",
        "version": version,
        "booked_at": (BOOKED + timedelta(days=booked_days)).isoformat(),
        "lines": [
            {
                "line_id": line_id,
                "sku": "SKU-1",
                "quantity": quantity,
                "requested_on": promised_on,
                "promised_on": promised_on,
                "shipped_quantity": 0,
                "open_quantity": quantity,
            }
        ],
    }


def order_event(body: dict[str, Any], event_type: EventType = EventType.SALES_ORDER_BOOKED) -> CloudEvent:
    return new_event(event_type, source="test", subject=body["order_id"], data=SalesOrderData.model_validate(body))


async def publish_order(bootstrap: str, event: CloudEvent) -> CloudEvent:
    """Keyed by order id, as fulfillment publishes them."""
    await produce(bootstrap, "salesops.orders", event.to_json(), key=str(event.subject).encode())
    return event


async def publish_account(bootstrap: str, account_id: str, segment: str, version: int = 1) -> CloudEvent:
    data = AccountChangedData.model_validate(
        {"account_id": account_id, "name": account_id, "segment": segment, "version": version, "changed_at": BOOKED}
    )
    event = new_event(EventType.ACCOUNT_CHANGED, source="test", subject=account_id, data=data)
    await produce(bootstrap, "salesops.accounts", event.to_json(), key=account_id.encode())
    return event


def item(**extra: Any) -> dict[str, Any]:
    return {"name": "Widget", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 100} | extra


async def plan_after(client: Any, headers: dict[str, str], event: CloudEvent) -> dict[str, Any]:
    """SKU-1's plan once `event` is among its drivers."""

    async def applied() -> dict[str, Any] | None:
        plan = (await client.get("/v1/mps/SKU-1", headers=headers)).json()
        return plan if any(d["event_id"] == event.id for d in plan.get("drivers", ())) else None

    found: dict[str, Any] = await eventually(applied, message=f"{event.type} never shaped the plan")
    return found


async def account_known(client: Any, headers: dict[str, str], account_id: str) -> None:
    async def known() -> bool:
        body = {"account_id": account_id, "sku": "SKU-1", "quantity": 1, "requested_on": "2026-11-20"}
        response = await client.post("/v1/promises/check", json=body, headers=headers)
        return bool(response.json().get("account_known"))

    await eventually(known, message=f"planning never heard of {account_id}")


def column(plan: dict[str, Any], field: str, weeks: int = 4) -> list[float]:
    return [w[field] for w in plan["weeks"][:weeks]]


async def test_booked_orders_move_the_plan_and_the_atp_view(planning_settings, broker, api_keys):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(on_hand=100, baseline_weekly_demand=50), headers=planner)
        await publish_account(bootstrap, "ACC-S", "strategic")
        await account_known(client, planner, "ACC-S")
        booked = await publish_order(bootstrap, order_event(order_body("SO-1", "ACC-S", 30, "2026-11-25")))
        plan = await plan_after(client, planner, booked)
        assert column(plan, "booked_orders") == [0, 30, 0, 0]
        assert column(plan, "gross_requirements") == [50, 50, 50, 50]  # within the forecast: consumed
        assert column(plan, "atp") == [70, 0, 50, 50]
        assert column(plan, "cumulative_atp") == [70, 70, 120, 170]
        assert plan["weeks"][1]["changed_by"] == [booked.id, "item:SKU-1:1"]
        assert plan["drivers"][0] == {
            "event_id": booked.id,
            "type": "salesops.sales-order.booked.v1",
            "summary": "SO-1 booked 30 x SKU-1 for ACC-S (strategic)",
        }
        view = (await client.get("/v1/atp/SKU-1", headers=planner)).json()
        assert view["plan_version"] == plan["plan_version"] and view["as_of"] == "2026-11-18"
        first, second, third = view["weeks"][:3]
        assert (first["receipts"], first["booked_orders"], first["atp"], first["cumulative_atp"]) == (0, 0, 70, 70)
        assert (second["booked_orders"], third["receipts"], third["cumulative_atp"]) == (30, 50, 120)
        # Without a policy every tier sees the cumulative ATP.
        assert third["available_by_tier"] == {"strategic": 120, "integrated": 120, "emerging": 120, "stable": 120}
        assert view["allocation_policy"]["revision"] == 0
        assert (await client.get("/v1/atp/NOPE", headers=planner)).status_code == 404
        assert (await client.get("/v1/atp/SKU-1", headers=bearer(api_keys["marketing"]))).status_code == 403


async def test_promise_checks_answer_within_the_tiers_allocation(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        # 100 made every week; 40 % of each week's receipts protected for strategic accounts. Today is
        # 2026-11-18: weeks 0 and 1 are open to all (the release window of 7 days has begun), week 2 on are not.
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        policy = {"reserve_pct": {"strategic": 40}, "release_days": 7}
        stored = await client.put("/v1/allocation-policy", json=policy, headers=planner)
        assert stored.status_code == 200, stored.text
        assert stored.json()["reserve_pct"] == {"strategic": 40, "integrated": 0, "emerging": 0, "stable": 0}
        assert (await client.get("/v1/allocation-policy", headers=planner)).json()["revision"] == 1
        await publish_account(bootstrap, "ACC-S", "strategic")
        await publish_account(bootstrap, "ACC-T", "stable")
        await account_known(client, planner, "ACC-S")
        await account_known(client, planner, "ACC-T")
        outbox_before = await db.fetchval("select count(*) from planning.outbox")

        async def check(account_id: str, quantity: float, requested_on: str = "2026-12-02") -> dict[str, Any]:
            body = {"account_id": account_id, "sku": "SKU-1", "quantity": quantity, "requested_on": requested_on}
            response = await client.post("/v1/promises/check", json=body, headers=planner)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        # By week 2 (2026-11-30): 300 made, of which week 2's 40 are protected for strategic.
        stable = await check("ACC-T", 280)
        assert (stable["tier"], stable["can_promise"], stable["limited_by"]) == ("stable", False, "allocation")
        assert (stable["available"], stable["available_to_top_tier"]) == (260, 300)
        assert stable["earliest_full_on"] == "2026-12-07"  # week 3 adds 60 more the stable tier may use
        assert stable["protection_lapses_on"] == "2026-11-23"
        assert any("protected for tiers above stable" in reason for reason in stable["explanation"])
        assert stable["committed"] is False
        strategic = await check("ACC-S", 280)
        assert (strategic["can_promise"], strategic["limited_by"], strategic["earliest_full_on"]) == (
            True,
            None,
            "2026-12-02",
        )
        # The latest receipt first: week 2's 100, then week 1's 100, then 80 of week 0's.
        assert strategic["draws"] == [
            {"week_start": "2026-11-30", "quantity": 100},
            {"week_start": "2026-11-23", "quantity": 100},
            {"week_start": "2026-11-16", "quantity": 80},
        ]
        unknown = await check("ACC-NEW", 10)
        assert (unknown["account_known"], unknown["tier"], unknown["can_promise"]) == (False, "stable", True)
        assert unknown["explanation"][0] == "account ACC-NEW is unknown to planning: it counts as stable"
        short = await check("ACC-S", 10_000)
        assert (short["can_promise"], short["limited_by"], short["earliest_full_on"]) == (False, "supply", None)
        assert await db.fetchval("select count(*) from planning.outbox") == outbox_before  # commits nothing

        async def refused(path: str, body: dict[str, Any], method: str = "post") -> list[str]:
            response = await client.request(method, path, json=body, headers=planner)
            assert response.status_code == 422, response.text
            return [e["field"] for e in response.json()["errors"]]

        good = {"account_id": "ACC-S", "sku": "SKU-1", "quantity": 5, "requested_on": "2026-12-02"}
        assert await refused("/v1/promises/check", good | {"quantity": 0}) == ["quantity"]
        assert await refused("/v1/promises/check", good | {"requested_on": "2300-01-01"}) == ["requested_on"]
        assert await refused("/v1/promises/check", good | {"account_id": ""}) == ["account_id"]
        over = {"reserve_pct": {"strategic": 60, "integrated": 50}}
        assert await refused("/v1/allocation-policy", over, "put") == ["reserve_pct"]
        assert await refused("/v1/allocation-policy", {"reserve_pct": {"strategic": 101}}, "put") == [
            "reserve_pct.strategic"
        ]
        assert await refused("/v1/allocation-policy", {"reserve_pct": {"gold": 10}}, "put") == ["reserve_pct.gold"]
        assert await refused("/v1/allocation-policy", {"release_days": -1}, "put") == ["release_days"]
        assert (await client.get("/v1/allocation-policy", headers=planner)).json()["revision"] == 1
        missing = await client.post("/v1/promises/check", json=good | {"sku": "NOPE"}, headers=planner)
        assert missing.status_code == 404
        crm = bearer(api_keys["crm"])
        assert (await client.put("/v1/allocation-policy", json=policy, headers=crm)).status_code == 403


async def promise_events(bootstrap: str) -> list[dict[str, Any]]:
    messages = await read_topic_to_end(bootstrap, "salesops.plans")
    events = [json.loads(m.value) for m in messages]
    return [e for e in events if e["type"].startswith("salesops.promise.")]


async def test_a_capacity_cut_breaks_the_stable_promise_and_restoring_capacity_restores_it(
    planning_settings, broker, api_keys, db
):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    made = item(baseline_weekly_demand=50, weekly_capacity=100)
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=made, headers=planner)
        await publish_account(bootstrap, "ACC-S", "strategic")
        await account_known(client, planner, "ACC-S")
        # The stable account booked first; ACC-T is unknown to planning, so it counts as stable.
        await publish_order(bootstrap, order_event(order_body("SO-T", "ACC-T", 60, "2026-12-02", booked_days=0)))
        last = await publish_order(bootstrap, order_event(order_body("SO-S", "ACC-S", 80, "2026-12-02", booked_days=1)))
        plan = await plan_after(client, planner, last)
        assert column(plan, "booked_orders") == [0, 0, 140, 0]

        cut = await client.put("/v1/items/SKU-1", json=made | {"weekly_capacity": 40}, headers=planner)
        assert cut.status_code == 200

        async def published(count: int) -> list[dict[str, Any]] | None:
            found = await promise_events(bootstrap)
            return found if len(found) >= count else None

        (at_risk,) = await eventually(lambda: published(1), message="no promise.at-risk on salesops.plans")
        assert (at_risk["type"], at_risk["subject"]) == ("salesops.promise.at-risk.v1", "SO-T")
        data = at_risk["data"]
        assert (data["order_id"], data["account_id"], data["tier"], data["sku"]) == ("SO-T", "ACC-T", "stable", "SKU-1")
        # Supply 40 a week: 120 by week 2; SO-S keeps 80, SO-T finds 40 of its 60 and is covered a week later.
        assert (data["quantity"], data["quantity_short"], data["promised_on"], data["earliest_on"]) == (
            60,
            20,
            "2026-12-02",
            "2026-12-07",
        )
        assert data["drivers"] == [
            {"event_id": "item:SKU-1:2", "type": "planning.item.updated", "summary": "item master updated"}
        ]
        assert await db.fetchval("select count(*) from planning.promises_at_risk") == 1

        restore = await client.put("/v1/items/SKU-1", json=made, headers=planner)
        assert restore.status_code == 200
        _, restored = await eventually(lambda: published(2), message="no promise.restored on salesops.plans")
        assert restored["type"] == "salesops.promise.restored.v1"
        assert (restored["data"]["order_id"], restored["data"]["quantity_short"]) == ("SO-T", 0)
        assert restored["data"]["earliest_on"] == "2026-12-02"
        assert [d["event_id"] for d in restored["data"]["drivers"]] == ["item:SKU-1:3"]
    # Kafka keys are the SKU, so a SKU's promise events stay in order with its plan revisions.
    messages = await read_topic_to_end(bootstrap, "salesops.plans")
    assert {m.key for m in messages if b"salesops.promise." in m.value} == {b"SKU-1"}
    assert await db.fetchval("select count(*) from planning.promises_at_risk") == 0


async def test_duplicate_and_out_of_order_order_events_change_nothing(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        changed = order_event(order_body("SO-1", "ACC-1", 40, "2026-11-25", version=2), EventType.SALES_ORDER_CHANGED)
        late = order_event(order_body("SO-1", "ACC-1", 30, "2026-11-25", version=1))
        # The change overtakes the booking it changes, and is delivered twice.
        for event in (changed, late, changed):
            await publish_order(bootstrap, event)
        marker = await publish_order(bootstrap, order_event(order_body("SO-M", "ACC-1", 5, "2027-03-03")))
        plan = await plan_after(client, planner, marker)
        assert column(plan, "booked_orders", 2) == [0, 40]
    revisions = await db.fetch("select driver_event_ids from planning.plan_revisions where sku = 'SKU-1'")
    assert sum(changed.id in r["driver_event_ids"] for r in revisions) == 1
    assert not any(late.id in r["driver_event_ids"] for r in revisions)
    assert await db.fetchval("select count(*) from planning.drivers where event_id = $1", late.id) == 0
    assert await db.fetchval("select count(*) from planning.inbox where event_id = $1", changed.id) == 1
    assert await db.fetchval("select version from planning.orders where order_id = 'SO-1'") == 2


async def test_poison_order_events_are_dead_lettered_and_the_consumer_goes_on(planning_settings, broker, api_keys, db):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    twice = order_body("SO-2", "ACC-1", 10, "2026-11-25")
    twice["lines"] = twice["lines"] * 2  # the same line id twice: no order can hold that
    no_lines = json.loads(order_event(order_body("SO-3", "ACC-1", 10, "2026-11-25")).to_json())
    no_lines["data"]["lines"] = []
    async with running(build_app(planning_settings)) as client:
        await client.put("/v1/items/SKU-1", json=item(), headers=planner)
        await produce(bootstrap, "salesops.orders", b"{not json", key=b"SO-0")
        await produce(bootstrap, "salesops.orders", json.dumps(no_lines).encode(), key=b"SO-3")
        await publish_order(bootstrap, order_event(twice))
        good = await publish_order(bootstrap, order_event(order_body("SO-4", "ACC-1", 10, "2026-11-25")))
        plan = await plan_after(client, planner, good)
        assert column(plan, "booked_orders", 2) == [0, 10]
    dead = await read_topic_to_end(bootstrap, "salesops.orders.dlq")
    assert sorted(dict(m.headers)["dlq-reason"].decode() for m in dead) == ["invalid-data", "invalid-data", "not-json"]
    details = [dict(m.headers)["dlq-detail"].decode() for m in dead]
    assert any("data.lines.1.line_id" in detail for detail in details)
    assert await db.fetchval("select count(*) from planning.orders") == 1


async def test_a_change_that_drops_one_line_and_moves_another_replans_both_skus(
    planning_settings, broker, api_keys, db
):
    planner = bearer(api_keys["planner"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(planning_settings)) as client:
        for sku in ("SKU-1", "SKU-2"):
            await client.put(f"/v1/items/{sku}", json=item(), headers=planner)
        booked = order_body("SO-5", "ACC-1", 10, "2026-11-25")
        booked["lines"].append(booked["lines"][0] | {"line_id": "2", "quantity": 20, "open_quantity": 20})
        plan = await plan_after(client, planner, await publish_order(bootstrap, order_event(booked)))
        assert column(plan, "booked_orders", 2) == [0, 30]
        changed = order_body("SO-5", "ACC-1", 10, "2026-11-25", version=2)
        changed["lines"][0]["sku"] = "SKU-2"
        event = await publish_order(bootstrap, order_event(changed, EventType.SALES_ORDER_CHANGED))
        plan = await plan_after(client, planner, event)
        assert column(plan, "booked_orders", 2) == [0, 0]
        other = (await client.get("/v1/mps/SKU-2", headers=planner)).json()
        assert column(other, "booked_orders", 2) == [0, 10]
        assert event.id in {d["event_id"] for d in other["drivers"]}
    rows = await db.fetch("select line_id, sku, open_quantity from planning.order_lines where order_id = 'SO-5'")
    assert [tuple(r) for r in rows] == [("1", "SKU-2", 10)]
