"""Alerts from returns, complaints, shipped volumes, promotions and capacity conflicts, on the real
database and broker: thresholds, one open alert per SKU, priorities and the sales-alerts topic."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest

from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.events import (
    CapacityConflictData,
    CloudEvent,
    EventType,
    OrderVolumeReportedData,
    PromotionData,
    new_event,
)
from shared.settings import Settings
from tests.support import bearer, eventually, produce, read_topic_to_end, running

TODAY = date(2026, 11, 30)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY)


async def publish(bootstrap: str, topic: str, event_type: EventType, data: Any, key: str) -> CloudEvent:
    event = new_event(event_type, source="test", subject=key, data=data)
    await produce(bootstrap, topic, event.to_json(), key=key.encode())
    return event


async def ship(bootstrap: str, sku: str, units: int, day: str = "2026-11-25") -> None:
    data = OrderVolumeReportedData.model_validate(
        {
            "sku": sku,
            "days": [{"day": day, "units_ordered": units, "units_shipped": units, "units_backordered": 0}],
        }
    )
    await publish(bootstrap, "salesops.order-volumes", EventType.ORDER_VOLUME_REPORTED, data, sku)


def defective(n: int, account: str = "ACME", sku: str = "SKU-1") -> dict[str, Any]:
    return {
        "return_id": f"R-{sku}-{n}",
        "sku": sku,
        "quantity": 1,
        "account_id": account,
        "reason": "defective",
        "condition": "scrap",
        "returned_on": "2026-11-27",
    }


async def shipped_units(db: Any, sku: str) -> int:
    return int(await db.fetchval("select coalesce(sum(units_shipped), 0) from returns.daily_volumes where sku=$1", sku))


async def test_return_surge_raises_at_threshold_and_updates_after(returns_settings, broker, api_keys, db) -> None:
    desk, crm = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"])
    async with running(build_app(returns_settings)) as client:
        await client.put("/v1/accounts/ACME", json={"name": "Acme", "segment": "emerging"}, headers=desk)
        await ship(broker.bootstrap_servers, "SKU-1", 100)
        await eventually(lambda: shipped_units(db, "SKU-1"), message="volumes consumed")

        for n in range(4):  # 4 returns = 4 %: below both thresholds
            assert (await client.post("/v1/returns", json=defective(n), headers=desk)).status_code == 201
        assert (await client.get("/v1/alerts", headers=crm)).json()["data"] == []

        await client.post("/v1/returns", json=defective(4), headers=desk)  # 5 returns = 5 %: at threshold
        alerts = (await client.get("/v1/alerts", params={"sku": "SKU-1"}, headers=crm)).json()["data"]
        assert len(alerts) == 1
        raised = alerts[0]
        assert (raised["type"], raised["status"], raised["revision"]) == ("return-surge", "open", 1)
        assert raised["details"]["rate"] == pytest.approx(0.05)
        assert raised["details"]["quality_return_count"] == 5
        assert raised["details"]["top_reasons"] == [{"reason": "defective", "units": 5, "returns": 5}]
        assert raised["accounts"] == [{"account_id": "ACME", "name": "Acme", "segment": "emerging"}]
        assert raised["priority"] == "normal"

        await client.post("/v1/returns", json=defective(5, account="BIGCO"), headers=desk)  # more evidence
        alerts = (await client.get("/v1/alerts", headers=crm)).json()["data"]
        assert [(a["alert_id"], a["revision"]) for a in alerts] == [(raised["alert_id"], 2)]
        assert sorted(alerts[0]["account_ids"]) == ["ACME", "BIGCO"]

        # A promotion pushing the product now is attached to the open alert.
        promo = PromotionData.model_validate(
            {
                "promotion_id": "BF-2026",
                "name": "Black Friday",
                "starts_on": "2026-11-27",
                "ends_on": "2026-12-02",
                "items": [{"sku": "SKU-1", "uplift_pct": 50}],
                "account_segments": ["strategic"],
            }
        )
        await publish(broker.bootstrap_servers, "salesops.promotions", EventType.PROMOTION_PLANNED, promo, "SKU-1")

        async def promoted() -> Any:
            alert = (await client.get(f"/v1/alerts/{raised['alert_id']}", headers=crm)).json()
            return alert if alert["details"]["active_promotions"] else None

        alert = await eventually(promoted, message="promotion attached to the surge alert")
        assert alert["details"]["active_promotions"][0]["promotion_id"] == "BF-2026"
        assert alert["revision"] == 3

        # Shipped units grow: the rate drops below the threshold, but the alert is not withdrawn.
        await ship(broker.bootstrap_servers, "SKU-1", 1000, day="2026-11-26")
        await eventually(lambda: _equals(shipped_units(db, "SKU-1"), 1100))
        assert (await client.get(f"/v1/alerts/{raised['alert_id']}", headers=crm)).json()["status"] == "open"

    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.sales-alerts")
    events = [json.loads(m.value) for m in messages]
    assert [e["type"] for e in events] == [
        "salesops.sales-alert.raised.v1",
        "salesops.sales-alert.updated.v1",
        "salesops.sales-alert.updated.v1",
    ]
    assert {m.key for m in messages} == {b"SKU-1"}
    assert [e["data"]["revision"] for e in events] == [1, 2, 3]
    assert events[0]["data"]["accounts"][0]["segment"] == "emerging"


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_surge_counts_only_quality_returns_in_window(returns_settings, broker, api_keys, db) -> None:
    desk, crm = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"])
    async with running(build_app(returns_settings)) as client:
        for n in range(5):
            await client.post("/v1/returns", json={**defective(n), "reason": "no_longer_needed"}, headers=desk)
        for n in range(5, 10):
            await client.post("/v1/returns", json={**defective(n), "returned_on": "2026-11-01"}, headers=desk)
        assert (await client.get("/v1/alerts", headers=crm)).json()["data"] == []


async def test_critical_complaint_from_strategic_account_is_high_priority(returns_settings, api_keys) -> None:
    desk, crm = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"])
    complaint = {
        "complaint_id": "C-9",
        "account_id": "ACME",
        "sku": "SKU-7",
        "category": "quality",
        "severity": "high",
        "description": "units arrive cracked",
        "received_on": "2026-11-29",
    }
    async with running(build_app(returns_settings)) as client:
        await client.put("/v1/accounts/ACME", json={"name": "Acme", "segment": "strategic"}, headers=desk)
        await client.post("/v1/complaints", json={**complaint, "complaint_id": "C-8", "account_id": "X"}, headers=desk)
        assert (await client.get("/v1/alerts", headers=crm)).json()["data"] == []  # high, no tier: no alert
        assert (await client.post("/v1/complaints", json=complaint, headers=desk)).status_code == 201
        alerts = (await client.get("/v1/alerts", params={"account_id": "ACME"}, headers=crm)).json()["data"]
        assert len(alerts) == 1
        assert (alerts[0]["type"], alerts[0]["priority"]) == ("critical-complaint", "high")
        assert alerts[0]["accounts"] == [{"account_id": "ACME", "name": "Acme", "segment": "strategic"}]
        assert alerts[0]["details"]["complaint_id"] == "C-9"
        by_type = await client.get("/v1/alerts", params={"type": "return-surge"}, headers=crm)
        assert by_type.json()["data"] == []
        bad = await client.get("/v1/alerts", params={"type": "nope"}, headers=crm)
        assert bad.status_code == 422
        assert (await client.get("/v1/alerts/alrt_missing", headers=crm)).status_code == 404


async def test_capacity_conflict_raises_updates_and_resolves(returns_settings, broker, api_keys) -> None:
    crm = bearer(api_keys["crm"])
    detected = {
        "sku": "SKU-3",
        "promotion_ids": ["BF-2026"],
        "weeks": [{"week_start": "2026-11-23", "shortfall": 40}],
        "total_shortfall": 40,
        "plan_version": 3,
    }

    async def conflict_alerts() -> list[dict[str, Any]]:
        response = await client.get("/v1/alerts", params={"type": "capacity-conflict"}, headers=crm)
        return list(response.json()["data"])

    async with running(build_app(returns_settings)) as client:
        bootstrap = broker.bootstrap_servers
        data = CapacityConflictData.model_validate(detected)
        await publish(bootstrap, "salesops.plans", EventType.CAPACITY_CONFLICT_DETECTED, data, "SKU-3")
        [alert] = await eventually(conflict_alerts, message="conflict alert raised")
        assert alert["details"]["weeks"] == [{"week_start": "2026-11-23", "shortfall": 40.0}]

        worse = CapacityConflictData.model_validate(
            {**detected, "total_shortfall": 60, "weeks": [{"week_start": "2026-11-23", "shortfall": 60}]}
        )
        await publish(bootstrap, "salesops.plans", EventType.CAPACITY_CONFLICT_DETECTED, worse, "SKU-3")
        await eventually(lambda: _revision(client, alert["alert_id"], crm, 2), message="conflict updated")

        await publish(bootstrap, "salesops.plans", EventType.CAPACITY_CONFLICT_RESOLVED, worse, "SKU-3")
        await eventually(lambda: _revision(client, alert["alert_id"], crm, 3), message="conflict resolved")
        final = (await client.get(f"/v1/alerts/{alert['alert_id']}", headers=crm)).json()
        assert final["status"] == "resolved"
        assert len(await conflict_alerts()) == 1
    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.sales-alerts")
    assert [json.loads(m.value)["data"]["status"] for m in messages] == ["open", "open", "resolved"]


async def _revision(client: Any, alert_id: str, headers: dict[str, str], revision: int) -> bool:
    return bool((await client.get(f"/v1/alerts/{alert_id}", headers=headers)).json()["revision"] == revision)


async def test_alert_list_paginates(returns_settings, api_keys) -> None:
    desk, crm = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"])
    async with running(build_app(returns_settings)) as client:
        for n in range(3):
            body = {
                "complaint_id": f"C-{uuid.uuid4().hex[:6]}-{n}",
                "account_id": "ANY",
                "category": "quality",
                "severity": "critical",
                "description": "fire",
                "received_on": "2026-11-29",
            }
            assert (await client.post("/v1/complaints", json=body, headers=desk)).status_code == 201
        first = (await client.get("/v1/alerts", params={"limit": 2}, headers=crm)).json()
        assert len(first["data"]) == 2 and first["next_cursor"]
        second = (
            await client.get("/v1/alerts", params={"limit": 2, "cursor": first["next_cursor"]}, headers=crm)
        ).json()
        assert len(second["data"]) == 1 and second["next_cursor"] is None
        ids = [a["alert_id"] for a in first["data"] + second["data"]]
        assert len(set(ids)) == 3
        bad = await client.get("/v1/alerts", params={"cursor": "garbage!"}, headers=crm)
        assert bad.status_code == 422
        since = await client.get("/v1/alerts", params={"since": "2199-12-31"}, headers=crm)
        assert since.json()["data"] == []
