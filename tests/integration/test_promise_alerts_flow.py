"""Broken promises reach the CRM, across fulfillment, planning and returns on the real database and broker:
accounts registered in returns give planning their tiers, orders booked in fulfillment become booked lines, a
capacity cut breaks the stable account's promise (not the strategic one's) and the promise-at-risk alert
reaches a webhook receiver signed as Standard Webhooks say, with the tier and the new earliest date; restoring
the capacity resolves it. Late, older promise events change nothing."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from standardwebhooks import Webhook

from services.fulfillment_service.app import build_app as build_fulfillment
from services.fulfillment_service.settings import FulfillmentSettings
from services.planning_service.app import build_app as build_planning
from services.planning_service.settings import PlanningSettings
from services.returns_service.app import build_app as build_returns
from services.returns_service.settings import ReturnsSettings
from shared.events import EventType, PromiseData, new_event
from shared.settings import Settings
from tests.integration.test_webhooks_delivery import Receiver, serving
from tests.support import bearer, eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 18)  # a Wednesday: the horizon starts Monday 2026-11-16
PROMISED = "2026-12-02"  # in the third week


def item(capacity: float) -> dict[str, Any]:
    return {
        "name": "Widget",
        "on_hand": 0,
        "safety_stock": 0,
        "weekly_capacity": capacity,
        "baseline_weekly_demand": 50,
    }


def order(order_id: str, account_id: str, quantity: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "account_id": account_id,
        "ordered_on": "2026-11-16",
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": quantity, "requested_on": PROMISED}],
    }


async def test_a_capacity_cut_alerts_the_stable_accounts_owner_and_restoring_it_resolves_the_alert(
    settings: Settings, api_keys: dict[str, Any], db: Any
) -> None:
    values = settings.model_dump()
    returns_settings = ReturnsSettings(
        **values,
        clock_today=TODAY,
        webhook_allow_private_targets=True,
        webhook_backoff_initial_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_poll_interval_s=0.05,
    )
    desk, crm, planner = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"]), bearer(api_keys["planner"])
    receiver = Receiver()
    async with (
        serving(receiver) as base,
        running(build_returns(returns_settings)) as returns,
        running(build_fulfillment(FulfillmentSettings(**values, clock_today=TODAY))) as fulfillment,
        running(build_planning(PlanningSettings(**values, clock_today=TODAY))) as planning,
    ):
        registered = await returns.post(
            "/v1/webhooks", json={"url": f"{base}/crm", "event_types": ["sales-alert.promise-at-risk"]}, headers=crm
        )
        assert registered.status_code == 201, registered.text
        hook = registered.json()
        accounts = {"ACC-S": ("Nordmarkt", "strategic"), "ACC-W": ("Webshop", "stable")}
        for account_id, (name, segment) in accounts.items():
            body = {"name": name, "segment": segment, "owner_email": f"owner+{segment}@example.com"}
            assert (await returns.put(f"/v1/accounts/{account_id}", json=body, headers=desk)).status_code == 201

        async def tier_in_planning(account_id: str) -> str | None:
            body = {"account_id": account_id, "sku": "SKU-1", "quantity": 1, "requested_on": "2026-11-20"}
            answer = (await planning.post("/v1/promises/check", json=body, headers=crm)).json()
            return str(answer["tier"]) if answer.get("account_known") else None

        assert (await planning.put("/v1/items/SKU-1", json=item(100), headers=planner)).status_code in (200, 201)
        for account_id, (_, segment) in accounts.items():
            found = await eventually(lambda a=account_id: tier_in_planning(a), message=f"{account_id} reached planning")
            assert found == segment

        # The stable account books first; the strategic one a moment later, on the same SKU and week.
        for body in (order("SO-W", "ACC-W", 60), order("SO-S", "ACC-S", 80)):
            assert (await fulfillment.post("/v1/sales-orders", json=body, headers=crm)).status_code == 201

        async def booked() -> bool:
            plan = (await planning.get("/v1/mps/SKU-1", headers=planner)).json()
            return [w["booked_orders"] for w in plan["weeks"][:4]] == [0, 0, 140, 0]

        await eventually(booked, message="the orders never reached planning")

        async def promise_alerts(**params: Any) -> list[dict[str, Any]]:
            response = await returns.get("/v1/alerts", params={"type": "promise-at-risk", **params}, headers=crm)
            return list(response.json()["data"])

        # Supply drops to 40 a week: 120 by the promised week. The strategic line keeps its 80; the stable one
        # finds 40 of its 60 and is covered a week later.
        assert (await planning.put("/v1/items/SKU-1", json=item(40), headers=planner)).status_code == 200
        (alert,) = await eventually(promise_alerts, message="no promise-at-risk alert")
        assert (alert["status"], alert["priority"], alert["sku"]) == ("open", "normal", "SKU-1")
        assert alert["accounts"] == [{"account_id": "ACC-W", "name": "Webshop", "segment": "stable"}]
        details = alert["details"]
        assert (details["order_id"], details["line_id"], details["tier"]) == ("SO-W", "1", "stable")
        assert details["owner_email"] == "owner+stable@example.com"
        assert (details["quantity"], details["quantity_short"]) == (60, 20)
        assert (details["promised_on"], details["earliest_on"]) == (PROMISED, "2026-12-07")
        assert [d["type"] for d in details["drivers"]] == ["planning.item.updated"]
        assert await promise_alerts(account_id="ACC-S") == []

        async def received(count: int) -> bool:
            return len(receiver.requests) >= count

        await eventually(lambda: received(1), message="the CRM never received the alert")
        body, headers = receiver.requests[0]
        signed = Webhook(hook["secret"]).verify(body, headers)
        assert (signed["type"], signed["change"]) == ("sales-alert.promise-at-risk", "raised")
        assert signed["data"]["alert_id"] == alert["alert_id"]
        assert signed["data"]["accounts"][0]["segment"] == "stable"
        assert (signed["data"]["details"]["tier"], signed["data"]["details"]["earliest_on"]) == ("stable", "2026-12-07")

        # Capacity comes back: the promise is kept again and the alert resolves itself.
        assert (await planning.put("/v1/items/SKU-1", json=item(100), headers=planner)).status_code == 200

        async def resolved() -> dict[str, Any] | None:
            current = (await returns.get(f"/v1/alerts/{alert['alert_id']}", headers=crm)).json()
            return current if current["status"] == "resolved" else None

        closed = await eventually(resolved, message="restoring the capacity never resolved the alert")
        assert (closed["resolved_by"], closed["details"]["restored"]["earliest_on"]) == (None, PROMISED)
        await eventually(lambda: received(2), message="the CRM never heard of the resolution")
        update = Webhook(hook["secret"]).verify(*receiver.requests[1])
        assert (update["change"], update["data"]["status"]) == ("updated", "resolved")

        # An at-risk of the revision before the restore, delivered late, does not reopen it.
        fields = ("order_id", "line_id", "account_id", "tier", "sku", "quantity", "quantity_short", "promised_on")
        stale = PromiseData.model_validate(
            {k: details[k] for k in fields if k != "sku"}
            | {"sku": "SKU-1", "earliest_on": "2026-12-07", "plan_version": details["plan_version"]}
        )
        late = new_event(EventType.PROMISE_AT_RISK, source="test", subject="SO-W", data=stale)
        await produce(settings.kafka_bootstrap_servers, "salesops.plans", late.to_json(), key=b"SKU-1")

        async def consumed() -> bool:
            return bool(await db.fetchval("select count(*) from returns.inbox where event_id = $1", late.id))

        await eventually(consumed, message="the late event was never consumed")
        assert [a["status"] for a in await promise_alerts()] == ["resolved"]
        assert len(receiver.requests) == 2

    # The same two changes went out on the sales-alerts topic, keyed by the SKU (beside the capacity conflict the
    # cut caused and its restoration resolved).
    messages = await read_topic_to_end(settings.kafka_bootstrap_servers, "salesops.sales-alerts")
    changes = [(m.key, json.loads(m.value)) for m in messages]
    promises = [(key, e) for key, e in changes if e["data"]["type"] == "promise-at-risk"]
    assert [(key, e["type"], e["data"]["type"], e["data"]["status"]) for key, e in promises] == [
        (b"SKU-1", "salesops.sales-alert.raised.v1", "promise-at-risk", "open"),
        (b"SKU-1", "salesops.sales-alert.updated.v1", "promise-at-risk", "resolved"),
    ]
