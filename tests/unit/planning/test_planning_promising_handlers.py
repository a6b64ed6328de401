"""Planning handlers for sales orders and accounts against an in-memory store: booked orders moving the plan's
booked_orders and ATP, newest versions only, shipments and cancellations, and the promises a capacity cut
breaks (stable first) and its restoration brings back, published only on real change."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.planning_service import handlers
from services.planning_service.domain import Item
from services.planning_service.settings import PlanningSettings
from shared.events import (
    AccountChangedData,
    CloudEvent,
    EventType,
    InvalidEvent,
    PromiseData,
    SalesOrderData,
    ShipmentRecordedData,
    new_event,
)
from tests.fakes import RecordingPublisher
from tests.fakes.planning import FakePlanningStore

MONDAY = date(2026, 11, 23)
SETTINGS = PlanningSettings(clock_today=MONDAY)
BOOKED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def week(n: int) -> date:
    return MONDAY + timedelta(weeks=n)


def sales_order(
    order_id: str,
    account_id: str,
    quantity: int,
    promised_on: date,
    *,
    version: int = 1,
    status: str = "open",
    shipped: int = 0,
    tier: str | None = None,
    booked_days: int = 0,
    sku: str = "SKU-1",
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "account_id": account_id,
        "tier": tier,
        "ordered_on": (BOOKED + timedelta(days=booked_days)).date().isoformat(),
        "status": status,
        "version": version,
        "booked_at": (BOOKED + timedelta(days=booked_days)).isoformat(),
        "lines": [
            {
                "line_id": "1",
                "sku": sku,
                "quantity": quantity,
                "requested_on": promised_on.isoformat(),
                "promised_on": promised_on.isoformat(),
                "shipped_quantity": shipped,
                "open_quantity": 0 if status == "cancelled" else quantity - shipped,
            }
        ],
    }


async def consume(store: FakePlanningStore, event_type: EventType, data: Any) -> tuple[RecordingPublisher, CloudEvent]:
    """One event through its handler, then the batch's deferred re-plan, as the consumer runs them."""
    publisher = RecordingPublisher()
    event = new_event(event_type, source="salesops/test", subject="x", data=data)
    if isinstance(data, AccountChangedData):
        await handlers.on_account_changed(store, publisher, event, data)
    else:
        await handlers.on_sales_order(store, publisher, event, data)
    await handlers.finish_replans(store, publisher, SETTINGS)
    return publisher, event


async def book(store: FakePlanningStore, body: dict[str, Any], event_type: EventType = EventType.SALES_ORDER_BOOKED):
    return await consume(store, event_type, SalesOrderData.model_validate(body))


async def account(store: FakePlanningStore, account_id: str, segment: str, version: int = 1) -> RecordingPublisher:
    data = AccountChangedData(
        account_id=account_id,
        name=account_id,
        segment=segment,
        version=version,
        changed_at=BOOKED,
    )
    publisher, _ = await consume(store, EventType.ACCOUNT_CHANGED, data)
    return publisher


async def put(store: FakePlanningStore, item: Item) -> RecordingPublisher:
    publisher = RecordingPublisher()
    await handlers.put_item(store, publisher, item, SETTINGS)
    return publisher


def promises(publisher: RecordingPublisher) -> list[tuple[EventType, PromiseData]]:
    kinds = (EventType.PROMISE_AT_RISK, EventType.PROMISE_RESTORED)
    return [(e.type, e.data) for e in publisher.events if e.type in kinds]


def weeks(store: FakePlanningStore, field: str, count: int = 4) -> list[float]:
    return [getattr(w, field) for w in store.plans["SKU-1"].plan.weeks[:count]]


# ---------------------------------------------------------------- booked orders in the plan

# 100 on hand, 50 a week forecast, no capacity limit: stock covers weeks 0 and 1, production starts in week 2.
STOCKED = Item("SKU-1", "Widget", on_hand=100, safety_stock=0, baseline_weekly_demand=50)


async def test_a_booked_order_moves_booked_orders_and_atp_and_names_the_order() -> None:
    store = FakePlanningStore()
    await put(store, STOCKED)
    assert weeks(store, "atp") == [100, 0, 50, 50]
    publisher, event = await book(store, sales_order("SO-1", "ACC-7", 30, week(1), tier="strategic"))
    # Within the forecast: gross requirements and production stay; the order is taken from on hand's ATP.
    assert weeks(store, "booked_orders") == [0, 30, 0, 0]
    assert weeks(store, "gross_requirements") == [50, 50, 50, 50]
    assert weeks(store, "mps_quantity") == [0, 0, 50, 50]
    assert weeks(store, "atp") == [70, 0, 50, 50]
    assert weeks(store, "cumulative_atp") == [70, 70, 120, 170]
    (revised,) = [e for e in publisher.events if e.type == EventType.MPS_REVISED]
    assert revised.data.driver_event_ids == [event.id]
    assert {(c.week_start, c.field) for c in revised.data.changed_weeks} == {
        (week(1), "booked_orders"),
        (week(0), "atp"),
    }
    assert store.drivers[event.id].summary == "SO-1 booked 30 x SKU-1 for ACC-7 (strategic)"
    assert store.drivers[event.id].skus == ["SKU-1"]


async def test_orders_beyond_the_forecast_add_to_gross_requirements() -> None:
    store = FakePlanningStore()
    await put(store, STOCKED)
    await book(store, sales_order("SO-1", "ACC-7", 80, week(2)))
    assert weeks(store, "gross_requirements") == [50, 50, 80, 50]
    assert weeks(store, "mps_quantity") == [0, 0, 80, 50]
    assert weeks(store, "atp") == [100, 0, 0, 50]


async def test_an_older_or_repeated_version_changes_nothing() -> None:
    store = FakePlanningStore()
    await put(store, STOCKED)
    await book(store, sales_order("SO-1", "ACC-7", 40, week(1), version=2), EventType.SALES_ORDER_CHANGED)
    versions = len(store.revisions)
    for late in (sales_order("SO-1", "ACC-7", 30, week(1)), sales_order("SO-1", "ACC-7", 99, week(1), version=2)):
        publisher, event = await book(store, late)
        assert publisher.events == [] and event.id not in store.drivers
    assert weeks(store, "booked_orders") == [0, 40, 0, 0]
    assert len(store.revisions) == versions


async def test_shipments_reduce_the_open_quantity_and_a_cancelled_order_drops_out() -> None:
    store = FakePlanningStore()
    await put(store, STOCKED)
    await book(store, sales_order("SO-1", "ACC-7", 40, week(1)))
    shipment = sales_order("SO-1", "ACC-7", 40, week(1), version=2, shipped=30, status="partially_shipped")
    shipment["shipment"] = {
        "shipment_id": "SH-1",
        "shipped_on": "2026-11-23",
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": 30}],
    }
    _, shipped = await consume(store, EventType.SHIPMENT_RECORDED, ShipmentRecordedData.model_validate(shipment))
    assert weeks(store, "booked_orders") == [0, 10, 0, 0]
    assert store.drivers[shipped.id].summary == "SO-1 shipped 30 x SKU-1 (SH-1); 10 open for ACC-7 (stable)"
    _, cancelled = await book(
        store, sales_order("SO-1", "ACC-7", 40, week(1), version=3, status="cancelled"), EventType.SALES_ORDER_CANCELLED
    )
    assert weeks(store, "booked_orders") == [0, 0, 0, 0]
    assert weeks(store, "atp") == [100, 0, 50, 50]
    assert store.drivers[cancelled.id].summary == "SO-1 cancelled: SKU-1 for ACC-7 (stable)"


async def test_a_line_moved_to_another_sku_replans_both() -> None:
    store = FakePlanningStore()
    await put(store, STOCKED)
    await put(store, replace(STOCKED, sku="SKU-2"))
    await book(store, sales_order("SO-1", "ACC-7", 40, week(1)))
    moved = sales_order("SO-1", "ACC-7", 40, week(1), version=2, sku="SKU-2")
    publisher, _ = await book(store, moved, EventType.SALES_ORDER_CHANGED)
    assert sorted(e.key for e in publisher.events if e.type == EventType.MPS_REVISED) == ["SKU-1", "SKU-2"]
    assert weeks(store, "booked_orders") == [0, 0, 0, 0]
    assert [w.booked_orders for w in store.plans["SKU-2"].plan.weeks[:2]] == [0, 40]


async def test_order_data_planning_can_never_store_is_poison() -> None:
    store = FakePlanningStore()
    twice = sales_order("SO-1", "ACC-7", 40, week(1))
    twice["lines"] = twice["lines"] * 2
    with pytest.raises(InvalidEvent, match=r"data\.lines\.1\.line_id"):
        await book(store, twice)
    long_sku = sales_order("SO-2", "ACC-7", 40, week(1), sku="S" * 101)
    with pytest.raises(InvalidEvent, match=r"data\.lines\.0\.sku"):
        await book(store, long_sku)
    huge = sales_order("SO-3", "ACC-7", 10**13, week(1))
    with pytest.raises(InvalidEvent, match=r"data\.lines\.0\.quantity"):
        await book(store, huge)
    assert store.orders == {}


# ---------------------------------------------------------------- promises at risk

# No stock, 50 a week forecast, capacity 100: the two orders (140 in week 2) are covered by pre-building.
MADE = Item("SKU-1", "Widget", on_hand=0, safety_stock=0, weekly_capacity=100, baseline_weekly_demand=50)
CUT = replace(MADE, weekly_capacity=40)


async def booked_strategic_and_stable(store: FakePlanningStore) -> None:
    await put(store, MADE)
    await account(store, "ACC-S", "strategic")
    # The stable line was booked first: tier comes before booking time.
    await book(store, sales_order("SO-T", "ACC-T", 60, week(2), booked_days=0))
    await book(store, sales_order("SO-S", "ACC-S", 80, week(2), booked_days=1))
    assert weeks(store, "booked_orders") == [0, 0, 140, 0]
    assert store.at_risk == {}


async def test_a_capacity_cut_breaks_the_stable_promise_and_keeps_the_strategic_one() -> None:
    store = FakePlanningStore()
    await booked_strategic_and_stable(store)
    publisher = await put(store, CUT)
    # Supply 40 a week: 120 by week 2. SO-S takes 80; SO-T (60) finds 40 left, short 20, covered in week 3.
    (change,) = promises(publisher)
    kind, data = change
    assert kind == EventType.PROMISE_AT_RISK
    assert (data.order_id, data.line_id, data.account_id, data.tier) == ("SO-T", "1", "ACC-T", "stable")
    assert (data.quantity, data.quantity_short, data.promised_on, data.earliest_on) == (60, 20, week(2), week(3))
    assert data.plan_version == store.plans["SKU-1"].plan_version
    assert [(d.event_id, d.type, d.summary) for d in data.drivers] == [
        ("item:SKU-1:2", handlers.ITEM_UPDATED, "item master updated")
    ]
    at_risk_event = next(e for e in publisher.events if e.type == EventType.PROMISE_AT_RISK)
    assert (at_risk_event.key, at_risk_event.subject) == ("SKU-1", "SO-T")
    assert list(store.at_risk) == [("SO-T", "1")]


async def test_restoring_capacity_restores_the_promise() -> None:
    store = FakePlanningStore()
    await booked_strategic_and_stable(store)
    await put(store, CUT)
    publisher = await put(store, replace(MADE, name="Widget (capacity back)"))
    (change,) = promises(publisher)
    kind, data = change
    assert kind == EventType.PROMISE_RESTORED
    assert (data.order_id, data.quantity_short, data.earliest_on, data.tier) == ("SO-T", 0, week(2), "stable")
    assert [d.event_id for d in data.drivers] == ["item:SKU-1:3"]
    assert store.at_risk == {}


async def test_nothing_is_published_when_no_promise_changed() -> None:
    store = FakePlanningStore()
    await booked_strategic_and_stable(store)
    await put(store, CUT)
    renamed = await put(store, replace(CUT, name="Widget, renamed"))
    assert promises(renamed) == [] and renamed.events == []
    other, _ = await book(store, sales_order("SO-X", "ACC-T", 5, week(20)))
    assert promises(other) == []  # a later order fits the later supply; SO-T's shortfall is unchanged
    assert list(store.at_risk) == [("SO-T", "1")]


async def test_a_new_tier_re_judges_the_accounts_promises() -> None:
    store = FakePlanningStore()
    await booked_strategic_and_stable(store)
    await put(store, CUT)
    # ACC-T becomes strategic: both lines are strategic and SO-T was booked first, so SO-S (80) finds 60.
    publisher = await account(store, "ACC-T", "strategic")
    assert [(kind, data.order_id) for kind, data in promises(publisher)] == [
        (EventType.PROMISE_AT_RISK, "SO-S"),
        (EventType.PROMISE_RESTORED, "SO-T"),
    ]
    _, at_risk = promises(publisher)[0]
    assert (at_risk.tier, at_risk.quantity_short, at_risk.earliest_on) == ("strategic", 20, week(3))
    driver = at_risk.drivers[0]
    assert driver.summary == "ACC-T is now strategic (new to planning)"
    assert [e.type for e in publisher.events if e.type == EventType.MPS_REVISED] == []  # the plan itself holds
    stale = await account(store, "ACC-T", "stable", version=1)  # an older version of the account, late
    assert stale.events == [] and store.accounts["ACC-T"].segment == "strategic"


async def test_an_account_change_without_a_new_tier_replans_nothing() -> None:
    store = FakePlanningStore()
    await booked_strategic_and_stable(store)
    publisher = await account(store, "ACC-S", "strategic", version=2)
    assert publisher.events == [] and handlers.REPLAN not in publisher.context
