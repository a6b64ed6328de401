"""SQL of cost-to-serve: the copy of sales orders (newest version wins) and shipments, the rate-free ledger per
account and month, each account's counting day, and the activity rates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.returns_service import tables
from services.returns_service.costing import (
    AccountMonth,
    CostRates,
    Drivers,
    LedgerFacts,
    OrderFact,
    OrderLineFact,
    ShipmentFact,
    ShipmentLineFact,
)
from services.returns_service.domain import (
    Complaint,
    ComplaintCategory,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Severity,
)
from shared.outbox import advisory_lock_key

cost_orders = tables.cost_orders
cost_shipments = tables.cost_shipments
cost_ledger = tables.cost_ledger
cost_accounts = tables.cost_accounts
cost_rates = tables.cost_rates

RATES_ROW = 1
# Ledger columns by driver (Drivers field -> column).
DRIVER_COLUMNS = {
    "order": "orders",
    "order_line": "order_lines",
    "unit_picked": "units_picked",
    "shipment": "shipments",
    "backordered_line": "backordered_lines",
    "rush_order": "rush_orders",
    "return_line": "return_lines",
    "complaint": "complaints",
}


@dataclass(frozen=True)
class StoredRates:
    rates: CostRates
    updated_at: datetime | None  # None: never set, the documented defaults
    updated_by: str | None


def _order(row: Row[Any]) -> OrderFact:
    lines = tuple(
        OrderLineFact(
            line["line_id"],
            line["sku"],
            line["quantity"],
            date.fromisoformat(line["promised_on"]),
            line.get("unit_price"),
            line.get("unit_cost"),
        )
        for line in row.lines
    )
    return OrderFact(
        row.order_id, row.account_id, row.version, row.ordered_on, lines, row.rush, row.status == "cancelled"
    )


def _month(row: Row[Any]) -> AccountMonth:
    drivers = Drivers(**{name: getattr(row, column) for name, column in DRIVER_COLUMNS.items()})
    return AccountMonth(
        account_id=row.account_id,
        month=row.month,
        drivers=drivers,
        revenue=row.revenue,
        cost_of_goods=row.cost_of_goods,
        returned_units=row.returned_units,
        written_off_units=row.written_off_units,
        written_off_cost=row.written_off_cost,
        unpriced_units=row.unpriced_units,
    )


class CostingStore:
    session: AsyncSession

    async def lock_account_costs(self, account_id: str) -> None:
        """Serialise ledger rebuilds of one account to the commit: each recount then reads every fact the
        previous one committed (orders of one account arrive on several partitions, returns over HTTP)."""
        key = advisory_lock_key(f"returns-cost:{account_id}")
        await self.session.execute(select(func.pg_advisory_xact_lock(key)))

    async def save_order(self, order: OrderFact, *, status: str) -> bool:
        """Keep the newest version of the order; an older or the same version changes nothing. True when
        stored. An order never moves to another account (its first account is kept)."""
        values: dict[str, Any] = {
            "account_id": order.account_id,
            "version": order.version,
            "ordered_on": order.ordered_on,
            "rush": order.rush,
            "status": status,
            "lines": [{**asdict(line), "promised_on": line.promised_on.isoformat()} for line in order.lines],
        }
        statement = insert(cost_orders).values(order_id=order.order_id, **values)
        updated = {k: v for k, v in values.items() if k != "account_id"}
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[cost_orders.c.order_id],
                    set_={**updated, "updated_at": func.now()},
                    where=cost_orders.c.version < statement.excluded.version,
                ).returning(cost_orders.c.order_id)
            )
        ).first()
        return row is not None

    async def save_shipment(self, shipment: ShipmentFact) -> bool:
        """Record a delivery once; True when it is new."""
        row = (
            await self.session.execute(
                insert(cost_shipments)
                .values(
                    shipment_id=shipment.shipment_id,
                    order_id=shipment.order_id,
                    shipped_on=shipment.shipped_on,
                    lines=[asdict(line) for line in shipment.lines],
                )
                .on_conflict_do_nothing(index_elements=[cost_shipments.c.shipment_id])
                .returning(cost_shipments.c.shipment_id)
            )
        ).first()
        return row is not None

    async def account_of_order(self, order_id: str) -> str | None:
        return await self.session.scalar(select(cost_orders.c.account_id).where(cost_orders.c.order_id == order_id))

    async def account_facts(self, account_id: str) -> LedgerFacts:
        """Everything the account's ledger is counted from: its orders, their deliveries, its returns and
        complaints."""
        orders = [
            _order(r)
            for r in (await self.session.execute(select(cost_orders).where(cost_orders.c.account_id == account_id)))
        ]
        shipment_rows = await self.session.execute(
            select(cost_shipments)
            .join(cost_orders, cost_orders.c.order_id == cost_shipments.c.order_id)
            .where(cost_orders.c.account_id == account_id)
        )
        shipments = [
            ShipmentFact(
                r.shipment_id,
                r.order_id,
                r.shipped_on,
                tuple(ShipmentLineFact(x["line_id"], x["quantity"]) for x in r.lines),
            )
            for r in shipment_rows
        ]
        returns = tables.returns
        return_rows = await self.session.execute(select(returns).where(returns.c.account_id == account_id))
        records = [
            ReturnRecord(
                r.return_id,
                r.sku,
                r.quantity,
                r.account_id,
                ReturnReason(r.reason),
                ReturnCondition(r.condition),
                r.returned_on,
                Resolution(r.body["resolution"]) if r.body.get("resolution") else None,
                r.body.get("order_id"),
            )
            for r in return_rows
        ]
        complaints = tables.complaints
        complaint_rows = await self.session.execute(select(complaints).where(complaints.c.account_id == account_id))
        found = [
            Complaint(
                r.complaint_id,
                r.account_id,
                r.sku,
                ComplaintCategory(r.body["category"]),
                Severity(r.severity),
                r.body.get("description", ""),
                r.received_on,
            )
            for r in complaint_rows
        ]
        return LedgerFacts(orders, shipments, records, found)

    async def replace_ledger(self, account_id: str, months: Sequence[AccountMonth], as_of: date) -> None:
        """The account's ledger becomes exactly `months`, counted on `as_of`."""
        await self.session.execute(delete(cost_ledger).where(cost_ledger.c.account_id == account_id))
        if months:
            rows = [
                {
                    "account_id": account_id,
                    "month": m.month,
                    **{column: getattr(m.drivers, name) for name, column in DRIVER_COLUMNS.items()},
                    **{
                        f.name: getattr(m, f.name)
                        for f in fields(m)
                        if f.name not in {"account_id", "month", "drivers"}
                    },
                }
                for m in months
            ]
            await self.session.execute(insert(cost_ledger).values(rows))
        statement = insert(cost_accounts).values(account_id=account_id, counted_as_of=as_of)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[cost_accounts.c.account_id], set_={"counted_as_of": as_of})
        )

    async def ledger_months(
        self, *, account_id: str | None, first: date | None, last: date | None
    ) -> list[AccountMonth]:
        """Ledger rows in [first, last] (months), of one account or of all, by account then month."""
        query = select(cost_ledger).order_by(cost_ledger.c.account_id, cost_ledger.c.month)
        if account_id is not None:
            query = query.where(cost_ledger.c.account_id == account_id)
        if first is not None:
            query = query.where(cost_ledger.c.month >= first)
        if last is not None:
            query = query.where(cost_ledger.c.month <= last)
        return [_month(row) for row in (await self.session.execute(query)).all()]

    async def has_cost_ledger(self, account_id: str) -> bool:
        """Whether the account's ledger was ever counted (it had an order, a return or a complaint)."""
        found = await self.session.scalar(
            select(cost_accounts.c.account_id).where(cost_accounts.c.account_id == account_id)
        )
        return found is not None

    async def revenue_between(self, first: date, last: date) -> float:
        """The revenue of every account in the months [first, last]."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(cost_ledger.c.revenue), 0.0)).where(cost_ledger.c.month.between(first, last))
        )
        return float(total or 0.0)

    async def stored_rates(self) -> StoredRates:
        row = (await self.session.execute(select(cost_rates).where(cost_rates.c.id == RATES_ROW))).first()
        if row is None:
            return StoredRates(CostRates(), None, None)
        return StoredRates(CostRates(currency=row.currency, **row.rates), row.updated_at, row.updated_by)

    async def put_rates(self, rates: CostRates, *, by: str | None) -> StoredRates:
        values = {
            "currency": rates.currency,
            "rates": {k: v for k, v in asdict(rates).items() if k != "currency"},
            "updated_by": by,
            "updated_at": func.now(),
        }
        statement = insert(cost_rates).values(id=RATES_ROW, **values)
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(index_elements=[cost_rates.c.id], set_=values).returning(
                    cost_rates.c.updated_at
                )
            )
        ).one()
        return StoredRates(rates, row.updated_at, by)

    async def mark_evaluated(self, account_id: str, at: datetime) -> None:
        await self.session.execute(
            cost_accounts.update().where(cost_accounts.c.account_id == account_id).values(evaluated_at=at)
        )

    async def accounts_to_refresh(self, today: date, rates_changed_at: datetime | None, limit: int) -> list[str]:
        """Accounts counted before `today` (a day passed: backorders and trailing windows moved) or evaluated
        before the rates last changed, oldest first."""
        stale = [cost_accounts.c.counted_as_of < today, cost_accounts.c.evaluated_at.is_(None)]
        if rates_changed_at is not None:
            stale.append(cost_accounts.c.evaluated_at < rates_changed_at)
        query = (
            select(cost_accounts.c.account_id)
            .where(or_(*stale))
            .order_by(cost_accounts.c.counted_as_of, cost_accounts.c.account_id)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())
