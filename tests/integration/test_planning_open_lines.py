"""The open order lines as planning reads them, against the real database: all of them (a full re-plan), those
of some SKUs (an event's re-plan) and those of one SKU as a promise check reads them (one JSON array) are the
same lines with the same tier: planning's copy of the account, else the tier the order event stamped, else
the tier of an unknown account. Lines shipped in full and lines of cancelled orders are not open."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.planning_service import tables
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.store import OrderLineRecord, OrderRecord, SqlStore
from services.planning_service.store.customers import open_order_lines

pytestmark = pytest.mark.integration

BOOKED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PROMISED = date(2026, 11, 25)


def order(
    order_id: str,
    account_id: str,
    tier: str | None,
    *lines: tuple[str, str, float],
    status: str = "open",
    version: int = 1,
) -> OrderRecord:
    return OrderRecord(
        order_id,
        account_id,
        tier,
        status,
        version,
        BOOKED,
        f"{order_id}-v{version}",
        tuple(
            OrderLineRecord(line_id, sku, 10.0, 10.0 - open_quantity, open_quantity, PROMISED, PROMISED)
            for line_id, sku, open_quantity in lines
        ),
    )


def line(order_id: str, line_id: str, account_id: str, tier: Tier, sku: str, open_quantity: float) -> OrderLine:
    return OrderLine(order_id, line_id, account_id, tier, sku, open_quantity, PROMISED, BOOKED, 1)


async def test_every_read_of_open_lines_gives_the_same_lines_and_tiers(session):
    store = SqlStore(session)
    await session.execute(
        tables.accounts.insert().values(
            account_id="ACC-1", name="A", segment="strategic", version=1, changed_at=BOOKED, last_event_id="a"
        )
    )
    saved = await store.save_orders(
        [
            # the account's copy wins over the tier the event stamped
            order("SO-1", "ACC-1", "stable", ("1", "SKU-1", 4.0), ("2", "SKU-2", 10.0)),
            # an account planning has not heard of: the stamped tier, else the tier of an unknown account
            order("SO-2", "ACC-2", "integrated", ("1", "SKU-1", 6.0)),
            order("SO-3", "ACC-3", None, ("1", "SKU-1", 2.5), ("2", "SKU-1", 0.0)),  # line 2 shipped in full
            order("SO-4", "ACC-1", None, ("1", "SKU-1", 10.0), status="cancelled"),
        ]
    )
    assert all(s is not None for s in saved)
    for sku in ("SKU-1", "SKU-2", "SKU-3"):  # SKU-3 has no open lines
        await session.execute(
            tables.items.insert().values(
                sku=sku, name=sku, on_hand=5.0, safety_stock=0.0, lot_size=1.0, frozen_weeks=0, revision=1
            )
        )
        await session.execute(
            tables.plans.insert().values(
                sku=sku,
                plan_version=1,
                horizon_start=date(2026, 11, 16),
                generated_at=BOOKED,
                weeks=[],
                exceptions=[],
                total_forecast=0.0,
                total_mps=0.0,
                shortfall_weeks=0,
            )
        )
    expected = {
        "SKU-1": [
            line("SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-1", 4.0),
            line("SO-2", "1", "ACC-2", Tier.INTEGRATED, "SKU-1", 6.0),
            line("SO-3", "1", "ACC-3", Tier.STABLE, "SKU-1", 2.5),
        ],
        "SKU-2": [line("SO-1", "2", "ACC-1", Tier.STRATEGIC, "SKU-2", 10.0)],
    }

    def by_key(found: dict[str, list[OrderLine]]) -> dict[str, list[OrderLine]]:
        return {sku: sorted(lines, key=lambda x: x.key) for sku, lines in found.items()}

    assert by_key(await open_order_lines(session, None)) == expected
    assert by_key(await open_order_lines(session, {"SKU-1", "SKU-9"})) == {"SKU-1": expected["SKU-1"]}
    assert by_key(await open_order_lines(session, ["SKU-2"])) == {"SKU-2": expected["SKU-2"]}
    assert await open_order_lines(session, set()) == {}
    for sku, lines in (expected | {"SKU-3": []}).items():
        view = await store.promising_view(sku, "ACC-1")
        assert view is not None and view.account_segment == "strategic"
        assert sorted(view.lines, key=lambda x: x.key) == lines
        assert all(type(found.tier) is Tier for found in view.lines)
