"""The planner's console in a real browser against the running system."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Stack, screenshot, wait_for, wait_in_page

pytestmark = pytest.mark.browser

GRID_FIELDS = [
    "baseline",
    "promotion_uplift",
    "sensing_adjustment",
    "forecast",
    "mps_quantity",
    "projected_available",
    "capacity",
    "capacity_shortfall",
]


def put_item(stack: Stack, sku: str, **fields: object) -> None:
    body = {"name": f"Browser test {sku}", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 100, **fields}
    with stack.client("planning") as planning:
        response = planning.put(f"/v1/items/{sku}", json=body)
    assert response.status_code in (200, 201), response.text


def whole(value: float) -> int:
    """Rounded as the page rounds (half up, like Math.round), not to even."""
    return math.floor(value + 0.5)


def stock_status(week: dict, safety_stock: float) -> str:
    """The rule the page must follow: below zero is a shortfall, below safety stock (not below zero) is not."""
    if week["projected_available"] < -1e-6:
        return "short"
    if safety_stock > 0 and week["projected_available"] < safety_stock - 1e-6:
        return "below-safety"
    return "ok"


def test_the_grid_shows_the_numbers_the_api_returns_and_marks_every_week_short_or_below_safety(stack, console_page):
    sku = f"BRW-GRID-{uuid.uuid4().hex[:6]}"
    # Capacity 100 against a demand of 120: stock slides below safety stock, then below zero.
    put_item(stack, sku, on_hand=300, safety_stock=200, baseline_weekly_demand=120, weekly_capacity=100)
    with stack.client("planning", "planner") as planning:

        def current_plan() -> dict | None:
            response = planning.get(f"/v1/mps/{sku}")
            return response.json() if response.status_code == 200 else None

        plan = wait_for(current_plan, timeout=30, message=f"no plan for {sku}")

    page = console_page(sku)
    page.wait_for_selector("#mps-grid tbody tr[data-field=forecast]")
    wait_in_page(
        page,
        f"() => document.getElementById('grid-caption').textContent.includes('plan version {plan['plan_version']};')",
    )
    shown = page.evaluate(
        """() => Array.from(document.querySelectorAll('#mps-grid tbody td')).map(td => [
            td.dataset.field, td.dataset.week, td.dataset.value, td.textContent, td.className])"""
    )
    cells = {(field, week): (value, text, cls) for field, week, value, text, cls in shown}
    assert len(cells) >= len(plan["weeks"]) * len(GRID_FIELDS)
    for week in plan["weeks"]:
        for field in GRID_FIELDS:
            value, text, _ = cells[(field, week["week_start"])]
            assert float(value) == pytest.approx(week[field]), (field, week["week_start"])
            # Whole units: a forecast of 290.3 reads 290.
            shown_number = text.replace("⚠", "").replace("▽", "").split("(")[0].strip()
            assert shown_number == f"{whole(week[field]):,}", (field, week["week_start"], text)
        assert float(cells[("safety_stock", week["week_start"])][0]) == 200
    expected = {w["week_start"]: stock_status(w, 200) for w in plan["weeks"]}
    assert {"short", "below-safety"} <= set(expected.values()), "the item must produce both kinds of week"
    for week_start, status in expected.items():
        _, text, cls = cells[("projected_available", week_start)]
        assert (cls or "ok") == status, (week_start, status, cls)
        assert cells[("status", week_start)][0] == status
    headers = dict(
        page.eval_on_selector_all(
            "#mps-grid thead th[data-week]", "hs => hs.map(h => [h.dataset.week, h.dataset.status])"
        )
    )
    assert headers == expected
    capacity_short = {w["week_start"] for w in plan["weeks"] if w["capacity_shortfall"] > 0}
    marked = set(page.eval_on_selector_all("#mps-grid td.capacity-short", "cells => cells.map(c => c.dataset.week)"))
    assert marked == capacity_short
    caption = page.inner_text("#grid-caption")
    assert f"{list(expected.values()).count('short')} week(s) of shortfall" in caption
    assert f"{list(expected.values()).count('below-safety')} week(s) below safety stock" in caption
    # The chart marks the same weeks.
    chart_marks = page.evaluate(
        """() => Object.fromEntries(document.getElementById('chart').data
            .filter(t => t.name === 'Shortfall' || t.name === 'Below safety stock')
            .map(t => [t.name, t.x.filter((x, i) => t.y[i] !== null)]))"""
    )
    assert set(chart_marks["Shortfall"]) == {w for w, s in expected.items() if s == "short"}
    assert set(chart_marks["Below safety stock"]) == {w for w, s in expected.items() if s == "below-safety"}
    assert "300 units" in page.inner_text("#item-summary")
    # Accessible structure: every header says what it heads.
    scopes = page.eval_on_selector_all("#mps-grid th", "hs => hs.map(h => h.getAttribute('scope'))")
    assert set(scopes) == {"col", "row"}
    assert page.get_attribute("#alerts-log", "role") == "log"
    screenshot(page, "console-grid")


def test_a_promotion_posted_through_the_api_appears_in_the_chart_after_the_event_flows(stack, console_page):
    sku = f"BRW-PROMO-{uuid.uuid4().hex[:6]}"
    promotion_id = f"BRW-P-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku)
    page = console_page(sku)
    page.wait_for_selector("#chart .main-svg")
    assert page.evaluate("() => document.getElementById('chart').data[1].y.every(v => v === 0)")

    today = datetime.now(UTC).date()
    with stack.client("promotion", "marketing") as promotion:
        body = {
            "promotion_id": promotion_id,
            "name": "Browser test campaign",
            "starts_on": (today + timedelta(days=14)).isoformat(),
            "ends_on": (today + timedelta(days=20)).isoformat(),
            "items": [{"sku": sku, "uplift_pct": 50}],
        }
        assert promotion.post("/v1/promotions", json=body).status_code == 201

    # The page refreshes on its own: the uplift arrives once planning has consumed the event.
    wait_in_page(
        page,
        """(id) => {
            const chart = document.getElementById('chart');
            const uplift = chart.data && chart.data.find(t => t.name === 'Promotion uplift');
            const labelled = (chart.layout.annotations || []).some(a => a.text.startsWith(id));
            return uplift && uplift.y.some(v => v > 0) && labelled;
        }""",
        arg=promotion_id,
        timeout=60,
    )
    assert promotion_id in page.inner_text("#promotions")
    assert sku in page.inner_text("#chart-caption")
    screenshot(page, "console-chart-promotion")


def test_a_critical_complaint_appears_in_the_alert_feed_without_reload(stack, console_page):
    sku = f"BRW-ALERT-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku)
    page = console_page(sku)
    wait_in_page(page, "() => document.getElementById('feed-status').textContent.startsWith('live')")
    page.evaluate("() => { window.notReloaded = true; }")

    with stack.client("returns", "returns-desk") as returns:
        complaint = {
            "complaint_id": f"BRW-C-{uuid.uuid4().hex[:8]}",
            "account_id": "BRW-ACCOUNT",
            "sku": sku,
            "category": "quality",
            "severity": "critical",
            "description": "Units arrive dead on arrival",
            "received_on": datetime.now(UTC).date().isoformat(),
        }
        assert returns.post("/v1/complaints", json=complaint).status_code == 201

    item = page.wait_for_selector(f"#alerts li[data-type=critical-complaint][data-sku='{sku}']", timeout=30_000)
    assert "high priority" in item.inner_text()
    assert page.evaluate("() => window.notReloaded === true"), "the page reloaded"
    screenshot(page, "console-alert-feed")


def test_the_sku_selector_is_reachable_and_usable_from_the_keyboard(stack, console_page):
    first, second = (f"BRW-KEY-{uuid.uuid4().hex[:6]}" for _ in range(2))
    put_item(stack, first)
    put_item(stack, second, baseline_weekly_demand=250)
    page = console_page(first)
    page.wait_for_selector("#mps-grid tbody tr")
    page.focus("#refresh")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.id") == "sku"
    page.select_option("#sku", second)  # what the arrow keys do on a focused <select>
    wait_in_page(page, f"() => document.getElementById('grid-caption').textContent.startsWith('{second}')")
    assert "sku=" + second in page.url


def test_the_console_and_the_services_send_security_headers_and_redirects_stay_on_the_console(stack):
    page = httpx.get(f"{stack.url('console')}/", timeout=30)
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for service in ("promotion", "fulfillment", "returns", "planning"):
        answer = httpx.get(f"{stack.url(service)}/v1/nothing-here", timeout=30)
        assert answer.headers["x-content-type-options"] == "nosniff", service
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], service
    planner = {"Authorization": f"Bearer {stack.keys['planner']}"}
    redirected = httpx.get(f"{stack.url('console')}/api/promotion/v1/promotions/", headers=planner, timeout=30)
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "/api/promotion/v1/promotions"
    assert stack.url("promotion") not in str(redirected.headers)
    followed = httpx.get(f"{stack.url('console')}{redirected.headers['location']}", headers=planner, timeout=30)
    assert followed.status_code == 200


def test_booked_orders_and_atp_rows_show_the_plans_figures(stack, console_page):
    sku = f"BRW-ATP-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku)
    page = console_page(sku)
    page.wait_for_selector("#mps-grid tbody tr[data-field=forecast]")
    # Planning carries booked orders and ATP in every plan; the rows show whatever it answers.
    page.wait_for_selector("#mps-grid tr[data-field=atp]")

    def with_atp(route: Any) -> None:
        plan = route.fetch().json()
        for index, week in enumerate(plan["weeks"]):
            week.update(booked_orders=10.0 * index, atp=5.0 + index, cumulative_atp=7.0 * (index + 1))
        route.fulfill(json=plan)

    page.route(f"**/api/planning/v1/mps/{sku}", with_atp)
    page.click("#refresh")
    page.wait_for_function(
        "() => document.querySelectorAll('#mps-grid td[data-field=booked_orders]')[1]?.textContent === '10'"
    )
    for field, label in (("booked_orders", "Booked orders"), ("atp", "Available to promise")):
        assert page.inner_text(f"#mps-grid tr[data-field={field}] th") == label
    values = page.eval_on_selector_all(
        "#mps-grid td[data-field=booked_orders]", "cells => cells.slice(0, 3).map(c => c.textContent)"
    )
    assert values == ["0", "10", "20"]
