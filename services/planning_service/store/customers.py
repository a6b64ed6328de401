"""Planning's copy of the customers' side: sales orders with their lines (newest version wins) and each
account's tier (newest version wins), and the open order lines as the planning core reads them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BindParameter,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain.orders import UNKNOWN_ACCOUNT_TIER, OrderLine, Tier
from shared.db import DriverStatement


@dataclass(frozen=True)
class OrderLineRecord:
    line_id: str
    sku: str
    quantity: float
    shipped_quantity: float
    open_quantity: float
    requested_on: date
    promised_on: date


@dataclass(frozen=True)
class OrderRecord:
    """A sales order at one version, as an order event carried it. `tier` is the one the event stamped."""

    order_id: str
    account_id: str
    tier: str | None
    status: str
    version: int
    booked_at: datetime
    event_id: str
    lines: tuple[OrderLineRecord, ...]


@dataclass(frozen=True)
class AccountRecord:
    account_id: str
    name: str
    segment: str
    owner_email: str | None
    version: int
    changed_at: datetime
    event_id: str


@dataclass(frozen=True)
class SavedOrder:
    """An order version that was newer than the stored one."""

    skus_before: set[str]  # SKUs of the lines the order had (empty for a new order)
    account_segment: str | None  # the account's tier in planning's copy; None: not heard of yet


@dataclass(frozen=True)
class SavedAccount:
    """An account version that was newer than the stored one; `previous_segment` is None for a new account."""

    previous_segment: str | None


# `save_orders`: the newest version of each order in a batch replaces the order and its lines when it is newer
# than the stored one; per order, the stored version and the SKUs its lines had (the statement's snapshot).
SAVE_ORDERS = text(
    f"""
    WITH candidate AS (
        SELECT * FROM unnest(
            CAST(:order_ids AS text[]), CAST(:account_ids AS text[]), CAST(:tiers AS text[]),
            CAST(:statuses AS text[]), CAST(:versions AS integer[]), CAST(:booked_at AS timestamptz[]),
            CAST(:event_ids AS text[])
        ) WITH ORDINALITY AS c (order_id, account_id, tier, status, version, booked_at, event_id, n)
    ),
    saved AS (
        INSERT INTO {tables.orders.fullname} AS o
            (order_id, account_id, tier, status, version, booked_at, last_event_id)
        SELECT order_id, account_id, tier, status, version, booked_at, event_id FROM candidate
        ON CONFLICT (order_id) DO UPDATE SET
            account_id = excluded.account_id, tier = excluded.tier, status = excluded.status,
            version = excluded.version, booked_at = excluded.booked_at,
            last_event_id = excluded.last_event_id, updated_at = now()
        WHERE o.version < excluded.version
        RETURNING o.order_id
    ),
    line AS (
        SELECT * FROM unnest(
            CAST(:line_order_ids AS text[]), CAST(:line_ids AS text[]), CAST(:skus AS text[]),
            CAST(:quantities AS float8[]), CAST(:shipped AS float8[]), CAST(:open AS float8[]),
            CAST(:requested AS date[]), CAST(:promised AS date[])
        ) AS l (order_id, line_id, sku, quantity, shipped, open, requested, promised)
    ),
    removed AS (
        DELETE FROM {tables.order_lines.fullname} AS x USING saved
        WHERE x.order_id = saved.order_id
            AND NOT EXISTS (SELECT 1 FROM line WHERE line.order_id = x.order_id AND line.line_id = x.line_id)
    ),
    written AS (
        INSERT INTO {tables.order_lines.fullname}
            (order_id, line_id, sku, quantity, shipped_quantity, open_quantity, requested_on, promised_on)
        SELECT line.order_id, line.line_id, line.sku, line.quantity, line.shipped, line.open, line.requested,
            line.promised
        FROM line JOIN saved ON saved.order_id = line.order_id
        ON CONFLICT (order_id, line_id) DO UPDATE SET
            sku = excluded.sku, quantity = excluded.quantity, shipped_quantity = excluded.shipped_quantity,
            open_quantity = excluded.open_quantity, requested_on = excluded.requested_on,
            promised_on = excluded.promised_on
    )
    SELECT
        c.order_id,
        EXISTS (SELECT 1 FROM saved WHERE saved.order_id = c.order_id) AS saved,
        (SELECT o.version FROM {tables.orders.fullname} AS o WHERE o.order_id = c.order_id) AS stored_version,
        ARRAY (
            SELECT DISTINCT x.sku FROM {tables.order_lines.fullname} AS x WHERE x.order_id = c.order_id
        ) AS skus_before,
        -- the tiers of the batch's accounts once, on the first order's row, as text (decoded once)
        CASE WHEN c.n = 1 THEN CAST((
            SELECT jsonb_object_agg(a.account_id, a.segment) FROM {tables.accounts.fullname} AS a
            WHERE a.account_id = ANY (CAST(:all_account_ids AS text[]))
        ) AS text) END AS segments
    FROM candidate AS c
    """
)


def sku_array(skus: Collection[str]) -> BindParameter[Any]:
    """SKUs as one array parameter (`sku = any(:skus)`): a full re-plan's tens of thousands of SKUs would
    overflow the bind parameters an `IN` list takes."""
    return literal(sorted(skus), ARRAY(String))


def open_line(lines: Table, orders: Table) -> ColumnElement[bool]:
    """A line still to ship of an order not cancelled. The constants are written into the SQL, not bound: a
    prepared statement's generic plan can then use the partial index of open lines (with `open_quantity >
    $1` it cannot, and reads every line)."""
    return and_(lines.c.open_quantity > literal_column("0"), orders.c.status != literal_column("'cancelled'"))


def _open_lines() -> Select[Any]:
    """Open lines of uncancelled orders with their tier: planning's copy of the account first, then the tier
    the order event stamped, then the tier of an unknown account. The columns are `OrderLine`'s, in its order.
    The accounts are read under an alias of their own, so that a query that reads accounts too can take the
    open lines as a subquery (a promise check's)."""
    lines, orders, accounts = tables.order_lines, tables.orders, tables.accounts.alias("line_accounts")
    tier = func.coalesce(accounts.c.segment, orders.c.tier, literal(UNKNOWN_ACCOUNT_TIER.value))
    return (
        select(
            lines.c.order_id,
            lines.c.line_id,
            orders.c.account_id,
            tier.label("tier"),
            lines.c.sku,
            lines.c.open_quantity,
            lines.c.promised_on,
            orders.c.booked_at,
            orders.c.version,
        )
        .select_from(
            lines.join(orders, orders.c.order_id == lines.c.order_id).outerjoin(
                accounts, accounts.c.account_id == orders.c.account_id
            )
        )
        .where(open_line(lines, orders))
    )


# The open lines, all of them or those of some SKUs (one array parameter), as statements built once: every
# re-plan of an event's SKUs reads their open lines, and a statement kept keeps its cache key and, through it,
# its compiled SQL.
OPEN_LINES = _open_lines()
OPEN_LINES_OF_SKUS = OPEN_LINES.where(tables.order_lines.c.sku == any_(bindparam("skus", type_=ARRAY(String))))
_TIERS = {tier.value: tier for tier in Tier}


def order_line_from_row(row: Sequence[Any]) -> OrderLine:
    """An `OrderLine` of a row of `OPEN_LINES` (its values in that order)."""
    order_id, line_id, account_id, tier, sku, open_quantity, promised_on, booked_at, version = row
    return OrderLine(
        order_id,
        line_id,
        account_id,
        _TIERS.get(tier) or Tier(tier),
        sku,
        open_quantity,
        promised_on,
        booked_at,
        version,
    )


_OPEN_LINES_SQL = DriverStatement.of(OPEN_LINES)
_OPEN_LINES_OF_SKUS_SQL = DriverStatement.of(OPEN_LINES_OF_SKUS)


async def open_order_lines(session: AsyncSession, skus: Collection[str] | None) -> dict[str, list[OrderLine]]:
    """Open order lines by SKU (of the given SKUs, or all)."""
    found: dict[str, list[OrderLine]] = defaultdict(list)
    if skus is not None and not skus:
        return found
    statement = _OPEN_LINES_SQL if skus is None else _OPEN_LINES_OF_SKUS_SQL
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    rows = await driver.fetch(statement.sql, *statement.arguments({} if skus is None else {"skus": sorted(skus)}))
    for row in rows:
        line = order_line_from_row(row)
        found[line.sku].append(line)
    return found


class CustomerSql:
    session: AsyncSession

    async def save_order(self, order: OrderRecord) -> SavedOrder | None:
        """Keep the order and its lines when it is newer than the stored version (`save_orders` of one order).

        Returns the SKUs its lines had before (none for a new order) and the tier planning's copy of the
        account holds, or None when the stored version is as new or newer: an older or repeated version
        changes nothing.
        """
        return (await self.save_orders([order]))[0]

    async def save_orders(self, orders: Sequence[OrderRecord]) -> list[SavedOrder | None]:
        """`save_order` for several order versions at once, in the order they were read, in one statement: the
        result of each is what it would be one after the other (a version is kept when it is newer than the
        stored one and than those before it in `orders`; its SKUs before are those of the version it replaced).
        Only the newest version of each order is written; the ones before it would have been replaced anyway."""
        if not orders:
            return []
        newest: dict[str, OrderRecord] = {}
        for order in orders:
            kept = newest.get(order.order_id)
            if kept is None or kept.version < order.version:
                newest[order.order_id] = order
        candidates = list(newest.values())
        lines = [(order.order_id, line) for order in candidates for line in order.lines]
        rows = (
            await self.session.execute(
                SAVE_ORDERS,
                {
                    "order_ids": [o.order_id for o in candidates],
                    "account_ids": [o.account_id for o in candidates],
                    "tiers": [o.tier for o in candidates],
                    "statuses": [o.status for o in candidates],
                    "versions": [o.version for o in candidates],
                    "booked_at": [o.booked_at for o in candidates],
                    "event_ids": [o.event_id for o in candidates],
                    "line_order_ids": [order_id for order_id, _ in lines],
                    "line_ids": [line.line_id for _, line in lines],
                    "skus": [line.sku for _, line in lines],
                    "quantities": [line.quantity for _, line in lines],
                    "shipped": [line.shipped_quantity for _, line in lines],
                    "open": [line.open_quantity for _, line in lines],
                    "requested": [line.requested_on for _, line in lines],
                    "promised": [line.promised_on for _, line in lines],
                    "all_account_ids": sorted({o.account_id for o in orders}),
                },
            )
        ).all()
        segments: dict[str, str] = next((orjson.loads(row.segments) for row in rows if row.segments), {})
        # Per order: the version (None: a new order) and the SKUs as the next one in `orders` finds them; no entry
        # when nothing of the order is kept (its newest version in `orders` is not newer than the stored one).
        current: dict[str, tuple[int | None, set[str]]] = {
            row.order_id: (row.stored_version, set(row.skus_before)) for row in rows if row.saved
        }
        results: list[SavedOrder | None] = []
        for order in orders:
            state = current.get(order.order_id)
            if state is None or (state[0] is not None and order.version <= state[0]):
                results.append(None)
                continue
            current[order.order_id] = (order.version, {line.sku for line in order.lines})
            results.append(SavedOrder(state[1], segments.get(order.account_id)))
        return results

    async def account_segment(self, account_id: str) -> str | None:
        accounts = tables.accounts
        query = select(accounts.c.segment).where(accounts.c.account_id == account_id)
        segment: str | None = (await self.session.execute(query)).scalar()
        return segment

    async def save_account(self, account: AccountRecord) -> SavedAccount | None:
        """Keep the account when its version is newer than the stored one; None when it is not."""
        accounts = tables.accounts
        previous = await self.account_segment(account.account_id)
        statement = insert(accounts).values(
            account_id=account.account_id,
            name=account.name,
            segment=account.segment,
            owner_email=account.owner_email,
            version=account.version,
            changed_at=account.changed_at,
            last_event_id=account.event_id,
        )
        kept = ("name", "segment", "owner_email", "version", "changed_at", "last_event_id")
        saved = await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[accounts.c.account_id],
                set_={k: statement.excluded[k] for k in kept},
                where=accounts.c.version < statement.excluded.version,
            ).returning(accounts.c.account_id)
        )
        return SavedAccount(previous) if saved.first() is not None else None

    async def open_skus_of_account(self, account_id: str) -> set[str]:
        """SKUs of the account's open order lines."""
        lines, orders = tables.order_lines, tables.orders
        query = (
            select(lines.c.sku)
            .distinct()
            .select_from(lines.join(orders, orders.c.order_id == lines.c.order_id))
            .where(orders.c.account_id == account_id, open_line(lines, orders))
        )
        return set((await self.session.execute(query)).scalars())
