"""The demo scenario: deterministic for a seed, and it really has the properties it announces."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import date, timedelta

import pytest

from salesops.demo import QUALITY_REASONS, Scenario, build_scenario, plan_changes
from salesops.demo.scenario import COST_STEP, cost_accounts

TODAY = date(2026, 11, 18)


@pytest.fixture(params=[1, 7, 42, 2026])
def s(request: pytest.FixtureRequest) -> Scenario:
    return build_scenario(request.param, TODAY)


def daily_ordered(s: Scenario) -> dict[str, dict[date, int]]:
    totals: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for request in s.requests:
        if request.path == "/v1/order-volumes":
            for line in request.body["lines"]:
                totals[line["sku"]][date.fromisoformat(line["day"])] += line["units_ordered"]
    return totals


def body_of(s: Scenario, path: str) -> dict:
    return next(r.body for r in s.requests if r.path == path)


def test_the_same_seed_and_day_send_identical_requests_and_another_seed_does_not():
    first = json.dumps([r.__dict__ for r in build_scenario(7, TODAY).requests], default=str)
    again = json.dumps([r.__dict__ for r in build_scenario(7, TODAY).requests], default=str)
    other = json.dumps([r.__dict__ for r in build_scenario(8, TODAY).requests], default=str)
    assert first == again
    assert first != other


def test_ids_derive_from_the_seed_so_seeds_never_collide():
    a, b = build_scenario(1, TODAY), build_scenario(2, TODAY)
    assert not set(a.skus) & set(b.skus)
    assert a.campaign_id != b.campaign_id and a.overload_id != b.overload_id
    assert len(a.skus) == 12


def test_history_is_twelve_weeks_across_two_warehouses_ending_yesterday(s):
    days = {d for per_sku in daily_ordered(s).values() for d in per_sku}
    assert min(days) == TODAY - timedelta(days=84) and max(days) == TODAY - timedelta(days=1)
    warehouses = {r.body["warehouse_id"] for r in s.requests if r.path == "/v1/order-volumes"}
    assert warehouses == {"DC-EAST", "DC-WEST"}
    assert all(len(r.body["lines"]) <= 10_000 for r in s.requests if r.path == "/v1/order-volumes")


def test_orders_have_a_weekly_pattern_with_noise(s):
    for sku, per_day in daily_ordered(s).items():
        if sku == s.spike_sku:
            continue
        mondays = [units for day, units in per_day.items() if day.weekday() == 0]
        sundays = [units for day, units in per_day.items() if day.weekday() == 6]
        assert statistics.mean(mondays) > 1.5 * statistics.mean(sundays), sku
        assert len(set(mondays)) > 3, f"{sku} has no noise"


def test_the_spike_day_is_far_above_its_weekday_and_no_other_day_is(s):
    per_day = daily_ordered(s)[s.spike_sku]
    spike = per_day[s.spike_day]
    same_weekday = [u for d, u in per_day.items() if d.weekday() == s.spike_day.weekday() and d != s.spike_day]
    assert spike > 3 * statistics.median(same_weekday)
    assert max(same_weekday) < 1.5 * statistics.median(same_weekday)
    assert s.spike_day < TODAY
    # Nothing promotes the spiking SKU: the spike stays unexplained.
    promoted = {i["sku"] for r in s.requests if r.path == "/v1/promotions" for i in r.body["items"]}
    assert s.spike_sku not in promoted


def test_the_surge_sku_returns_cross_the_alert_threshold_with_a_strategic_account(s):
    returns = [r.body for r in s.requests if r.path == "/v1/returns"]
    assert {r["sku"] for r in returns} == {s.surge_sku}
    window_start = TODAY - timedelta(days=13)
    quality = [
        r
        for r in returns
        if r["reason"] in QUALITY_REASONS and window_start <= date.fromisoformat(r["returned_on"]) <= TODAY
    ]
    shipped = sum(
        line["units_shipped"]
        for r in s.requests
        if r.path == "/v1/order-volumes"
        for line in r.body["lines"]
        if line["sku"] == s.surge_sku and date.fromisoformat(line["day"]) >= window_start
    )
    assert len(quality) >= 5
    assert sum(r["quantity"] for r in quality) / shipped >= 0.06  # default threshold 5 %, with a margin
    segments = {r.path.rsplit("/", 1)[1]: r.body["segment"] for r in s.requests if r.path.startswith("/v1/accounts/")}
    assert segments[s.strategic_account] == "strategic"
    assert s.strategic_account in {r["account_id"] for r in quality}


def test_the_first_campaign_is_announced_ahead_and_fits_capacity(s):
    campaign = next(r.body for r in s.requests if r.body.get("promotion_id") == s.campaign_id)
    assert date.fromisoformat(campaign["starts_on"]) >= TODAY + timedelta(days=14)
    for item in campaign["items"]:
        capacity = body_of(s, f"/v1/items/{item['sku']}")["weekly_capacity"]
        assert s.weekly_levels[item["sku"]] * (1 + item["uplift_pct"] / 100) < capacity


def test_the_overloading_campaign_needs_more_than_capacity_and_stock_can_cover(s):
    promotion = next(r.body for r in s.requests if r.body.get("promotion_id") == s.overload_id)
    item = body_of(s, f"/v1/items/{s.overload_sku}")
    starts, ends = date.fromisoformat(promotion["starts_on"]), date.fromisoformat(promotion["ends_on"])
    level = s.weekly_levels[s.overload_sku]
    uplift = promotion["items"][0]["uplift_pct"] / 100
    extra_demand = level * uplift * ((ends - starts).days + 1) / 7
    weeks_before = (starts - TODAY).days // 7 + 1
    # Everything spare capacity can pre-build before the campaign, plus the stock above safety stock.
    coverable = (item["weekly_capacity"] - level) * (weeks_before + 2) + item["on_hand"] - item["safety_stock"]
    assert extra_demand > 1.5 * coverable
    assert "strategic" in promotion["account_segments"]
    # The overloading campaign is the last thing the scenario does: it comes after the history it plans on.
    assert s.requests[-1].body is promotion


def test_plan_changes_lists_the_weeks_that_moved():
    week = {"week_start": "2026-11-23", "forecast": 100.0, "mps_quantity": 100.0, "capacity_shortfall": 0.0}
    moved = {**week, "forecast": 150.0, "capacity_shortfall": 20.0}
    same = {**week, "week_start": "2026-11-30"}
    changes = plan_changes({"weeks": [week, same]}, {"weeks": [moved, same]})
    assert changes == ["2026-11-23: forecast 100 -> 150, capacity shortfall 0 -> 20"]
    assert plan_changes(None, None) == []


def test_the_stable_account_orders_rushed_split_and_returned_while_the_strategic_one_buys_in_bulk(s):
    strategic, stable = cost_accounts(s)
    orders = {r.body["order_id"]: r.body for r in s.requests if r.path == "/v1/sales-orders" and r.step == COST_STEP}
    drops = defaultdict(int)
    for r in s.requests:
        if r.path.endswith("/shipments"):
            drops[r.path.split("/")[3]] += 1
    rushed = [o for o in orders.values() if o["account_id"] == stable]
    assert rushed and all(o["rush"] and drops[o["order_id"]] == 3 for o in rushed)
    (bulk,) = [o for o in orders.values() if o["account_id"] == strategic]
    assert not bulk["rush"] and drops[bulk["order_id"]] == 1
    returned = [r.body for r in s.requests if r.path == "/v1/returns" and r.body["account_id"] == stable]
    assert any(r["condition"] == "scrap" and r["order_id"] in orders for r in returned)


def test_the_capacity_cut_leaves_stock_for_the_higher_tiers_but_not_for_the_stable_order(s):
    item = body_of(s, f"/v1/items/{s.promise_sku}")
    orders = [r.body for r in s.requests if r.path == "/v1/sales-orders" and r.step == "sales orders booked"]
    assert [o["order_id"] for o in orders] == list(s.promise_orders)
    segments = {r.path.rsplit("/", 1)[1]: r.body["segment"] for r in s.requests if r.path.startswith("/v1/accounts/")}
    quantity = {segments[o["account_id"]]: o["lines"][0]["quantity"] for o in orders}
    assert set(quantity) == {"strategic", "integrated", "stable"}
    assert {line["sku"] for o in orders for line in o["lines"]} == {s.promise_sku}
    due = date.fromisoformat(orders[0]["lines"][0]["requested_on"])
    weeks_to_due = (due - (TODAY - timedelta(days=TODAY.weekday()))).days // 7 + 1
    cut = next(r.body for r in s.requests if r.path == f"/v1/items/{s.promise_sku}" and r.step == "capacity cut")
    assert cut == {**item, "weekly_capacity": cut["weekly_capacity"]}
    # Before the cut, stock and capacity cover every order; after it, stock covers the higher tiers alone and
    # all the cut capacity can make by the due week does not cover the stable order.
    assert sum(quantity.values()) < item["on_hand"] + item["weekly_capacity"] * weeks_to_due
    assert quantity["strategic"] + quantity["integrated"] <= item["on_hand"]
    assert sum(quantity.values()) > item["on_hand"] + cut["weekly_capacity"] * weeks_to_due
    # The orders come after the accounts they name.
    paths = [r.path for r in s.requests]
    last_account = max(i for i, p in enumerate(paths) if p.startswith("/v1/accounts/"))
    assert paths.index("/v1/sales-orders") > last_account
