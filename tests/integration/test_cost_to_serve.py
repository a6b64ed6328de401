"""Cost-to-serve on the real database and broker: sales-order events (with duplicates, an older version arriving
late, a correction) and returns and complaints over HTTP become the hand-computed ledger; rates re-price it;
the account-unprofitable alert is raised once, then resolved when a correction makes the account profitable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.events import CloudEvent, EventType, SalesOrderData, ShipmentRecordedData, new_event
from shared.settings import Settings
from tests.support import bearer, eventually, produce, running

TODAY = date(2026, 12, 10)
NOVEMBER = "2026-11-01"


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY)


def order(
    version: int, *, shipped: tuple[int, int], l1_price: float = 20, status: str = "open", **extra: Any
) -> dict[str, Any]:
    """SO-1 of ACC-X at a version: 10 x SKU-1 and 4 x SKU-2, both promised 5 November, a rush order."""
    quantities = (10, 4)
    prices = ((l1_price, 12), (50, 30))
    return {
        "order_id": "SO-1",
        "account_id": "ACC-X",
        "tier": "stable",
        "ordered_on": "2026-11-02",
        "rush": True,
        "status": status,
        "version": version,
        "booked_at": datetime(2026, 11, 2, tzinfo=UTC).isoformat(),
        "lines": [
            {
                "line_id": f"L{n + 1}",
                "sku": f"SKU-{n + 1}",
                "quantity": quantities[n],
                "requested_on": "2026-11-05",
                "promised_on": "2026-11-05",
                "unit_price": prices[n][0],
                "unit_cost": prices[n][1],
                "shipped_quantity": shipped[n],
                "open_quantity": 0 if status == "cancelled" else quantities[n] - shipped[n],
            }
            for n in range(2)
        ],
        **extra,
    }


def booked(body: dict[str, Any], event_type: EventType = EventType.SALES_ORDER_BOOKED) -> CloudEvent:
    return new_event(event_type, source="test", subject=body["order_id"], data=SalesOrderData.model_validate(body))


def shipped(body: dict[str, Any], shipment_id: str, on: str, lines: list[tuple[str, str, int]]) -> CloudEvent:
    shipment = {
        "shipment_id": shipment_id,
        "shipped_on": on,
        "lines": [{"line_id": i, "sku": s, "quantity": q} for i, s, q in lines],
    }
    data = ShipmentRecordedData.model_validate({**body, "shipment": shipment})
    return new_event(EventType.SHIPMENT_RECORDED, source="test", subject=body["order_id"], data=data)


async def send(bootstrap: str, event: CloudEvent) -> None:
    await produce(bootstrap, "salesops.orders", event.to_json(), key=event.subject.encode() if event.subject else None)


def pools(month: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {p["pool"]: (p["count"], p["amount"]) for p in month["pools"]}


async def ledger(client: Any, key: dict[str, str], account_id: str = "ACC-X") -> dict[str, Any]:
    response = await client.get(
        f"/v1/accounts/{account_id}/cost-to-serve", params={"from": "2026-10-01", "to": "2026-12-31"}, headers=key
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def version_seen(db: Any, version: int) -> bool:
    return await db.fetchval("select version from returns.cost_orders where order_id = 'SO-1'") == version


async def unprofitable_account(
    client: Any, bootstrap: str, db: Any, desk: dict[str, str], crm: dict[str, str]
) -> dict[str, Any]:
    """ACC-X (stable): SO-1 booked and shipped in two drops (versions 1-3, one delivered twice, an old one late),
    then a scrapped return and a complaint; returns its ledger once counted (contribution -38.7 in November)."""
    await client.put("/v1/accounts/ACC-X", json={"name": "Xeno", "segment": "stable"}, headers=desk)
    v1 = booked(order(1, shipped=(0, 0)))
    v2 = shipped(order(2, shipped=(10, 2)), "SH-1", "2026-11-04", [("L1", "SKU-1", 10), ("L2", "SKU-2", 2)])
    v3 = shipped(order(3, shipped=(10, 4)), "SH-2", "2026-11-09", [("L2", "SKU-2", 2)])  # L2 late
    for event in (v1, v2, v2, v3):  # v2 twice: the same event delivered again
        await send(bootstrap, event)
    await send(bootstrap, booked(order(1, shipped=(0, 0))))  # an older version, late, under a new id
    await eventually(lambda: version_seen(db, 3), message="order consumed")
    ret = {
        "return_id": "R-1",
        "sku": "SKU-1",
        "quantity": 2,
        "account_id": "ACC-X",
        "reason": "defective",
        "condition": "scrap",
        "returned_on": "2026-11-20",
        "order_id": "SO-1",
        "resolution": "refund",
    }
    assert (await client.post("/v1/returns", json=ret, headers=desk)).status_code == 201
    complaint = {
        "complaint_id": "C-1",
        "account_id": "ACC-X",
        "category": "delivery",
        "severity": "low",
        "description": "late again",
        "received_on": "2026-11-21",
    }
    assert (await client.post("/v1/complaints", json=complaint, headers=desk)).status_code == 201

    async def stable_ledger() -> dict[str, Any] | None:
        found = await ledger(client, crm)
        if not found["months"]:
            return None
        counted = pools(found["months"][0])
        # Drops are counted as they are consumed; the return and the complaint by the recount shortly after them.
        return (
            found if (counted["shipment"][0], counted["return_line"][0], counted["complaint"][0]) == (2, 1, 1) else None
        )

    return await eventually(stable_ledger, message="ledger counted")


async def test_orders_returns_and_complaints_make_the_hand_computed_ledger_and_alert(
    returns_settings, broker, api_keys, db
) -> None:
    desk, crm, admin = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"]), bearer(api_keys["admin"])
    bootstrap = broker.bootstrap_servers
    async with running(build_app(returns_settings)) as client:
        found = await unprofitable_account(client, bootstrap, db, desk, crm)
        (november,) = found["months"]
        assert november["month"] == NOVEMBER
        assert pools(november) == {
            "order": (1, 12.0),
            "order_line": (2, 3.0),
            "unit_picked": (14, pytest.approx(0.7)),
            "shipment": (2, 50.0),
            "backordered_line": (1, 8.0),  # L2: 2 of 4 by 5 November
            "rush_order": (1, 40.0),
            "return_line": (1, 15.0),
            "complaint": (1, 30.0),
            "returned_goods": (2, 24.0),  # scrapped: 2 x unit cost 12
        }
        assert november["revenue"] == 360  # 10 x 20 + 4 x 50, less the refund of 2 x 20
        assert november["cost_of_goods"] == 216  # 10 x 12 + 4 x 30, less 2 x 12 back
        assert november["cost_to_serve"] == pytest.approx(182.7)
        assert november["contribution"] == pytest.approx(-38.7)
        assert found["totals"]["contribution"] == pytest.approx(-38.7)
        assert (found["segment"], found["currency"]) == ("stable", "EUR")

        # Unprofitable while nothing had shipped, profitable after the first drop (resolved), unprofitable again
        # after the late drop, the return and the complaint: one open alert, however many events re-evaluated it.
        query = {"type": "account-unprofitable", "status": "open"}
        alerts = (await client.get("/v1/alerts", params=query, headers=crm)).json()["data"]
        assert len(alerts) == 1
        alert = alerts[0]
        assert (alert["status"], alert["account_ids"], alert["priority"]) == ("open", ["ACC-X"], "normal")
        assert alert["details"]["contribution"] == pytest.approx(-38.7)
        assert [p["pool"] for p in alert["details"]["largest_pools"]] == ["shipment", "rush_order", "complaint"]

        # A rate change re-prices history: the same counts, the new amounts.
        put = await client.put("/v1/cost-rates", json={"currency": "EUR", "shipment": 50}, headers=admin)
        assert put.status_code == 200, put.text
        assert (put.json()["shipment"], put.json()["order"]) == (50, 12)
        repriced = (await ledger(client, crm))["months"][0]
        assert pools(repriced)["shipment"] == (2, 100.0)
        assert repriced["cost_to_serve"] == pytest.approx(232.7)
        assert (await client.put("/v1/cost-rates", json={"shipment": -1}, headers=admin)).status_code == 422
        assert (await client.put("/v1/cost-rates", json={"currency": "eur"}, headers=admin)).status_code == 422
        assert (await client.put("/v1/cost-rates", json={"shipment": 25}, headers=admin)).status_code == 200

        # A correction: SKU-1 was sold at 30, not 20. The account is profitable again and the alert resolves.
        await send(bootstrap, booked(order(4, shipped=(10, 4), l1_price=30), EventType.SALES_ORDER_CHANGED))
        await eventually(lambda: version_seen(db, 4), message="correction consumed")

        async def resolved() -> Any:
            found = (await client.get(f"/v1/alerts/{alert['alert_id']}", headers=crm)).json()
            return found if found["status"] == "resolved" else None

        closed = await eventually(resolved, message="alert resolved")
        assert closed["resolved_by"] is None  # the cause went away
        corrected = (await ledger(client, crm))["months"][0]
        assert corrected["revenue"] == 440  # 10 x 30 + 4 x 50 - 2 x 30
        assert corrected["contribution"] == pytest.approx(440 - 216 - 182.7)


async def test_rates_that_change_the_verdict_resolve_the_alert_at_once_not_at_the_next_refresh(
    settings, broker, api_keys, db
) -> None:
    desk, crm, admin = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"]), bearer(api_keys["admin"])
    # The periodic refresh is an hour away: only the rate change itself can re-evaluate the alert in time.
    hourly = ReturnsSettings(**settings.model_dump(), clock_today=TODAY, cost_refresh_interval_s=3600)
    async with running(build_app(hourly)) as client:
        await unprofitable_account(client, broker.bootstrap_servers, db, desk, crm)
        query = {"type": "account-unprofitable", "status": "open"}
        [alert] = (await client.get("/v1/alerts", params=query, headers=crm)).json()["data"]

        # Without the rush, complaint and shipment charges, ACC-X contributes 360 - 216 - 62.7 = 81.3.
        cheaper = {"currency": "EUR", "rush_order": 0, "complaint": 0, "shipment": 0}
        assert (await client.put("/v1/cost-rates", json=cheaper, headers=admin)).status_code == 200

        async def resolved() -> Any:
            found = (await client.get(f"/v1/alerts/{alert['alert_id']}", headers=crm)).json()
            return found if found["status"] == "resolved" else None

        closed = await eventually(resolved, timeout=20, message="alert resolved after the rate change")
        assert closed["resolved_by"] is None


async def test_the_whale_curve_ranks_accounts_and_totals_their_segments(returns_settings, broker, api_keys, db):
    desk, crm = bearer(api_keys["returns-desk"]), bearer(api_keys["crm"])
    async with running(build_app(returns_settings)) as client:
        await client.put("/v1/accounts/ACC-S", json={"name": "Strata", "segment": "strategic"}, headers=desk)
        await client.put("/v1/accounts/ACC-X", json={"name": "Xeno", "segment": "stable"}, headers=desk)
        big = {**order(1, shipped=(10, 4)), "order_id": "SO-9", "account_id": "ACC-S", "rush": False}
        await send(broker.bootstrap_servers, booked(big))
        small = order(2, shipped=(10, 4))
        await send(
            broker.bootstrap_servers,
            shipped(small, "SH-1", "2026-11-04", [("L1", "SKU-1", 10), ("L2", "SKU-2", 4)]),
        )

        async def both() -> Any:
            answer = (await client.get("/v1/cost-to-serve", params={"from": "2026-11-01"}, headers=crm)).json()
            return answer if answer["accounts_total"] == 2 else None

        answer = await eventually(both, message="both accounts counted")
        ranked = [(a["rank"], a["account_id"], a["segment"]) for a in answer["accounts"]]
        # ACC-S: no drop recorded, so no revenue; its two lines are backordered: -(12 + 3 + 2 x 8) = -31.
        # ACC-X: 400 - 240 - (12 + 3 + 0.7 + 25 + 40) = 79.3
        assert ranked == [(1, "ACC-X", "stable"), (2, "ACC-S", "strategic")]
        assert answer["accounts"][0]["contribution"] == pytest.approx(79.3)
        assert answer["accounts"][1]["cumulative_contribution"] == pytest.approx(79.3 - 31)
        assert answer["accounts"][1]["cumulative_share"] == pytest.approx(1.0)
        by_segment = {s["segment"]: s for s in answer["segments"]}
        assert by_segment["stable"]["contribution"] == pytest.approx(79.3)
        assert by_segment["strategic"]["accounts"] == 1
        assert answer["totals"]["contribution"] == pytest.approx(48.3)
        only = (await client.get("/v1/cost-to-serve", params={"segment": "strategic"}, headers=crm)).json()
        assert [a["account_id"] for a in only["accounts"]] == ["ACC-S"]
        bad = await client.get("/v1/cost-to-serve", params={"from": "2026-12-01", "to": "2026-11-01"}, headers=crm)
        assert bad.status_code == 422 and "from" in bad.text
        assert (await client.get("/v1/accounts/NOBODY/cost-to-serve", headers=crm)).status_code == 404
        assert (await client.get("/v1/cost-to-serve", headers=desk)).status_code == 403
