"""The customers' cost-to-serve in the console, in a real browser against the running system: accounts with orders,
drops, a return and a complaint flow from fulfillment and returns into the ledger, and the page shows the whale curve
and each account's ledger with the numbers the API gives; a key without `costs:read` is told so."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import Stack, screenshot, wait_for, wait_in_page

pytestmark = pytest.mark.browser


def whole_money(value: float) -> str:
    """An amount in EUR as the page writes it: whole euros, rounded half up like Math.round."""
    rounded = math.floor(value + 0.5)
    return f"-€{-rounded:,}" if rounded < 0 else f"€{rounded:,}"


def seed_account(
    stack: Stack,
    account_id: str,
    segment: str,
    orders: list[dict[str, Any]],
    *,
    returned: int = 0,
    complaints: int = 0,
) -> dict[str, int]:
    """An account on returns, its orders shipped in full through fulfillment, then returns and complaints; the
    driver counts the ledger must come to."""
    today = datetime.now(UTC).date()
    with stack.client("returns", "returns-desk") as returns, stack.client("fulfillment", "crm") as fulfillment:
        answer = returns.put(f"/v1/accounts/{account_id}", json={"name": f"Customer {account_id}", "segment": segment})
        assert answer.status_code in (200, 201), answer.text
        for index, order in enumerate(orders, 1):
            order_id = f"{account_id}-SO-{index}"
            body = {
                "order_id": order_id,
                "account_id": account_id,
                "ordered_on": today.isoformat(),
                "rush": order.get("rush", False),
                "lines": [
                    {
                        "line_id": "1",
                        "sku": order["sku"],
                        "quantity": order["quantity"],
                        "requested_on": (today + timedelta(days=7)).isoformat(),
                        "unit_price": order["unit_price"],
                        "unit_cost": order["unit_cost"],
                    }
                ],
            }
            answer = fulfillment.post("/v1/sales-orders", json=body)
            assert answer.status_code == 201, answer.text
            shipment = {
                "shipment_id": f"{order_id}-D1",
                "shipped_on": today.isoformat(),
                "lines": [{"line_id": "1", "quantity": order["quantity"]}],
            }
            answer = fulfillment.post(f"/v1/sales-orders/{order_id}/shipments", json=shipment)
            assert answer.status_code == 201, answer.text
        for index in range(returned):
            body = {
                "return_id": f"{account_id}-R-{index}",
                "sku": orders[0]["sku"],
                "quantity": 2,
                "account_id": account_id,
                "reason": "defective",
                "condition": "scrap",
                "resolution": "refund",
                "returned_on": today.isoformat(),
                "order_id": f"{account_id}-SO-1",
            }
            answer = returns.post("/v1/returns", json=body)
            assert answer.status_code == 201, answer.text
        for index in range(complaints):
            body = {
                "complaint_id": f"{account_id}-C-{index}",
                "account_id": account_id,
                "category": "delivery",
                "severity": "medium",
                "description": "Late again",
                "received_on": today.isoformat(),
            }
            answer = returns.post("/v1/complaints", json=body)
            assert answer.status_code == 201, answer.text
    return {
        "order": len(orders),
        "shipment": len(orders),
        "rush_order": sum(1 for o in orders if o.get("rush")),
        "return_line": returned,
        "complaint": complaints,
    }


def ledger_of(stack: Stack, account_id: str) -> dict[str, Any]:
    with stack.client("returns", "planner") as returns:
        answer = returns.get(f"/v1/accounts/{account_id}/cost-to-serve")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def counted(ledger: dict[str, Any]) -> dict[str, float]:
    return {pool["pool"]: pool["count"] for pool in ledger["totals"]["pools"]}


def test_the_whale_curve_lists_the_accounts_in_the_apis_order_and_an_account_opens_its_ledger(stack, console_page):
    prefix = f"BRW-CTS-{uuid.uuid4().hex[:6]}"
    sku = f"{prefix}-SKU"
    big, steady, costly = f"{prefix}-BIG", f"{prefix}-STEADY", f"{prefix}-COSTLY"
    expected = {
        big: seed_account(
            stack,
            big,
            "strategic",
            [{"sku": sku, "quantity": 400, "unit_price": 30, "unit_cost": 12}] * 2,
        ),
        steady: seed_account(
            stack, steady, "integrated", [{"sku": sku, "quantity": 60, "unit_price": 30, "unit_cost": 12}]
        ),
        # Small rush orders, each its own drop, a scrapped return and complaints: it costs more than it earns.
        costly: seed_account(
            stack,
            costly,
            "stable",
            [{"sku": sku, "quantity": 3, "unit_price": 30, "unit_cost": 12, "rush": True}] * 3,
            returned=1,
            complaints=2,
        ),
    }

    # The ledger counts what fulfillment published (through the broker) and what returns took in.
    def all_counted() -> bool:
        return all(
            all(counted(ledger_of(stack, account)).get(pool) == n for pool, n in drivers.items())
            for account, drivers in expected.items()
        )

    wait_for(all_counted, timeout=60, message="the ledger never counted the seeded orders, drops and returns")
    contributions = {account: ledger_of(stack, account)["totals"]["contribution"] for account in expected}
    assert contributions[big] > contributions[steady] > 0 > contributions[costly], contributions

    page = console_page()
    page.wait_for_selector(f"#whale-table tbody tr[data-account='{costly}']", timeout=30_000)
    with stack.client("returns", "planner") as returns:
        curve = returns.get("/v1/cost-to-serve").json()
    shown = page.eval_on_selector_all(
        "#whale-table tbody tr",
        """rows => rows.map(r => [r.dataset.account, Number(r.querySelector('[data-field=contribution]').dataset.value),
            r.querySelector('[data-field=suggested_segment]').dataset.value])""",
    )
    assert [row[0] for row in shown] == [a["account_id"] for a in curve["accounts"]]
    for (account, contribution, suggested), row in zip(shown, curve["accounts"], strict=True):
        assert contribution == pytest.approx(row["contribution"]), account
        assert suggested == (row["suggested_segment"] or ""), account
    mine = [row[0] for row in shown if row[0].startswith(prefix)]
    assert mine == [big, steady, costly]
    # Whole euros, a loss marked as one.
    cell = page.locator(f"#whale-table tr[data-account='{costly}'] td[data-field=contribution]")
    assert cell.inner_text() == whole_money(contributions[costly])
    assert "negative" in (cell.get_attribute("class") or "")
    # The chart draws the same ranking.
    bars = page.evaluate("() => document.getElementById('whale-chart').data[0].x")
    assert bars == [a["account_id"] for a in curve["accounts"]]
    segments = page.eval_on_selector_all("#segment-totals tbody tr", "rows => rows.map(r => r.dataset.segment)")
    assert segments == [s["segment"] or "" for s in curve["segments"]]

    # One segment: only the accounts assigned to it, in the API's order.
    page.select_option("#customers-segment", "stable")
    page.click("#customers-form button[type=submit]")
    wait_in_page(page, "() => (window.salesopsCustomers.curve || {}).segment === 'stable'")
    with stack.client("returns", "planner") as returns:
        stable = returns.get("/v1/cost-to-serve", params={"segment": "stable"}).json()
    shown = page.eval_on_selector_all("#whale-table tbody tr", "rows => rows.map(r => r.dataset.account)")
    assert shown == [a["account_id"] for a in stable["accounts"]] and costly in shown and big not in shown

    # An account's ledger: its months, each pool's driver count as the API counts it.
    page.click(f"#whale-table button[data-account='{costly}']")
    page.wait_for_selector("#ledger-table tbody tr")
    ledger = ledger_of(stack, costly)
    months = page.eval_on_selector_all("#ledger-table tbody tr", "rows => rows.map(r => r.dataset.month)")
    assert months == [m["month"] for m in ledger["months"]] and months
    for month in ledger["months"]:
        cells = page.eval_on_selector_all(
            f"#ledger-table tbody tr[data-month='{month['month']}'] td[data-pool]",
            "cells => cells.map(c => [c.dataset.pool, Number(c.dataset.count), Number(c.dataset.value)])",
        )
        assert {pool: (n, amount) for pool, n, amount in cells} == {
            p["pool"]: (pytest.approx(p["count"]), pytest.approx(p["amount"])) for p in month["pools"]
        }
        contribution = page.inner_text(
            f"#ledger-table tbody tr[data-month='{month['month']}'] td[data-field=contribution]"
        )
        assert contribution == whole_money(month["contribution"])
    for pool, n in expected[costly].items():
        assert page.get_attribute(f"#ledger-table tfoot td[data-pool={pool}]", "data-count") == str(n)
    assert page.evaluate("() => document.activeElement.id") == "ledger-title"
    assert "Assigned segment: stable" in page.inner_text("#ledger-segment")
    page.locator("#customers-section").scroll_into_view_if_needed()
    screenshot(page, "console-customers-whale-curve")


def test_a_key_without_costs_read_is_told_so_in_the_customers_section(stack, console_page):
    page = console_page(role="returns-desk")
    wait_in_page(page, "() => document.getElementById('customers-message').textContent.includes('costs:read')")
    assert page.is_hidden("#customers-results")
    assert "error" in (page.get_attribute("#customers-message", "class") or "")
    screenshot(page, "console-customers-refused")
