"""People acknowledge and resolve alerts, on the real database and broker: who and when are recorded, the state
shows in the list and its filters, reaches a second client's stream, the sales-alerts topic and webhooks, and
the SSE data of a change is the very document its webhook carries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest

from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.events import CapacityConflictData, EventType, PromotionData, new_event
from shared.settings import Settings
from tests.sse_support import connected, next_events, serving
from tests.support import bearer, eventually, produce, read_topic_to_end

TODAY = date(2026, 11, 30)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(
        **settings.model_dump(), clock_today=TODAY, webhook_allow_private_targets=True, sse_poll_interval_s=0.5
    )


@dataclass
class BodyReceiver:
    """A CRM stand-in that records every webhook body and answers 200."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def critical(complaint_id: str, account_id: str = "ACME", severity: str = "critical") -> dict[str, Any]:
    return {
        "complaint_id": complaint_id,
        "account_id": account_id,
        "sku": "SKU-1",
        "category": "quality",
        "severity": severity,
        "description": "burning smell",
        "received_on": "2026-11-29",
    }


async def test_acknowledge_and_resolve_reach_the_list_a_second_stream_the_topic_and_webhooks(
    returns_settings, broker, api_keys
) -> None:
    crm, planner, desk = bearer(api_keys["crm"]), bearer(api_keys["planner"]), bearer(api_keys["returns-desk"])
    receiver = BodyReceiver()
    async with (
        serving(receiver) as hook_url,
        serving(build_app(returns_settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        registered = await http.post("/v1/webhooks", json={"url": hook_url + "/hook"}, headers=crm)
        assert registered.status_code == 201, registered.text
        async with (
            http.stream("GET", "/v1/alerts/stream", headers=crm) as crm_stream,
            http.stream("GET", "/v1/alerts/stream", headers=planner) as planner_stream,
        ):
            crm_lines, planner_lines = crm_stream.aiter_lines(), planner_stream.aiter_lines()
            await connected(crm_lines)
            await connected(planner_lines)
            assert (await http.post("/v1/complaints", json=critical("C-1"), headers=desk)).status_code == 201
            [alert] = (await http.get("/v1/alerts", headers=crm)).json()["data"]
            assert (alert["state"], alert["acknowledged_by"], alert["resolved_by"]) == ("open", None, None)
            alert_id = alert["alert_id"]

            assert (await http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=desk)).status_code == 403
            assert (await http.post("/v1/alerts/alrt_unknown/acknowledge", headers=crm)).status_code == 404

            acknowledged = await http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=crm)
            assert acknowledged.status_code == 200, acknowledged.text
            body = acknowledged.json()
            assert (body["state"], body["status"], body["acknowledged_by"], body["revision"]) == (
                "acknowledged",
                "open",
                "crm",
                2,
            )
            assert body["acknowledged_at"] is not None
            again = await http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=planner)
            assert (again.status_code, again.json()["acknowledged_by"], again.json()["revision"]) == (200, "crm", 2)

            listed = await http.get("/v1/alerts", params={"state": "acknowledged"}, headers=crm)
            assert [a["alert_id"] for a in listed.json()["data"]] == [alert_id]
            assert (await http.get("/v1/alerts", params={"state": "open"}, headers=crm)).json()["data"] == []

            resolved = await http.post(f"/v1/alerts/{alert_id}/resolve", headers=planner)
            assert resolved.status_code == 200, resolved.text
            assert (resolved.json()["state"], resolved.json()["resolved_by"], resolved.json()["revision"]) == (
                "resolved",
                "planner",
                3,
            )
            twice = await http.post(f"/v1/alerts/{alert_id}/resolve", headers=crm)
            assert (twice.status_code, twice.json()["revision"], twice.json()["resolved_by"]) == (200, 3, "planner")
            refused = await http.post(f"/v1/alerts/{alert_id}/acknowledge", headers=crm)
            assert refused.status_code == 409
            assert refused.headers["content-type"].startswith("application/problem+json")
            listed = await http.get("/v1/alerts", params={"state": "resolved"}, headers=crm)
            assert [a["alert_id"] for a in listed.json()["data"]] == [alert_id]
            assert (await http.get("/v1/alerts", params={"state": "nope"}, headers=crm)).status_code == 422

            seen_by_planner = await next_events(planner_lines, 3)
            seen_by_crm = await next_events(crm_lines, 3)
        assert [e.event for e in seen_by_planner] == [
            "sales-alert.raised",
            "sales-alert.updated",
            "sales-alert.updated",
        ]
        assert [e.data["data"]["state"] for e in seen_by_planner] == ["open", "acknowledged", "resolved"]
        assert seen_by_planner[1].data["data"]["acknowledged_by"] == "crm"
        assert seen_by_planner[2].data["data"]["resolved_by"] == "planner"
        assert [e.data for e in seen_by_crm] == [e.data for e in seen_by_planner]

        async def delivered() -> bool:
            return len(receiver.bodies) >= 3

        await eventually(delivered, message="three webhook deliveries")
        # One document per change on every push channel: the SSE data is the webhook body.
        by_revision = {body["data"]["revision"]: body for body in receiver.bodies}
        assert [by_revision[e.data["data"]["revision"]] for e in seen_by_planner] == [e.data for e in seen_by_planner]
        assert set(seen_by_planner[0].data) == {"type", "change", "timestamp", "data"}
        assert seen_by_planner[0].data["type"] == "sales-alert.critical-complaint"

    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.sales-alerts")
    events = [json.loads(m.value) for m in messages]
    assert [e["type"] for e in events] == [
        EventType.SALES_ALERT_RAISED.value,
        EventType.SALES_ALERT_UPDATED.value,
        EventType.SALES_ALERT_UPDATED.value,
    ]
    assert [e["data"]["state"] for e in events] == ["open", "acknowledged", "resolved"]
    assert (events[1]["data"]["acknowledged_by"], events[2]["data"]["resolved_by"]) == ("crm", "planner")


async def test_alerts_filter_by_tier(returns_settings, broker, api_keys, db) -> None:
    crm, desk = bearer(api_keys["crm"]), bearer(api_keys["returns-desk"])
    promotion = PromotionData.model_validate(
        {
            "promotion_id": "BF-2026",
            "name": "Black Friday",
            "starts_on": "2026-11-27",
            "ends_on": "2026-12-02",
            "items": [{"sku": "SKU-3", "uplift_pct": 50}],
            "account_segments": ["integrated"],
        }
    )
    shortfall = CapacityConflictData.model_validate(
        {"sku": "SKU-3", "promotion_ids": ["BF-2026"], "weeks": [{"week_start": "2026-11-30", "shortfall": 40}]}
    )
    async with serving(build_app(returns_settings)) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        await http.put("/v1/accounts/ACME", json={"name": "Acme", "segment": "strategic"}, headers=desk)
        await http.put("/v1/accounts/SMALL", json={"name": "Small", "segment": "stable"}, headers=desk)
        await http.post("/v1/complaints", json=critical("C-1", "ACME", severity="high"), headers=desk)
        await http.post("/v1/complaints", json=critical("C-2", "SMALL"), headers=desk)
        planned = new_event(EventType.PROMOTION_PLANNED, source="test", subject="BF-2026", data=promotion)
        await produce(broker.bootstrap_servers, "salesops.promotions", planned.to_json(), key=b"SKU-3")

        async def promotion_known() -> bool:
            return bool(await db.fetchval("select count(*) from returns.promotions where promotion_id = 'BF-2026'"))

        # The conflict's priority tiers come from the service's copy of the promotion: it must be there first.
        await eventually(promotion_known, message="promotion consumed")
        detected = new_event(EventType.CAPACITY_CONFLICT_DETECTED, source="test", subject="SKU-3", data=shortfall)
        await produce(broker.bootstrap_servers, "salesops.plans", detected.to_json(), key=b"SKU-3")

        async def alerts_of(segment: str) -> list[str]:
            response = await http.get("/v1/alerts", params={"segment": segment}, headers=crm)
            assert response.status_code == 200, response.text
            return sorted(a["details"].get("complaint_id") or a["type"] for a in response.json()["data"])

        async def conflict_raised() -> bool:
            response = await http.get("/v1/alerts", params={"type": "capacity-conflict"}, headers=crm)
            return bool(response.json()["data"])

        await eventually(conflict_raised, message="capacity-conflict alert raised")
        assert await alerts_of("strategic") == ["C-1"]
        assert await alerts_of("stable") == ["C-2"]
        assert await alerts_of("integrated") == ["capacity-conflict"]  # the promotion targets the tier
        assert await alerts_of("emerging") == []
        assert (await http.get("/v1/alerts", params={"segment": "gold"}, headers=crm)).status_code == 422
