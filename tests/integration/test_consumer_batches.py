"""A fetched batch handled together, against the real database: its events claimed in the inbox in one
statement (duplicates, in the inbox or twice in the batch, left out), and planning's set-based writes for
order-volume reports and sales orders giving what one event after the other gives (newest version wins, the
last report of a day wins, every report counted and logged)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.planning_service import handlers, tables
from services.planning_service.domain.orders import Tier
from services.planning_service.domain.promises import AtRiskLine
from services.planning_service.store import OrderLineRecord, OrderRecord, SqlStore
from shared import inbox
from shared.events import (
    CloudEvent,
    EventType,
    OrderVolumeReportedData,
    ReturnData,
    new_event,
)
from tests.consumer_events import planned_promotion
from tests.fakes.planning import FakePlanningStore

pytestmark = pytest.mark.integration

BOOKED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Context:
    """What handlers need of a unit of work here: its context."""

    def __init__(self) -> None:
        self.context: dict[str, Any] = {}


async def test_a_batch_is_claimed_in_one_statement_and_duplicates_are_left_out(session):
    table = tables.metadata.tables["planning.inbox"]
    old, new, again = planned_promotion("OLD"), planned_promotion("NEW"), planned_promotion("AGAIN")
    assert await inbox.claim(session, table, "batch-test", old)
    claimed = await inbox.claim_many(session, table, "batch-test", [old, new, again, new])
    assert claimed == {new.id, again.id}, "the one in the inbox already is left out, a second copy claimed once"
    assert await inbox.claim_many(session, table, "batch-test", [new, again]) == set()
    assert await inbox.claim_many(session, table, "other-consumer", [new]) == {new.id}, "per consumer"
    assert await inbox.claim_many(session, table, "batch-test", []) == set()


def volumes(sku: str, *days: tuple[str, int]) -> tuple[CloudEvent, OrderVolumeReportedData]:
    data = OrderVolumeReportedData.model_validate(
        {
            "sku": sku,
            "days": [
                {"day": day, "units_ordered": units, "units_shipped": units, "units_backordered": 0}
                for day, units in days
            ],
        }
    )
    return new_event(EventType.ORDER_VOLUME_REPORTED, source="test", subject=sku, data=data), data


async def test_order_volume_reports_together_give_what_one_after_the_other_gives(session):
    await session.execute(
        tables.baseline_models.insert().values(
            sku="SKU-1", method="ets", model=None, origin=date(2026, 11, 16), history_digest={}
        )
    )
    reports = [
        volumes("SKU-1", ("2026-11-02", 10), ("2026-11-03", 11)),
        volumes("SKU-2", ("2026-11-20", 5)),
        volumes("SKU-1", ("2026-11-03", 30)),  # a correction of a day reported before in the batch
        volumes("SKU-1", ("2026-11-17", 7)),  # after the model's origin: no history change
    ]
    publisher = Context()
    await handlers.on_order_volumes_together(SqlStore(session), publisher, reports)  # type: ignore[arg-type]

    stored = await session.execute(tables.daily_volumes.select().order_by("sku", "day"))
    assert [(r.sku, r.day.isoformat(), r.units_ordered) for r in stored] == [
        ("SKU-1", "2026-11-02", 10),
        ("SKU-1", "2026-11-03", 30),
        ("SKU-1", "2026-11-17", 7),
        ("SKU-2", "2026-11-20", 5),
    ]
    changes = await session.scalar(
        tables.baseline_models.select().with_only_columns(tables.baseline_models.c.history_changes)
    )
    assert changes == 2, "each report of days before the origin counts once"
    drivers = {r.event_id: r for r in await session.execute(tables.drivers.select())}
    assert set(drivers) == {event.id for event, _ in reports}
    assert drivers[reports[0][0].id].skus == ["SKU-1"]
    assert drivers[reports[0][0].id].summary == "order volumes of SKU-1 for 2026-11-02..2026-11-03: 21 units ordered"
    assert publisher.context[handlers.REPLAN] == {
        "SKU-1": [reports[0][0].id, reports[2][0].id, reports[3][0].id],
        "SKU-2": [reports[1][0].id],
    }


def order(order_id: str, version: int, *lines: tuple[str, str], account_id: str = "ACC-1") -> OrderRecord:
    return OrderRecord(
        order_id,
        account_id,
        None,
        "open",
        version,
        BOOKED,
        f"{order_id}-v{version}-{len(lines)}",
        tuple(
            OrderLineRecord(line_id, sku, 10.0, 0.0, 10.0, date(2026, 11, 25), date(2026, 11, 25))
            for line_id, sku in lines
        ),
    )


async def test_sales_orders_together_keep_versions_as_one_after_the_other(session):
    store = SqlStore(session)
    await session.execute(
        tables.accounts.insert().values(
            account_id="ACC-1", name="A", segment="strategic", version=1, changed_at=BOOKED, last_event_id="a"
        )
    )
    assert await store.save_order(order("SO-1", 1, ("1", "SKU-1"), ("2", "SKU-2"))) is not None
    assert await store.save_order(order("SO-9", 5, ("1", "SKU-9"))) is not None
    batch = [
        order("SO-1", 3, ("1", "SKU-3")),  # newer than stored: replaces it
        order("SO-1", 2, ("1", "SKU-4")),  # older than the one before it in the batch: nothing
        order("SO-2", 1, ("1", "SKU-5"), account_id="ACC-2"),  # new
        order("SO-2", 1, ("1", "SKU-6"), account_id="ACC-2"),  # the same version again: nothing
        order("SO-9", 4, ("1", "SKU-7")),  # older than stored: nothing
        order("SO-1", 4, ("2", "SKU-8")),  # newest: what is kept
    ]
    fake = FakePlanningStore()
    await fake.save_order(order("SO-1", 1, ("1", "SKU-1"), ("2", "SKU-2")))
    await fake.save_order(order("SO-9", 5, ("1", "SKU-9")))
    one_after_the_other = [await fake.save_order(o) for o in batch]

    saved = await store.save_orders(batch)

    assert [s is not None for s in saved] == [True, False, True, False, False, True]
    assert [s is not None for s in saved] == [s is not None for s in one_after_the_other]
    assert saved[0] is not None and saved[0].skus_before == {"SKU-1", "SKU-2"}
    assert saved[0].account_segment == "strategic"
    assert saved[2] is not None and saved[2].skus_before == set() and saved[2].account_segment is None
    assert saved[5] is not None and saved[5].skus_before == {"SKU-3"}, "the lines of the version it replaced"
    orders = {r.order_id: r.version for r in await session.execute(tables.orders.select())}
    assert orders == {"SO-1": 4, "SO-2": 1, "SO-9": 5}
    lines = await session.execute(tables.order_lines.select().order_by("order_id", "line_id"))
    assert [(r.order_id, r.line_id, r.sku) for r in lines] == [
        ("SO-1", "2", "SKU-8"),
        ("SO-2", "1", "SKU-5"),
        ("SO-9", "1", "SKU-9"),
    ]


def returned(return_id: str, sku: str, condition: str, resolution: str | None) -> tuple[CloudEvent, ReturnData]:
    data = ReturnData.model_validate(
        {
            "return_id": return_id,
            "sku": sku,
            "quantity": 2,
            "account_id": "ACC-1",
            "reason": "damaged",
            "condition": condition,
            "returned_on": "2026-11-20",
            "resolution": resolution,
        }
    )
    return new_event(EventType.RETURN_RECORDED, source="test", subject=return_id, data=data), data


async def test_returns_together_give_what_one_after_the_other_gives(session):
    batch = [
        returned("R-1", "SKU-1", "resellable", None),  # back in stock
        returned("R-2", "SKU-2", "damaged", "refund"),  # nothing for the plan: neither kept nor logged
        returned("R-3", "SKU-3", "damaged", "replacement"),  # a replacement to ship
        returned("R-1", "SKU-9", "resellable", "replacement"),  # the same return again: the first is kept
    ]
    publisher = Context()
    await handlers.on_returns_recorded_together(SqlStore(session), publisher, batch)  # type: ignore[arg-type]
    fake, fake_publisher = FakePlanningStore(), Context()
    for event, data in batch:
        await handlers.on_return_recorded(fake, fake_publisher, event, data)  # type: ignore[arg-type]

    stored = await session.execute(tables.returns.select().order_by("return_id"))
    kept = [(r.return_id, r.sku, r.condition, r.resolution) for r in stored]
    assert kept == [("R-1", "SKU-1", "resellable", None), ("R-3", "SKU-3", "damaged", "replacement")]
    assert kept == [(r.return_id, r.sku, r.condition, r.resolution) for _, r in sorted(fake.returns.items())]
    drivers = {r.event_id: r.summary for r in await session.execute(tables.drivers.select())}
    assert drivers == {event_id: driver.summary for event_id, driver in fake.drivers.items()}
    assert drivers[batch[0][0].id] == "return R-1: 2 x SKU-1 (back in stock)"
    assert publisher.context[handlers.REPLAN] == fake_publisher.context[handlers.REPLAN]
    assert publisher.context[handlers.REPLAN] == {
        "SKU-1": [batch[0][0].id],
        "SKU-3": [batch[2][0].id],
        "SKU-9": [batch[3][0].id],
    }


def at_risk(order_id: str, sku: str, short: float) -> AtRiskLine:
    return AtRiskLine(order_id, "1", "ACC-1", Tier.STRATEGIC, sku, date(2026, 11, 25), 10.0, short, None)


async def test_promises_at_risk_of_reviewed_skus_are_replaced_in_one_go(session):
    store = SqlStore(session)
    await store.save_promises_at_risk(
        {
            "SKU-1": [at_risk("SO-1", "SKU-1", 4.0), at_risk("SO-2", "SKU-1", 1.0)],
            "SKU-2": [at_risk("SO-3", "SKU-2", 2)],
        },
        plan_versions={"SKU-1": 1, "SKU-2": 1},
    )
    # SKU-1 reviewed again: SO-1 is short by more, SO-2 was restored, SO-3's line moved to SKU-1
    await store.save_promises_at_risk(
        {"SKU-1": [at_risk("SO-1", "SKU-1", 6.0), at_risk("SO-3", "SKU-1", 3.0)]}, plan_versions={"SKU-1": 2}
    )

    rows = await session.execute(tables.promises_at_risk.select().order_by("order_id"))
    assert [(r.order_id, r.sku, r.quantity_short, r.plan_version) for r in rows] == [
        ("SO-1", "SKU-1", 6.0, 2),
        ("SO-3", "SKU-1", 3.0, 2),
    ]
    assert await store.promises_at_risk(["SKU-1", "SKU-2"]) == {
        "SKU-1": [at_risk("SO-1", "SKU-1", 6.0), at_risk("SO-3", "SKU-1", 3.0)]
    }
