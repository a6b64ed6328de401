"""From sales orders posted to the fulfillment service over HTTP and returns posted to the returns service, through
`salesops.orders`, to the account's ledger and the signed `account-unprofitable` webhook at the CRM."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from standardwebhooks import Webhook

from services.fulfillment_service.app import build_app as build_fulfillment
from services.fulfillment_service.settings import FulfillmentSettings
from services.returns_service.app import build_app as build_returns
from services.returns_service.settings import ReturnsSettings
from shared.settings import Settings
from tests.integration.test_webhooks_delivery import Receiver, serving
from tests.support import bearer, eventually, running

TODAY = date(2026, 12, 10)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(
        **settings.model_dump(),
        clock_today=TODAY,
        webhook_allow_private_targets=True,
        webhook_poll_interval_s=0.05,
        webhook_timeout_s=2,
    )


def sales_order(order_id: str, account_id: str, quantity: int, *, rush: bool) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "account_id": account_id,
        "ordered_on": "2026-11-02",
        "rush": rush,
        "lines": [
            {
                "line_id": "1",
                "sku": "SKU-1",
                "quantity": quantity,
                "requested_on": "2026-11-06",
                "unit_price": 20,
                "unit_cost": 15,
            }
        ],
    }


async def test_a_rush_account_with_split_drops_and_returns_turns_unprofitable_at_the_crm(
    settings, returns_settings, api_keys
) -> None:
    crm, desk = bearer(api_keys["crm"]), bearer(api_keys["returns-desk"])
    receiver = Receiver()
    fulfillment_settings = FulfillmentSettings(**settings.model_dump(), clock_today=TODAY)
    async with (
        serving(receiver) as base,
        running(build_returns(returns_settings)) as returns,
        running(build_fulfillment(fulfillment_settings)) as fulfillment,
    ):
        hook = await returns.post(
            "/v1/webhooks",
            json={"url": f"{base}/crm", "event_types": ["sales-alert.account-unprofitable"]},
            headers=crm,
        )
        assert hook.status_code == 201, hook.text
        await returns.put("/v1/accounts/ACC-R", json={"name": "Rush Ltd", "segment": "stable"}, headers=desk)
        booked = await fulfillment.post(
            "/v1/sales-orders", json=sales_order("SO-1", "ACC-R", 12, rush=True), headers=crm
        )
        assert booked.status_code == 201, booked.text
        for n, day in enumerate(("2026-11-03", "2026-11-04", "2026-11-05"), start=1):  # three drops of 4
            drop = {"shipment_id": f"SH-{n}", "shipped_on": day, "lines": [{"line_id": "1", "quantity": 4}]}
            answer = await fulfillment.post("/v1/sales-orders/SO-1/shipments", json=drop, headers=crm)
            assert answer.status_code == 201, answer.text
        returned = {
            "return_id": "R-1",
            "sku": "SKU-1",
            "quantity": 3,
            "account_id": "ACC-R",
            "reason": "damaged",
            "condition": "scrap",
            "returned_on": "2026-11-20",
            "order_id": "SO-1",
            "resolution": "refund",
        }
        assert (await returns.post("/v1/returns", json=returned, headers=desk)).status_code == 201

        async def counted() -> Any:
            answer = await returns.get(
                "/v1/accounts/ACC-R/cost-to-serve", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=crm
            )
            months = answer.json()["months"]
            if not months:
                return None
            counts = {p["pool"]: p["count"] for p in months[0]["pools"]}
            # The return is counted by the recount shortly after its request, the drops as they are consumed.
            return months[0] if (counts["shipment"], counts["return_line"]) == (3, 1) else None

        november = await eventually(counted, message="three drops and the return counted")
        counts = {p["pool"]: p["count"] for p in november["pools"]}
        assert counts == {
            "order": 1,
            "order_line": 1,
            "unit_picked": 12,
            "shipment": 3,
            "backordered_line": 0,
            "rush_order": 1,
            "return_line": 1,
            "complaint": 0,
            "returned_goods": 3,
        }
        # Revenue 9 x 20 = 180 after the refund; cost of goods 9 x 15 = 135; cost-to-serve
        # 12 + 1.5 + 0.6 + 3 x 25 + 40 + 15 + 3 x 15 written off = 189.1; contribution -144.1
        assert (november["revenue"], november["cost_of_goods"]) == (180, 135)
        assert november["contribution"] == pytest.approx(-144.1)

        await eventually(lambda: _received(receiver), message="account-unprofitable webhook")

    body, headers = receiver.requests[-1]
    payload = Webhook(hook.json()["secret"]).verify(body, headers)
    assert payload["type"] == "sales-alert.account-unprofitable"
    alert = payload["data"]
    assert alert["accounts"] == [{"account_id": "ACC-R", "name": "Rush Ltd", "segment": "stable"}]
    assert alert["details"]["window_start"] == "2026-10-01"
    assert all(json.loads(b)["type"] == "sales-alert.account-unprofitable" for b, _ in receiver.requests)


async def _received(receiver: Receiver) -> bool:
    return any(json.loads(body)["data"]["details"].get("contribution", 0) < -100 for body, _ in receiver.requests)
