"""Sales orders over HTTP against the real database and broker: the lifecycle (book, change, ship, cancel) with
its answers, backorders on the service's pinned clock, lists with filters and cursors, and 4xx naming fields."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.fulfillment_service.app import build_app
from services.fulfillment_service.settings import FulfillmentSettings
from shared.settings import Settings
from tests.support import bearer, running

pytestmark = pytest.mark.asyncio

TODAY = date(2026, 12, 10)


def pinned(settings: Settings, today: date = TODAY) -> FulfillmentSettings:
    return FulfillmentSettings(**settings.model_dump(), clock_today=today)


def an_order(order_id: str = "SO-1001", account_id: str = "ACC-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order_id,
        "account_id": account_id,
        "ordered_on": "2026-11-30",
        "rush": False,
        "lines": [
            {
                "line_id": "1",
                "sku": "SKU-1",
                "quantity": 120,
                "requested_on": "2026-12-14",
                "unit_price": 19.5,
                "unit_cost": 11.0,
            },
            {"line_id": "2", "sku": "SKU-2", "quantity": 30, "requested_on": "2026-12-07", "promised_on": "2026-12-09"},
        ],
    }
    return {**body, **changes}


def fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def line_figures(order: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    return [
        (li["line_id"], li["shipped_quantity"], li["open_quantity"], li["backordered_quantity"])
        for li in order["lines"]
    ]


async def test_an_order_is_booked_changed_shipped_and_cancelled(settings, api_keys):
    crm = bearer(api_keys["crm"])
    async with running(build_app(pinned(settings))) as client:
        created = await client.post("/v1/sales-orders", json=an_order(), headers=crm)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/v1/sales-orders/SO-1001"
        order = created.json()
        assert (order["version"], order["status"], order["tier"], order["as_of"]) == (1, "open", None, "2026-12-10")
        assert order["lines"][0]["promised_on"] == "2026-12-14"  # defaults to requested_on
        # Line 2 was promised for 9 December and nothing has shipped: all 30 are backordered on the 10th.
        assert line_figures(order) == [("1", 0, 120, 0), ("2", 0, 30, 30)]
        assert (order["open_quantity"], order["backordered_quantity"]) == (150, 30)

        retry = await client.post("/v1/sales-orders", json=an_order(), headers=crm)
        assert (retry.status_code, retry.json()["version"]) == (200, 1)
        different = await client.post("/v1/sales-orders", json=an_order(rush=True), headers=crm)
        assert different.status_code == 409
        assert different.headers["content-type"].startswith("application/problem+json")

        change = {
            "lines": [
                {"line_id": "1", "quantity": 100, "unit_price": None},
                {"line_id": "2", "promised_on": "2026-12-11"},
                {"line_id": "3", "sku": "SKU-3", "quantity": 8, "requested_on": "2026-12-18"},
            ]
        }
        changed = await client.patch("/v1/sales-orders/SO-1001", json=change, headers=crm)
        assert changed.status_code == 200, changed.text
        assert changed.json()["version"] == 2
        assert line_figures(changed.json()) == [("1", 0, 100, 0), ("2", 0, 30, 0), ("3", 0, 8, 0)]
        prices = [(li["unit_price"], li["unit_cost"]) for li in changed.json()["lines"]]
        assert prices == [(None, 11.0), (None, None), (None, None)]
        assert changed.json()["lines"][2]["promised_on"] == "2026-12-18"

        drop = {"shipment_id": "SH-1", "shipped_on": "2026-12-10", "lines": [{"line_id": "1", "quantity": 60}]}
        shipped = await client.post("/v1/sales-orders/SO-1001/shipments", json=drop, headers=crm)
        assert shipped.status_code == 201, shipped.text
        assert shipped.json()["shipment"]["order_version"] == 3
        assert shipped.json()["order"]["status"] == "partially_shipped"
        again = await client.post("/v1/sales-orders/SO-1001/shipments", json=drop, headers=crm)
        assert (again.status_code, again.json()["order"]["version"]) == (200, 3)

        over = {"shipment_id": "SH-2", "shipped_on": "2026-12-10", "lines": [{"line_id": "1", "quantity": 41}]}
        refused = await client.post("/v1/sales-orders/SO-1001/shipments", json=over, headers=crm)
        assert (refused.status_code, fields(refused)) == (409, ["lines.0.quantity"])
        below = {"lines": [{"line_id": "1", "quantity": 59}]}
        too_low = await client.patch("/v1/sales-orders/SO-1001", json=below, headers=crm)
        assert (too_low.status_code, fields(too_low)) == (409, ["lines.0.quantity"])

        cancelled = await client.post("/v1/sales-orders/SO-1001/cancel", headers=crm)
        assert (cancelled.status_code, cancelled.json()["status"], cancelled.json()["version"]) == (200, "cancelled", 4)
        assert line_figures(cancelled.json()) == [("1", 60, 0, 0), ("2", 0, 0, 0), ("3", 0, 0, 0)]
        assert (await client.post("/v1/sales-orders/SO-1001/cancel", headers=crm)).json()["version"] == 4
        late = await client.patch("/v1/sales-orders/SO-1001", json={"rush": True}, headers=crm)
        assert (late.status_code, fields(late)) == (409, ["order_id"])

        read = await client.get("/v1/sales-orders/SO-1001", headers=bearer(api_keys["planner"]))
        assert read.json() == cancelled.json()
        missing = await client.get("/v1/sales-orders/SO-404", headers=crm)
        assert missing.status_code == 404


async def test_backorders_follow_the_service_clock(settings, api_keys):
    crm = bearer(api_keys["crm"])
    async with running(build_app(pinned(settings, date(2026, 12, 14)))) as client:
        await client.post("/v1/sales-orders", json=an_order(), headers=crm)
        drop = {"shipment_id": "SH-1", "shipped_on": "2026-12-14", "lines": [{"line_id": "1", "quantity": 70}]}
        await client.post("/v1/sales-orders/SO-1001/shipments", json=drop, headers=crm)
        on_the_day = (await client.get("/v1/sales-orders/SO-1001", headers=crm)).json()
    async with running(build_app(pinned(settings, date(2026, 12, 15)))) as client:
        day_after = (await client.get("/v1/sales-orders/SO-1001", headers=crm)).json()
    # Line 1: 120 promised for the 14th, 70 shipped. Line 2: 30 promised for the 9th, none shipped.
    assert line_figures(on_the_day) == [("1", 70, 50, 0), ("2", 0, 30, 30)]
    assert line_figures(day_after) == [("1", 70, 50, 50), ("2", 0, 30, 30)]


async def test_bad_requests_answer_4xx_naming_the_field_and_store_nothing(settings, api_keys, db):
    crm = bearer(api_keys["crm"])
    many = [{"line_id": str(i), "sku": "S", "quantity": 1, "requested_on": "2026-12-14"} for i in range(501)]
    line = an_order()["lines"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        (an_order(ordered_on="1999-12-31"), "ordered_on"),
        (an_order(ordered_on="2200-01-01"), "ordered_on"),
        (an_order(lines=[{**line, "quantity": 0}]), "lines.0.quantity"),
        (an_order(lines=[{**line, "quantity": 2_000_000_001}]), "lines.0.quantity"),
        (an_order(lines=[{**line, "unit_price": -1}]), "lines.0.unit_price"),
        (an_order(lines=[{**line, "promised_on": "2300-01-01"}]), "lines.0.promised_on"),
        (an_order(lines=[line, line]), "lines.1.line_id"),
        (an_order(lines=[{**line, "requested_on": "2026-11-01"}]), "lines.0.requested_on"),
        (an_order(lines=[]), "lines"),
        (an_order(lines=many), "lines"),
        (an_order(account_id=""), "account_id"),
        ({k: v for k, v in an_order().items() if k != "account_id"}, "account_id"),
        (an_order(order_id="bad id"), "order_id"),
        (an_order(extra="field"), "extra"),
    ]
    async with running(build_app(pinned(settings))) as client:
        for body, field in cases:
            response = await client.post("/v1/sales-orders", json=body, headers=crm)
            assert response.status_code == 422, (field, response.text)
            assert field in fields(response), (field, response.json())
        assert await db.fetchval("select count(*) from fulfillment.sales_orders") == 0

        await client.post("/v1/sales-orders", json=an_order(), headers=crm)
        patch_cases: list[tuple[dict[str, Any], str]] = [
            ({"lines": [{"line_id": "9", "quantity": 5, "requested_on": "2026-12-20"}]}, "lines.0.sku"),
            ({"lines": [{"line_id": "1", "sku": "SKU-9"}]}, "lines.0.sku"),
            ({"lines": [{"line_id": "1", "quantity": -5}]}, "lines.0.quantity"),
            ({"lines": [{"line_id": "2", "promised_on": "2026-11-01"}]}, "lines.0.promised_on"),
            ({"lines": [{"line_id": "1"}, {"line_id": "1"}]}, "lines.1.line_id"),
        ]
        for body, field in patch_cases:
            response = await client.patch("/v1/sales-orders/SO-1001", json=body, headers=crm)
            assert (response.status_code, fields(response)) == (422, [field]), response.text
        ship_cases: list[tuple[dict[str, Any], str]] = [
            (
                {"shipment_id": "S1", "shipped_on": "2026-12-10", "lines": [{"line_id": "7", "quantity": 1}]},
                "lines.0.line_id",
            ),
            (
                {"shipment_id": "S1", "shipped_on": "2026-12-20", "lines": [{"line_id": "1", "quantity": 1}]},
                "shipped_on",
            ),
            ({"shipment_id": "S1", "shipped_on": "2026-12-10", "lines": []}, "lines"),
            (
                {"shipment_id": "S1", "shipped_on": "2026-12-10", "lines": [{"line_id": "1", "quantity": 0}]},
                "lines.0.quantity",
            ),
        ]
        for body, field in ship_cases:
            response = await client.post("/v1/sales-orders/SO-1001/shipments", json=body, headers=crm)
            assert (response.status_code, fields(response)) == (422, [field]), response.text
        assert await db.fetchval("select count(*) from fulfillment.shipments") == 0
        stored = await client.get("/v1/sales-orders/SO-1001", headers=crm)
        assert stored.json()["version"] == 1

        no_cursor = await client.get("/v1/sales-orders", params={"cursor": "nonsense"}, headers=crm)
        assert (no_cursor.status_code, fields(no_cursor)) == (422, ["query.cursor"])
        no_status = await client.get("/v1/sales-orders", params={"status": "lost"}, headers=crm)
        assert (no_status.status_code, fields(no_status)) == (422, ["query.status"])
        warehouse = bearer(api_keys["warehouse"])
        assert (await client.post("/v1/sales-orders", json=an_order(), headers=warehouse)).status_code == 403
        assert (await client.get("/v1/sales-orders", headers=warehouse)).status_code == 403
        planner = bearer(api_keys["planner"])  # reads orders, cannot book them
        assert (await client.post("/v1/sales-orders", json=an_order("SO-2"), headers=planner)).status_code == 403


async def test_orders_are_listed_by_account_sku_and_status_in_pages(settings, api_keys):
    crm = bearer(api_keys["crm"])
    async with running(build_app(pinned(settings))) as client:
        for number in range(1, 6):
            account = "ACC-1" if number % 2 else "ACC-2"
            lines = [{"line_id": "1", "sku": f"SKU-{number}", "quantity": 5, "requested_on": "2026-12-20"}]
            booked = await client.post(
                "/v1/sales-orders", json=an_order(f"SO-{number}", account, lines=lines), headers=crm
            )
            assert booked.status_code == 201
        await client.post("/v1/sales-orders/SO-3/cancel", headers=crm)

        async def ids(**params: Any) -> list[str]:
            found: list[str] = []
            cursor = None
            for _ in range(10):
                query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
                page = (await client.get("/v1/sales-orders", params=query, headers=crm)).json()
                found += [order["order_id"] for order in page["data"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    return found
            raise AssertionError("more pages than orders")

        assert await ids() == ["SO-1", "SO-2", "SO-3", "SO-4", "SO-5"]
        assert await ids(account_id="ACC-1") == ["SO-1", "SO-3", "SO-5"]
        assert await ids(sku="SKU-4") == ["SO-4"]
        assert await ids(status="cancelled") == ["SO-3"]
        assert await ids(account_id="ACC-1", status="open") == ["SO-1", "SO-5"]
        page = (await client.get("/v1/sales-orders", params={"sku": "SKU-2"}, headers=crm)).json()
        assert [li["sku"] for li in page["data"][0]["lines"]] == ["SKU-2"]
