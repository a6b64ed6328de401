"""Spikes end to end: detected on a burst, retracted by a correction, explained by a promotion event."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from services.fulfillment_service.app import build_app
from shared.events import EventType, PromotionData, Topic, new_event
from tests.integration.test_order_volumes import line, report
from tests.support import bearer, eventually, produce, read_topic_to_end, running

pytestmark = pytest.mark.asyncio

SPIKE_DAY = date(2026, 11, 27)


def flat_history(sku: str, days: int = 28, units: int = 100) -> list[dict[str, Any]]:
    """`days` days of steady orders before SPIKE_DAY, split over two warehouses' worth of lines."""
    return [line(sku, SPIKE_DAY - timedelta(days=i), units) for i in range(1, days + 1)]


def spike_events(messages: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    events = [json.loads(m.value) for m in messages]
    return [(e["type"], e["data"]) for e in events if "order-spike" in e["type"]]


async def test_spike_is_detected_then_retracted_by_a_correction(settings, broker, api_keys):
    headers = bearer(api_keys["warehouse"])
    async with running(build_app(settings)) as client:
        await client.post("/v1/order-volumes", json=report(*flat_history("SKU-1")), headers=headers)
        # Neither warehouse alone, but their sum is a spike: the rule judges all warehouses together.
        await client.post("/v1/order-volumes", json=report(line("SKU-1", SPIKE_DAY, 120)), headers=headers)
        west = report(line("SKU-1", SPIKE_DAY, 330), warehouse_id="DC-WEST")
        await client.post("/v1/order-volumes", json=west, headers=headers)
        spikes = (await client.get("/v1/spikes", params={"sku": "SKU-1"}, headers=headers)).json()["data"]
        assert [(s["day"], s["units"], s["baseline"], s["status"]) for s in spikes] == [
            ("2026-11-27", 450.0, 100.0, "detected")
        ]
        assert spikes[0]["explained_by_promotion_id"] is None and spikes[0]["ratio"] == 4.5

        # The west figure was a typo: the corrected total is no spike, and no stale one stays behind.
        fixed = report(line("SKU-1", SPIKE_DAY, 0), warehouse_id="DC-WEST")
        await client.post("/v1/order-volumes", json=fixed, headers=headers)
        assert (await client.get("/v1/spikes", headers=headers)).json()["data"] == []
        retracted = await client.get("/v1/spikes", params={"include_retracted": "true"}, headers=headers)
        assert [s["status"] for s in retracted.json()["data"]] == ["retracted"]

    messages = await read_topic_to_end(broker.bootstrap_servers, Topic.ORDER_VOLUMES.value)
    found = spike_events(messages)
    assert [(t, d["day"], d["units"], d["status"]) for t, d in found] == [
        (EventType.ORDER_SPIKE_DETECTED.value, "2026-11-27", 120.0 + 330.0, "detected"),
        (EventType.ORDER_SPIKE_RETRACTED.value, "2026-11-27", 450.0, "retracted"),
    ]


async def test_flat_history_and_short_history_never_spike(settings, api_keys):
    headers = bearer(api_keys["warehouse"])
    async with running(build_app(settings)) as client:
        await client.post("/v1/order-volumes", json=report(*flat_history("FLAT", days=60)), headers=headers)
        # Five days of history is too little to judge, however large the jump.
        short = [*flat_history("NEW", days=5, units=10), line("NEW", SPIKE_DAY, 1000)]
        await client.post("/v1/order-volumes", json=report(*short), headers=headers)
        assert (await client.get("/v1/spikes", headers=headers)).json()["data"] == []


async def test_spike_during_a_promotion_is_explained(settings, broker, api_keys):
    headers = bearer(api_keys["warehouse"])
    bootstrap = broker.bootstrap_servers
    promotion = PromotionData(
        promotion_id="BF-2026",
        name="Black Friday",
        starts_on=SPIKE_DAY,
        ends_on=SPIKE_DAY + timedelta(days=3),
        items=[{"sku": "SKU-P", "uplift_pct": 50}],
    )
    planned = new_event(
        EventType.PROMOTION_PLANNED, source="salesops/promotion-service", subject="BF-2026", data=promotion
    )
    async with running(build_app(settings)) as client:

        async def spikes(sku: str) -> list[dict[str, Any]]:
            response = await client.get("/v1/spikes", params={"sku": sku}, headers=headers)
            return list(response.json()["data"])

        # A spike reported before the promotion is known is unexplained; the promotion event explains it.
        burst = report(
            *flat_history("SKU-P"),
            line("SKU-P", SPIKE_DAY, 400),
            *flat_history("SKU-Q"),
            line("SKU-Q", SPIKE_DAY, 400),
        )
        await client.post("/v1/order-volumes", json=burst, headers=headers)
        assert [s["explained_by_promotion_id"] for s in await spikes("SKU-P")] == [None]
        await produce(bootstrap, Topic.PROMOTIONS.value, planned.to_json(), key=b"SKU-P")

        async def explained() -> bool:
            return [s["explained_by_promotion_id"] for s in await spikes("SKU-P")] == ["BF-2026"]

        await eventually(explained)
        # A SKU the promotion does not cover stays unexplained; a new spike inside the window is explained.
        assert [s["explained_by_promotion_id"] for s in await spikes("SKU-Q")] == [None]
        next_day = SPIKE_DAY + timedelta(days=1)
        await client.post("/v1/order-volumes", json=report(line("SKU-P", next_day, 500)), headers=headers)
        assert [(s["day"], s["explained_by_promotion_id"]) for s in await spikes("SKU-P")] == [
            ("2026-11-27", "BF-2026"),
            ("2026-11-28", "BF-2026"),
        ]

        # Cancelling the promotion takes the explanation away again.
        cancelled_data = promotion.model_copy(update={"status": "cancelled", "version": 2})
        cancelled = new_event(
            EventType.PROMOTION_CANCELLED,
            source="salesops/promotion-service",
            subject="BF-2026",
            data=cancelled_data,
        )
        await produce(bootstrap, Topic.PROMOTIONS.value, cancelled.to_json(), key=b"SKU-P")

        async def unexplained() -> bool:
            return all(s["explained_by_promotion_id"] is None for s in await spikes("SKU-P"))

        await eventually(unexplained)
    messages = await read_topic_to_end(bootstrap, Topic.ORDER_VOLUMES.value)
    detected = [(d["sku"], d["day"], d["explained_by_promotion_id"]) for t, d in spike_events(messages)]
    assert sorted(detected, key=lambda x: (x[0], x[1], x[2] or "")) == sorted(
        [
            ("SKU-P", "2026-11-27", None),
            ("SKU-P", "2026-11-27", "BF-2026"),
            ("SKU-P", "2026-11-27", None),
            ("SKU-P", "2026-11-28", "BF-2026"),
            ("SKU-P", "2026-11-28", None),
            ("SKU-Q", "2026-11-27", None),
        ],
        key=lambda x: (x[0], x[1], x[2] or ""),
    )
