"""Promotion lifecycle through the real broker: each change publishes exactly one event, keyed by the
promotion's first SKU; planning's capacity conflicts put a promotion at risk and back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.promotion_service.app import build_app
from shared.events import CapacityConflictData, EventType, ShortfallWeekData, Topic, new_event
from tests.integration.test_promotion_api import promotion
from tests.support import bearer, eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.asyncio


def conflict_event(
    event_type: EventType, sku: str, promotion_ids: list[str], shortfall: float = 0, plan_version: int = 1
) -> bytes:
    weeks = [ShortfallWeekData(week_start="2026-11-23", shortfall=shortfall)] if shortfall else []
    data = CapacityConflictData(
        sku=sku,
        promotion_ids=promotion_ids,
        weeks=weeks,
        total_shortfall=shortfall,
        plan_version=plan_version,
    )
    return new_event(event_type, source="salesops/planning-service", subject=sku, data=data).to_json()


async def test_create_revise_cancel_publish_one_event_each_in_order(settings, broker, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        body = promotion(items=[{"sku": "SKU-1", "uplift_pct": 50}, {"sku": "SKU-3", "uplift_pct": 5}])
        assert (await client.post("/v1/promotions", json=body, headers=headers)).status_code == 201
        assert (await client.post("/v1/promotions", json=body, headers=headers)).status_code == 200
        # The revision drops SKU-1, yet the events stay keyed by it so the lifecycle stays in order.
        revised = await client.patch(
            "/v1/promotions/BF-2026", json={"items": [{"sku": "SKU-3", "uplift_pct": 10}]}, headers=headers
        )
        assert revised.status_code == 200
        await client.patch(
            "/v1/promotions/BF-2026", json={"items": [{"sku": "SKU-3", "uplift_pct": 10}]}, headers=headers
        )
        assert (await client.post("/v1/promotions/BF-2026/cancel", headers=headers)).status_code == 200
        assert (await client.post("/v1/promotions/BF-2026/cancel", headers=headers)).status_code == 200
        launch = {"launch_id": "L-1", "sku": "NEW-1", "launch_on": "2026-12-01", "reference_sku": "OLD-1"}
        await client.post("/v1/launches", json=launch, headers=headers)
        await client.post("/v1/launches", json=launch, headers=headers)

    # Read after the shutdown drained the outbox: everything published, a duplicate included, and no more can come.
    messages = await read_topic_to_end(broker.bootstrap_servers, Topic.PROMOTIONS.value)
    events = [json.loads(m.value) for m in messages]
    promotion_events = [
        (m.key, e["type"], e["data"]["version"])
        for m, e in zip(messages, events, strict=True)
        if e["subject"] == "BF-2026"
    ]
    assert promotion_events == [
        (b"SKU-1", EventType.PROMOTION_PLANNED.value, 1),
        (b"SKU-1", EventType.PROMOTION_REVISED.value, 2),
        (b"SKU-1", EventType.PROMOTION_CANCELLED.value, 3),
    ]
    revised_event = next(e for e in events if e["type"] == EventType.PROMOTION_REVISED.value)
    assert revised_event["data"]["items"] == [{"sku": "SKU-3", "uplift_pct": 10.0}]
    assert revised_event["data"]["name"] == "Black Friday"  # the whole promotion, not a diff
    cancelled = next(e for e in events if e["type"] == EventType.PROMOTION_CANCELLED.value)
    assert cancelled["data"]["status"] == "cancelled"
    launches = [(m.key, e["type"]) for m, e in zip(messages, events, strict=True) if e["subject"] == "L-1"]
    assert launches == [(b"NEW-1", EventType.LAUNCH_PLANNED.value)]
    assert len(events) == 4


async def test_capacity_conflict_marks_at_risk_until_resolved(settings, broker, api_keys):
    headers = bearer(api_keys["marketing"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(settings)) as client:
        body = promotion(items=[{"sku": "SKU-1", "uplift_pct": 50}, {"sku": "SKU-3", "uplift_pct": 5}])
        await client.post("/v1/promotions", json=body, headers=headers)
        await client.post("/v1/promotions", json=promotion("OTHER", cannibalized=[]), headers=headers)

        async def status_of(promotion_id: str = "BF-2026") -> dict[str, Any]:
            return (await client.get(f"/v1/promotions/{promotion_id}", headers=headers)).json()

        # An unknown promotion in the same event is ignored, never a crash.
        detected = EventType.CAPACITY_CONFLICT_DETECTED
        await produce(
            bootstrap,
            Topic.PLANS.value,
            conflict_event(detected, "SKU-1", ["BF-2026", "GHOST"], 40),
            key=b"SKU-1",
        )
        await produce(bootstrap, Topic.PLANS.value, conflict_event(detected, "SKU-3", ["BF-2026"], 5), key=b"SKU-3")
        at_risk = await eventually(
            lambda: _when(
                status_of(),
                lambda p: p["status"] == "at_risk" and p["conflict"]["skus"] == ["SKU-1", "SKU-3"],
            )
        )
        assert at_risk["conflict"]["shortfall"] == 45
        assert at_risk["conflict"]["weeks"] == [{"week_start": "2026-11-23", "shortfall": 45.0}]
        assert (await status_of("OTHER"))["status"] == "planned"
        listed = await client.get("/v1/promotions", params={"status": "at_risk"}, headers=headers)
        assert [p["promotion_id"] for p in listed.json()["data"]] == ["BF-2026"]

        resolved = EventType.CAPACITY_CONFLICT_RESOLVED
        await produce(
            bootstrap,
            Topic.PLANS.value,
            conflict_event(resolved, "SKU-1", ["BF-2026"], plan_version=2),
            key=b"SKU-1",
        )
        partly = await eventually(lambda: _when(status_of(), lambda p: p["conflict"]["skus"] == ["SKU-3"]))
        assert partly["status"] == "at_risk"
        await produce(bootstrap, Topic.PLANS.value, conflict_event(resolved, "SKU-3", [], plan_version=2), key=b"SKU-3")
        planned = await eventually(lambda: _when(status_of(), lambda p: p["status"] == "planned"))
        assert planned["conflict"] is None

        # A cancelled promotion stays cancelled whatever planning reports.
        await client.post("/v1/promotions/OTHER/cancel", headers=headers)
        await produce(
            bootstrap,
            Topic.PLANS.value,
            conflict_event(detected, "SKU-1", ["OTHER"], 7, plan_version=3),
            key=b"SKU-1",
        )
        marker = f"M-{uuid.uuid4().hex[:6]}"
        await client.post("/v1/promotions", json=promotion(marker, cannibalized=[]), headers=headers)
        await produce(
            bootstrap,
            Topic.PLANS.value,
            conflict_event(detected, "SKU-1", [marker], 1, plan_version=3),
            key=b"SKU-1",
        )
        await eventually(lambda: _when(status_of(marker), lambda p: p["status"] == "at_risk"))
        other = await status_of("OTHER")
        assert other["status"] == "cancelled" and other["conflict"]["shortfall"] == 7

    # Status changes mirror planning's report and publish nothing.
    messages = await read_topic_to_end(bootstrap, Topic.PROMOTIONS.value)
    assert sorted(json.loads(m.value)["type"].rsplit(".", 2)[-2] for m in messages) == [
        "cancelled",
        "planned",
        "planned",
        "planned",
    ]


async def _when(response: Any, condition: Any) -> Any:
    value = await response
    return value if condition(value) else None
