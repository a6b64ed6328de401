"""A planner's workflows in the console, in a real browser against the running system: from an exception to its
SKU, a what-if that commits nothing until announced, editing the item master, alerts, and accessibility."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Stack, axe_violations, screenshot, wait_for, wait_in_page
from tests.browser.test_console_browser import put_item
from tests.browser.test_console_customers import counted

pytestmark = pytest.mark.browser


def plan_of(stack: Stack, sku: str) -> dict[str, Any]:
    with stack.client("planning", "planner") as planning:

        def current() -> dict[str, Any] | None:
            response = planning.get(f"/v1/mps/{sku}")
            return response.json() if response.status_code == 200 else None

        found: dict[str, Any] = wait_for(current, timeout=30, message=f"no plan for {sku}")
        return found


def downloaded_csv(page: Any, button: str) -> list[list[str]]:
    with page.expect_download() as download:
        page.click(button)
    return list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))


def test_the_inbox_lists_exceptions_by_severity_and_one_click_opens_the_sku(stack, console_page):
    short = f"BRW-SHORT-{uuid.uuid4().hex[:6]}"
    low = f"BRW-LOW-{uuid.uuid4().hex[:6]}"
    put_item(stack, short, baseline_weekly_demand=120, weekly_capacity=100)
    # Capacity equal to demand holds stock at zero: under safety stock every week, never below zero.
    put_item(stack, low, safety_stock=500, baseline_weekly_demand=100, weekly_capacity=100)
    plan_of(stack, short)
    plan_of(stack, low)

    page = console_page()
    assert page.inner_text("#whoami") == "Signed in as planner"
    assert not page.is_hidden("#exceptions-view") and page.is_hidden("#sku-view")
    page.wait_for_selector(f"#exceptions tbody tr[data-sku='{short}'][data-kind=shortfall]", timeout=30_000)
    page.wait_for_selector(f"#exceptions tbody tr[data-sku='{low}'][data-kind=below-safety]", timeout=30_000)
    rows = page.eval_on_selector_all(
        "#exceptions tbody tr", "rows => rows.map(r => [r.dataset.sku, r.dataset.kind, r.dataset.severity])"
    )
    order = {"critical": 4, "high": 3, "medium": 2, "low": 1}
    severities = [order[severity] for _, _, severity in rows]
    assert severities == sorted(severities, reverse=True), rows
    assert [sku for sku, kind, _ in rows if kind == "below-safety"].count(short) == 0
    assert (low, "below-safety", "low") in [tuple(r) for r in rows]

    exported = downloaded_csv(page, "#export-exceptions")
    assert exported[0] == ["severity", "sku", "name", "exception", "from_week", "weeks", "account_tiers", "details"]
    assert ["critical", short] == exported[1 + rows.index([short, "shortfall", "critical"])][:2]
    screenshot(page, "console-exceptions-inbox")

    page.click(f"#exceptions a[data-sku='{short}']")
    wait_in_page(page, f"() => document.getElementById('grid-caption').textContent.startsWith('{short}:')")
    assert page.is_hidden("#exceptions-view") and not page.is_hidden("#sku-view")
    assert f"sku={short}" in page.url
    assert page.eval_on_selector_all("#mps-grid td.short[data-field=projected_available]", "c => c.length") > 0
    grid = downloaded_csv(page, "#export-grid")
    assert grid[0][0] == "row" and len(grid[0]) == 1 + len(plan_of(stack, short)["weeks"])
    assert {"Forecast", "Projected available", "Safety stock", "Stock status"} <= {row[0] for row in grid}
    assert "short" in next(row for row in grid if row[0] == "Stock status")
    screenshot(page, "console-exception-opens-its-sku")

    page.go_back()
    page.wait_for_selector("#exceptions-view:not([hidden])")


def test_a_what_if_shows_the_difference_commits_nothing_and_only_a_key_that_may_announces_it(stack, console_page):
    sku = f"BRW-WHATIF-{uuid.uuid4().hex[:6]}"
    promotion_id = f"BRW-WI-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku, on_hand=200, safety_stock=50, baseline_weekly_demand=100, weekly_capacity=130)
    before = plan_of(stack, sku)
    today = datetime.now(UTC).date()
    starts, ends = today + timedelta(days=14), today + timedelta(days=20)

    page = console_page(sku)
    page.wait_for_selector("#mps-grid tbody tr")
    page.fill("#whatif-promotion_id", promotion_id)
    page.fill("#whatif-uplift_pct", "400")
    page.fill("#whatif-starts_on", starts.isoformat())
    page.fill("#whatif-ends_on", ends.isoformat())
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector(f"#whatif-result table.compare[data-sku='{sku}']")
    assert page.get_attribute("#whatif-result .notice", "data-committed") == "false"
    changed = page.eval_on_selector_all(
        "#whatif-result tr[data-field=forecast][data-plan=what-if] td.diff", "cells => cells.map(c => c.dataset.week)"
    )
    promotion_weeks = {
        w["week_start"] for w in before["weeks"] if starts.isoformat() <= w["week_start"] <= ends.isoformat()
    } | {(starts - timedelta(days=starts.weekday())).isoformat()}
    assert changed and set(changed) <= promotion_weeks, (changed, promotion_weeks)
    unchanged = page.eval_on_selector_all(
        "#whatif-result tr[data-field=forecast][data-plan=current] td.diff", "cells => cells.length"
    )
    assert unchanged == 0
    assert "capacity conflict" in page.inner_text("#whatif-result")
    screenshot(page, "console-what-if")

    # A read-only key for promotions: refused plainly, and still nothing committed.
    page.click("#announce")
    wait_in_page(page, "() => document.getElementById('announce-status').textContent.startsWith('Not announced')")
    assert "promotions:write" in page.inner_text("#announce-status")
    with stack.client("promotion", "admin") as promotion, stack.client("planning", "planner") as planning:
        assert promotion.get(f"/v1/promotions/{promotion_id}").status_code == 404
        assert planning.get(f"/v1/inputs/promotions/{promotion_id}").status_code == 404
        assert planning.get(f"/v1/mps/{sku}").json()["plan_version"] == before["plan_version"]
    screenshot(page, "console-what-if-refused-announcement")

    # A key that may: the same promotion is announced and the plan follows.
    admin = console_page(sku, role="admin")
    admin.wait_for_selector("#mps-grid tbody tr")
    admin.fill("#whatif-promotion_id", promotion_id)
    admin.fill("#whatif-uplift_pct", "400")
    admin.fill("#whatif-starts_on", starts.isoformat())
    admin.fill("#whatif-ends_on", ends.isoformat())
    admin.click("#whatif-form button[type=submit]")
    admin.click("#announce")
    wait_in_page(admin, "() => document.getElementById('announce-status').textContent.startsWith('Announced')")
    with stack.client("promotion", "admin") as promotion:
        assert promotion.get(f"/v1/promotions/{promotion_id}").status_code == 200
    wait_in_page(
        admin,
        "() => { const s = window.salesopsConsole; return s.mps && s.mps.weeks.some(w => w.promotion_uplift > 0); }",
        timeout=60,
    )


def test_a_capacity_what_if_shows_the_difference_and_commits_nothing(stack, console_page):
    sku = f"BRW-CAP-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku, on_hand=200, safety_stock=50, baseline_weekly_demand=100)
    before = plan_of(stack, sku)
    assert all(w["capacity_shortfall"] == 0 for w in before["weeks"])

    page = console_page(sku)
    page.wait_for_selector("#mps-grid tbody tr")
    assert page.input_value("#whatif-item-weekly_capacity") == ""  # unlimited, as the item is
    assert page.input_value("#whatif-item-on_hand") == "200"

    # A refused value is shown at its field, and nothing is planned.
    page.fill("#whatif-item-weekly_capacity", "-10")
    page.click("#whatif-item-form button[type=submit]")
    page.wait_for_selector("#whatif-item-weekly_capacity[aria-invalid=true]")
    assert "greater than or equal to 0" in page.inner_text("#whatif-item-weekly_capacity-error")
    assert page.evaluate("() => document.activeElement.id") == "whatif-item-weekly_capacity"

    page.fill("#whatif-item-weekly_capacity", "60")
    page.click("#whatif-item-form button[type=submit]")
    page.wait_for_selector(f"#whatif-result table.compare[data-sku='{sku}']")
    assert page.get_attribute("#whatif-item-weekly_capacity", "aria-invalid") is None
    assert page.get_attribute("#whatif-result .notice", "data-committed") == "false"
    assert "was not changed" in page.inner_text("#whatif-result .notice")
    assert page.is_hidden("#announce") or page.query_selector("#announce") is None
    weeks = [w["week_start"] for w in before["weeks"]]
    capacity = page.eval_on_selector_all(
        "#whatif-result tr[data-field=capacity][data-plan=what-if] td",
        "cells => cells.map(c => [c.dataset.week, c.className])",
    )
    assert capacity == [[week, "diff"] for week in weeks]
    short_of_capacity = page.eval_on_selector_all(
        "#whatif-result tr[data-field=capacity_shortfall][data-plan=what-if] td.diff", "cells => cells.length"
    )
    mps_changed = page.eval_on_selector_all(
        "#whatif-result tr[data-field=mps_quantity][data-plan=what-if] td.diff", "cells => cells.length"
    )
    assert short_of_capacity > 0 and mps_changed > 0
    assert page.eval_on_selector_all("#whatif-result tr[data-plan=current] td.diff", "cells => cells.length") == 0
    short_now = page.eval_on_selector_all(
        "#whatif-result tr[data-field=status][data-plan=current] td.short", "cells => cells.length"
    )
    short_then = page.eval_on_selector_all(
        "#whatif-result tr[data-field=status][data-plan=what-if] td.short", "cells => cells.length"
    )
    assert short_now == 0 and short_then > 0
    assert "capacity conflict" in page.inner_text("#whatif-result")
    assert "weekly capacity 60" in page.inner_text("#whatif-result")
    screenshot(page, "console-capacity-what-if")

    with stack.client("planning", "planner") as planning:
        after = planning.get(f"/v1/mps/{sku}").json()
        item = planning.get(f"/v1/items/{sku}").json()
    assert after["plan_version"] == before["plan_version"] and after["weeks"] == before["weeks"]
    assert item["weekly_capacity"] is None and item["revision"] == 1


def promise_check(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    with stack.client("planning", "planner") as planning:
        response = planning.post("/v1/promises/check", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_promise_form_answers_with_its_explanation_and_field_errors_at_390px(stack, console_page, axe_core):
    sku = f"BRW-PROMISE-{uuid.uuid4().hex[:6]}"
    account = f"BRW-ACC-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku, baseline_weekly_demand=100, weekly_capacity=100)
    plan = plan_of(stack, sku)
    page = console_page(sku, width=390, axe=axe_core)
    page.wait_for_selector("#mps-grid tbody tr")
    assert page.input_value("#promise-sku") == sku  # follows the SKU being worked on

    # Refused values are shown at their fields.
    page.fill("#promise-account_id", account)
    page.fill("#promise-quantity", "0")
    page.click("#promise-form button[type=submit]")
    page.wait_for_selector("#promise-quantity[aria-invalid=true]")
    assert "greater than 0" in page.inner_text("#promise-quantity-error")
    assert page.evaluate("() => document.activeElement.id") == "promise-quantity"
    page.fill("#promise-sku", f"{sku}-NOPE")
    page.fill("#promise-quantity", "10")
    page.click("#promise-form button[type=submit]")
    page.wait_for_selector("#promise-sku[aria-invalid=true]")
    assert f"no plan for {sku}-NOPE" in page.inner_text("#promise-sku-error")
    assert page.get_attribute("#promise-quantity", "aria-invalid") is None

    # More than the weeks up to the date can make: not promisable, with the date it can be promised in full.
    week = plan["weeks"][2]["week_start"]
    body = {"account_id": account, "sku": sku, "quantity": 1000, "requested_on": week}
    page.fill("#promise-sku", sku)
    page.fill("#promise-quantity", "1000")
    page.fill("#promise-requested_on", week)
    page.click("#promise-form button[type=submit]")
    page.wait_for_selector("#promise-result .verdict")
    expected = promise_check(stack, body)
    assert expected["can_promise"] is False and expected["draws"]
    assert page.get_attribute("#promise-result .verdict", "data-can-promise") == "false"
    assert page.get_attribute("#promise-sku", "aria-invalid") is None
    shown = page.eval_on_selector_all("#promise-draws tbody tr", "rows => rows.map(r => r.dataset.week)")
    assert shown == [draw["week_start"] for draw in expected["draws"]]
    assert page.inner_text("#promise-result ul.explanation").split("\n") == expected["explanation"]
    earliest = page.inner_text("#promise-result dd[data-field=earliest_full_on]")
    assert earliest == (expected["earliest_full_on"] or "none within the plan")
    assert "supply" in page.inner_text("#promise-result dd[data-field=limited_by]")
    assert "planning does not know the account" in page.inner_text("#promise-result dd[data-field=tier]")
    assert page.get_attribute("#promise-result .notice", "data-committed") == "false"
    screenshot(page, "console-promise-check-390px")
    assert axe_violations(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    # Within what is available: promisable, drawing on receipt weeks.
    page.fill("#promise-quantity", "150")
    page.click("#promise-form button[type=submit]")
    page.wait_for_selector("#promise-result .verdict.yes")
    expected = promise_check(stack, body | {"quantity": 150})
    assert expected["can_promise"] is True
    shown = page.eval_on_selector_all("#promise-draws tbody tr", "rows => rows.map(r => r.dataset.week)")
    assert shown == [draw["week_start"] for draw in expected["draws"]]
    with stack.client("planning", "planner") as planning:
        assert planning.get(f"/v1/mps/{sku}").json()["plan_version"] == plan["plan_version"]


def test_an_edited_item_shows_field_errors_at_the_field_then_saves_and_re_plans(stack, console_page):
    sku = f"BRW-ITEM-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku, on_hand=100, safety_stock=20, baseline_weekly_demand=100)
    before = plan_of(stack, sku)
    page = console_page(sku)
    page.wait_for_selector("#mps-grid tbody tr")
    page.click("#item-editor summary")
    assert page.input_value("#item-safety_stock") == "20"

    page.fill("#item-safety_stock", "-5")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-safety_stock[aria-invalid=true]")
    assert "greater than or equal to 0" in page.inner_text("#item-safety_stock-error")
    assert "item-safety_stock-error" in page.get_attribute("#item-safety_stock", "aria-describedby")
    assert page.evaluate("() => document.activeElement.id") == "item-safety_stock"
    with stack.client("planning", "planner") as planning:
        assert planning.get(f"/v1/items/{sku}").json()["revision"] == 1
    screenshot(page, "console-item-field-error")

    page.fill("#item-safety_stock", "400")
    page.click("#item-form button[type=submit]")
    wait_in_page(
        page, "() => document.getElementById('item-form-status').textContent.includes('the plan is now version')"
    )
    assert page.get_attribute("#item-safety_stock", "aria-invalid") is None
    after = plan_of(stack, sku)
    assert after["plan_version"] > before["plan_version"]
    wait_in_page(
        page,
        f"() => document.getElementById('grid-caption').textContent.includes('plan version {after['plan_version']};')",
    )
    safety = page.eval_on_selector_all(
        "#mps-grid td[data-field=safety_stock]", "cells => cells.map(c => c.dataset.value)"
    )
    assert set(safety) == {"400"}
    assert "400 units" in page.inner_text("#item-summary")
    # Right after the orders of past weeks, accuracy has nothing to compare yet, and the panel says why.
    assert "before that week began" in page.inner_text("#accuracy")
    screenshot(page, "console-item-saved-and-re-planned")


def test_alerts_filter_by_type_tier_and_state_and_an_acknowledgement_reaches_a_second_browser(stack, console_page):
    sku = f"BRW-ACK-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku)
    actor = console_page(sku, role="admin")
    watcher = console_page(sku)
    for page in (actor, watcher):
        wait_in_page(page, "() => document.getElementById('feed-status').textContent.startsWith('live')")
    with stack.client("returns", "returns-desk") as returns:
        complaint = {
            "complaint_id": f"BRW-C-{uuid.uuid4().hex[:8]}",
            "account_id": f"BRW-ACC-{uuid.uuid4().hex[:6]}",
            "sku": sku,
            "category": "quality",
            "severity": "critical",
            "description": "Arrives broken",
            "received_on": datetime.now(UTC).date().isoformat(),
        }
        assert returns.post("/v1/complaints", json=complaint).status_code == 201
    selector = f"#alerts li[data-type=critical-complaint][data-sku='{sku}']"
    for page in (actor, watcher):
        page.wait_for_selector(selector, timeout=30_000)

    def visible() -> bool:
        return bool(watcher.eval_on_selector(selector, "li => !li.hidden"))

    watcher.select_option("#filter-type", "capacity-conflict")
    assert not visible()
    watcher.select_option("#filter-type", "critical-complaint")
    assert visible()
    watcher.select_option("#filter-tier", "strategic")  # the account is not registered: no tier
    assert not visible()
    watcher.select_option("#filter-tier", "none")
    assert visible()
    watcher.select_option("#filter-state", "resolved")
    assert not visible()
    watcher.select_option("#filter-state", "open")
    assert visible()
    assert "shown" in watcher.inner_text("#alerts-count")

    # The watcher looks only at acknowledged alerts: the open one is hidden until someone else acknowledges it.
    watcher.select_option("#filter-state", "acknowledged")
    assert not visible()
    actor.click(f"{selector} button[data-action=acknowledge]")
    # Recorded and streamed: the other browser's feed shows the new state without a reload.
    wait_in_page(
        watcher,
        f"""() => {{ const li = document.querySelector("{selector}");
                    return li.dataset.status === 'acknowledged' && !li.hidden; }}""",
        message="the acknowledgement never reached the second browser",
    )
    assert watcher.inner_text(f"{selector} .alert-state") == "acknowledged by admin"
    assert watcher.query_selector(f"{selector} button[data-action=acknowledge]") is None
    assert watcher.query_selector(f"{selector} button[data-action=resolve]") is not None
    assert actor.get_attribute(selector, "data-status") == "acknowledged"
    alert_id = watcher.get_attribute(selector, "data-alert-id")
    with stack.client("returns", "planner") as returns:
        recorded = returns.get(f"/v1/alerts/{alert_id}").json()
    assert (recorded["state"], recorded["acknowledged_by"]) == ("acknowledged", "admin")

    # And the other way: the watcher resolves it, the first browser's feed follows.
    watcher.select_option("#filter-state", "")
    watcher.click(f"{selector} button[data-action=resolve]")
    wait_in_page(
        actor,
        f"() => document.querySelector(\"{selector}\").dataset.status === 'resolved'",
        message="the resolution never reached the first browser",
    )
    assert actor.inner_text(f"{selector} .alert-state") == "resolved by planner"
    assert actor.query_selector(f"{selector} .alert-actions") is None
    screenshot(actor, "console-alert-acknowledge")
    screenshot(watcher, "console-alerts-filtered")


@pytest.mark.parametrize("width", [1400, 390])
def test_axe_core_finds_nothing_and_the_page_fits_the_width(stack, console_page, axe_core, width):
    sku = f"BRW-AXE-{uuid.uuid4().hex[:6]}"
    put_item(stack, sku, baseline_weekly_demand=120, weekly_capacity=100, safety_stock=50)
    plan_of(stack, sku)
    # An account with a complaint is on the cost-to-serve curve once the returns service's recount has counted it
    # (shortly after the complaint commits): the page is opened after the API shows it counted.
    account = f"BRW-AXE-ACC-{uuid.uuid4().hex[:6]}"
    with stack.client("returns", "returns-desk") as returns:
        complaint = {
            "complaint_id": f"{account}-C",
            "account_id": account,
            "category": "service",
            "severity": "low",
            "description": "Slow answers",
            "received_on": datetime.now(UTC).date().isoformat(),
        }
        assert returns.post("/v1/complaints", json=complaint).status_code == 201

    def complaint_counted() -> bool:
        with stack.client("returns", "planner") as client:
            answer = client.get(f"/v1/accounts/{account}/cost-to-serve")
        # 404 until the recount has counted the account's first fact.
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200 and counted(answer.json()).get("complaint") == 1

    wait_for(complaint_counted, timeout=60, message="the account's ledger never counted its complaint")
    page = console_page(width=width, axe=axe_core)
    page.wait_for_selector(f"#exceptions tbody tr[data-sku='{sku}']", timeout=30_000)
    page.wait_for_selector("#alerts-count:not(:empty)")
    checked = {"exceptions inbox": axe_violations(page)}
    overflow = {"exceptions inbox": page.evaluate("() => document.documentElement.scrollWidth")}
    screenshot(page, f"console-inbox-{width}px")

    page.click(f"#exceptions a[data-sku='{sku}']")
    page.wait_for_selector("#chart .main-svg")
    page.click("#item-editor summary")
    page.fill("#item-lot_size", "0")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-lot_size[aria-invalid=true]")
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector("#whatif-result table.compare")
    page.click("#mps-grid thead button.week")
    page.wait_for_selector("#week-why h3")
    checked["plan, item error, what-if"] = axe_violations(page)
    overflow["plan, item error, what-if"] = page.evaluate("() => document.documentElement.scrollWidth")
    screenshot(page, f"console-plan-{width}px")

    page.fill("#whatif-item-weekly_capacity", "50")
    page.click("#whatif-item-form button[type=submit]")
    page.wait_for_selector("#whatif-result tr[data-field=capacity]")
    page.fill("#promise-account_id", "BRW-AXE-ACCOUNT")
    page.fill("#promise-quantity", "500")
    page.click("#promise-form button[type=submit]")
    page.wait_for_selector("#promise-result .verdict")
    checked["capacity what-if, promise check"] = axe_violations(page)
    overflow["capacity what-if, promise check"] = page.evaluate("() => document.documentElement.scrollWidth")
    screenshot(page, f"console-capacity-what-if-and-promise-{width}px")

    # The customers' cost-to-serve: the whale curve, an account's ledger.
    page.click("#customers-form button[type=submit]")
    page.click(f"#whale-table button[data-account='{account}']")
    page.wait_for_selector("#ledger-table tbody tr")
    page.wait_for_selector("#whale-chart .main-svg")
    checked["customers, whale curve, ledger"] = axe_violations(page)
    overflow["customers, whale curve, ledger"] = page.evaluate("() => document.documentElement.scrollWidth")
    page.locator("#customers-section").scroll_into_view_if_needed()
    screenshot(page, f"console-customers-{width}px")

    assert all(not found for found in checked.values()), checked
    assert all(scroll <= width for scroll in overflow.values()), overflow
    # Every table scrolls inside a region the keyboard can reach.
    regions = page.eval_on_selector_all(".scroll", "rs => rs.map(r => [r.getAttribute('role'), r.tabIndex])")
    assert regions and all(region == ["region", 0] for region in regions), regions
