"""SQL of sales orders, their shipments and this service's copy of account tiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Row, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.fulfillment_service import tables
from services.fulfillment_service.domain.orders import OrderLine, OrderStatus, RecordShipment, SalesOrder, ShipLine

sales_orders = tables.sales_orders
order_lines = tables.sales_order_lines
shipments = tables.shipments
account_tiers = tables.account_tiers


@dataclass(frozen=True)
class StoredOrder:
    order: SalesOrder
    request_hash: str
    booked_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredShipment:
    shipment_id: str
    order_id: str
    shipped_on: date
    lines: tuple[ShipLine, ...]
    request_hash: str
    order_version: int
    recorded_at: datetime


@dataclass(frozen=True)
class OrderFilter:
    account_id: str | None = None
    sku: str | None = None
    status: OrderStatus | None = None


@dataclass(frozen=True)
class ListedOrder:
    stored: StoredOrder
    tier: str | None


class OrderStore(Protocol):
    """What the sales-order handlers read and write."""

    async def insert_order(self, order: SalesOrder, *, request_hash: str) -> StoredOrder | None: ...

    async def order(self, order_id: str, *, lock: bool = False) -> StoredOrder | None: ...

    async def save_order(self, order: SalesOrder, lines: Sequence[OrderLine]) -> StoredOrder: ...

    async def shipment(self, shipment_id: str) -> StoredShipment | None: ...

    async def insert_shipment(
        self, shipment: RecordShipment, *, request_hash: str, order_version: int
    ) -> StoredShipment | None: ...

    async def account_tier(self, account_id: str) -> tuple[str, int] | None: ...

    async def save_account_tier(self, account_id: str, *, segment: str, version: int, changed_at: datetime) -> bool: ...


def _line(row: Row[Any]) -> OrderLine:
    return OrderLine(
        line_id=row.line_id,
        sku=row.sku,
        quantity=row.quantity,
        requested_on=row.requested_on,
        promised_on=row.promised_on,
        unit_price=row.unit_price,
        unit_cost=row.unit_cost,
        shipped=row.shipped,
    )


def _stored(row: Row[Any], lines: Sequence[OrderLine]) -> StoredOrder:
    order = SalesOrder(
        order_id=row.order_id,
        account_id=row.account_id,
        ordered_on=row.ordered_on,
        rush=row.rush,
        lines=tuple(lines),
        cancelled=row.cancelled,
        version=row.version,
    )
    return StoredOrder(order, row.request_hash, row.booked_at, row.updated_at)


def _shipment(row: Row[Any]) -> StoredShipment:
    return StoredShipment(
        shipment_id=row.shipment_id,
        order_id=row.order_id,
        shipped_on=row.shipped_on,
        lines=tuple(ShipLine(line["line_id"], int(line["quantity"])) for line in row.lines),
        request_hash=row.request_hash,
        order_version=row.order_version,
        recorded_at=row.recorded_at,
    )


def _line_values(order_id: str, position: int, line: OrderLine) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "line_id": line.line_id,
        "position": position,
        "sku": line.sku,
        "quantity": line.quantity,
        "requested_on": line.requested_on,
        "promised_on": line.promised_on,
        "unit_price": line.unit_price,
        "unit_cost": line.unit_cost,
        "shipped": line.shipped,
    }


class OrderSql:
    session: AsyncSession

    async def insert_order(self, order: SalesOrder, *, request_hash: str) -> StoredOrder | None:
        """The new order, or None when its id exists (a concurrent booking waits on the primary key)."""
        row = (
            await self.session.execute(
                insert(sales_orders)
                .values(
                    order_id=order.order_id,
                    account_id=order.account_id,
                    ordered_on=order.ordered_on,
                    rush=order.rush,
                    cancelled=order.cancelled,
                    status=order.status.value,
                    version=order.version,
                    request_hash=request_hash,
                )
                .on_conflict_do_nothing(index_elements=[sales_orders.c.order_id])
                .returning(*sales_orders.c)
            )
        ).first()
        if row is None:
            return None
        await self.session.execute(
            insert(order_lines),
            [_line_values(order.order_id, position, line) for position, line in enumerate(order.lines)],
        )
        return _stored(row, order.lines)

    async def order(self, order_id: str, *, lock: bool = False) -> StoredOrder | None:
        """One order with its lines; with `lock`, its row stays locked until the commit (serialises changes,
        shipments and the cancellation, so versions and events never interleave)."""
        query = select(sales_orders).where(sales_orders.c.order_id == order_id)
        row = (await self.session.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            return None
        lines = await self.session.execute(
            select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.position)
        )
        return _stored(row, [_line(line) for line in lines])

    async def save_order(self, order: SalesOrder, lines: Sequence[OrderLine]) -> StoredOrder:
        """Write the order's state and the given (new or changed) lines; returns the order as stored."""
        row = (
            await self.session.execute(
                update(sales_orders)
                .where(sales_orders.c.order_id == order.order_id)
                .values(
                    rush=order.rush,
                    cancelled=order.cancelled,
                    status=order.status.value,
                    version=order.version,
                    updated_at=func.now(),
                )
                .returning(*sales_orders.c)
            )
        ).one()
        if lines:
            positions = {line.line_id: position for position, line in enumerate(order.lines)}
            statement = insert(order_lines).values(
                [_line_values(order.order_id, positions[line.line_id], line) for line in lines]
            )
            kept = {"order_id", "line_id", "position", "sku"}
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[order_lines.c.order_id, order_lines.c.line_id],
                    set_={c.name: statement.excluded[c.name] for c in order_lines.c if c.name not in kept},
                )
            )
        return _stored(row, order.lines)

    async def list_orders(self, where: OrderFilter, *, limit: int, after: str | None) -> list[ListedOrder]:
        """Orders in order_id order, after that id when given, each with its account's tier as known here."""
        query = (
            select(sales_orders, account_tiers.c.segment.label("tier"))
            .outerjoin(account_tiers, account_tiers.c.account_id == sales_orders.c.account_id)
            .order_by(sales_orders.c.order_id)
            .limit(limit)
        )
        if where.account_id is not None:
            query = query.where(sales_orders.c.account_id == where.account_id)
        if where.status is not None:
            query = query.where(sales_orders.c.status == where.status.value)
        if where.sku is not None:
            query = query.where(
                exists().where(order_lines.c.order_id == sales_orders.c.order_id, order_lines.c.sku == where.sku)
            )
        if after is not None:
            query = query.where(sales_orders.c.order_id > after)
        rows = (await self.session.execute(query)).all()
        lines: dict[str, list[OrderLine]] = {row.order_id: [] for row in rows}
        if rows:
            line_rows = await self.session.execute(
                select(order_lines)
                .where(order_lines.c.order_id.in_(list(lines)))
                .order_by(order_lines.c.order_id, order_lines.c.position)
            )
            for line in line_rows:
                lines[line.order_id].append(_line(line))
        return [ListedOrder(_stored(row, lines[row.order_id]), row.tier) for row in rows]

    # ------------------------------------------------------------ shipments

    async def shipment(self, shipment_id: str) -> StoredShipment | None:
        row = (await self.session.execute(select(shipments).where(shipments.c.shipment_id == shipment_id))).first()
        return _shipment(row) if row else None

    async def insert_shipment(
        self, shipment: RecordShipment, *, request_hash: str, order_version: int
    ) -> StoredShipment | None:
        """The new shipment, or None when its id exists (recorded meanwhile for another order)."""
        row = (
            await self.session.execute(
                insert(shipments)
                .values(
                    shipment_id=shipment.shipment_id,
                    order_id=shipment.order_id,
                    shipped_on=shipment.shipped_on,
                    lines=[{"line_id": line.line_id, "quantity": line.quantity} for line in shipment.lines],
                    request_hash=request_hash,
                    order_version=order_version,
                )
                .on_conflict_do_nothing(index_elements=[shipments.c.shipment_id])
                .returning(*shipments.c)
            )
        ).first()
        return _shipment(row) if row else None

    # ------------------------------------------------------------ account tiers

    async def account_tier(self, account_id: str) -> tuple[str, int] | None:
        """The account's tier and the version it came with, or None when no account event named it yet."""
        query = select(account_tiers.c.segment, account_tiers.c.version).where(account_tiers.c.account_id == account_id)
        row = (await self.session.execute(query)).first()
        return (row.segment, row.version) if row else None

    async def save_account_tier(self, account_id: str, *, segment: str, version: int, changed_at: datetime) -> bool:
        """Keep the account's tier unless a newer (or the same) version is already stored; True if written.

        The condition sits in the statement, so two consumers racing on one account still keep the newest.
        """
        statement = insert(account_tiers).values(
            account_id=account_id, segment=segment, version=version, changed_at=changed_at
        )
        result = await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[account_tiers.c.account_id],
                set_={
                    "segment": statement.excluded.segment,
                    "version": statement.excluded.version,
                    "changed_at": statement.excluded.changed_at,
                    "updated_at": func.now(),
                },
                where=account_tiers.c.version < statement.excluded.version,
            ).returning(account_tiers.c.account_id)
        )
        return result.first() is not None
