"""SQL of cost-to-serve: the copy of sales orders (newest version wins) and shipments, the rate-free ledger per
account and month, each account's counting day, and the activity rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Date,
    DateTime,
    Float,
    Row,
    String,
    TextClause,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
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
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Segment,
    Severity,
)
from services.returns_service.store.alerts import AlertRecord
from shared.outbox import advisory_lock_key

cost_orders = tables.cost_orders
cost_shipments = tables.cost_shipments
cost_ledger = tables.cost_ledger
cost_accounts = tables.cost_accounts
cost_rates = tables.cost_rates
cost_recounts = tables.cost_recounts

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


@dataclass(frozen=True)
class EvaluationInputs:
    """What evaluating an account's cost alerts reads: the rates, the account's ledger months in the window,
    the account itself and, when the account has months in the mapping window, every account's revenue in it."""

    rates: StoredRates
    months: list[AccountMonth]
    account: Account | None
    revenue_all: float | None


# The account's facts in one round trip: its orders, their drops, its returns and complaints, each as a JSON array.
ACCOUNT_FACTS = text(
    f"""
    SELECT
      (SELECT coalesce(json_agg(json_build_array(o.order_id, o.account_id, o.version, o.ordered_on, o.rush,
                                                 o.status, o.lines)), '[]')
       FROM {cost_orders.fullname} o WHERE o.account_id = :account_id) AS orders,
      (SELECT coalesce(json_agg(json_build_array(s.shipment_id, s.order_id, s.shipped_on, s.lines)), '[]')
       FROM {cost_shipments.fullname} s JOIN {cost_orders.fullname} o ON o.order_id = s.order_id
       WHERE o.account_id = :account_id) AS shipments,
      (SELECT coalesce(json_agg(json_build_array(r.return_id, r.sku, r.quantity, r.reason, r.condition,
                                                 r.returned_on, r.body->>'resolution', r.body->>'order_id')), '[]')
       FROM {tables.returns.fullname} r WHERE r.account_id = :account_id) AS returns,
      (SELECT coalesce(json_agg(json_build_array(c.complaint_id, c.account_id, c.sku, c.body->>'category',
                                                 c.severity, coalesce(c.body->>'description', ''), c.received_on)),
                       '[]')
       FROM {tables.complaints.fullname} c WHERE c.account_id = :account_id) AS complaints
    """
).columns(orders=JSONB, shipments=JSONB, returns=JSONB, complaints=JSONB)

_LEDGER_COLUMNS = [c.name for c in cost_ledger.c if c.name != "account_id"]
_LEDGER_TYPES = ", ".join(f"{name} {'date' if name == 'month' else 'float8'}" for name in _LEDGER_COLUMNS)

# The account's ledger becomes exactly the months given, in one statement: months no longer counted go, the
# others are written over (disjoint keys, so the two never meet), and the counting day is kept.
REPLACE_LEDGER = text(
    f"""
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset(:months) AS m({_LEDGER_TYPES})
    ), gone AS (
        DELETE FROM {cost_ledger.fullname} l
        WHERE l.account_id = :account_id AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.month = l.month)
    ), written AS (
        INSERT INTO {cost_ledger.fullname} (account_id, {", ".join(_LEDGER_COLUMNS)})
        SELECT :account_id, {", ".join(f"i.{name}" for name in _LEDGER_COLUMNS)} FROM incoming i
        ON CONFLICT (account_id, month) DO UPDATE SET
        {", ".join(f"{name} = excluded.{name}" for name in _LEDGER_COLUMNS if name != "month")}
    )
    INSERT INTO {cost_accounts.fullname} (account_id, counted_as_of) VALUES (:account_id, :as_of)
    ON CONFLICT (account_id) DO UPDATE SET counted_as_of = excluded.counted_as_of
    """
).bindparams(bindparam("months", type_=JSONB), bindparam("as_of", type_=Date))

# Evaluation inputs in one round trip: one row per ledger month of the account in [first, last] (one row with no
# month when it has none), each carrying the rates, the account and the mapping window's revenue of every account.
EVALUATION_INPUTS = text(
    f"""
    SELECT r.currency AS rates_currency, r.rates AS rates_rates, r.updated_at AS rates_updated_at,
           r.updated_by AS rates_updated_by,
           a.name AS account_name, a.segment AS account_segment, a.owner_email AS account_owner_email,
           CASE WHEN EXISTS (
               SELECT 1 FROM {cost_ledger.fullname} x
               WHERE x.account_id = :account_id AND x.month BETWEEN :m_first AND :m_last
           ) THEN (
               SELECT coalesce(sum(y.revenue), 0.0) FROM {cost_ledger.fullname} y
               WHERE y.month BETWEEN :m_first AND :m_last
           ) END AS revenue_all,
           l.*
    FROM (SELECT 1) one
    LEFT JOIN {cost_rates.fullname} r ON r.id = {RATES_ROW}
    LEFT JOIN {tables.accounts.fullname} a ON a.account_id = :account_id
    LEFT JOIN {cost_ledger.fullname} l ON l.account_id = :account_id AND l.month BETWEEN :first AND :last
    ORDER BY l.month
    """
).columns(
    rates_currency=String,
    rates_rates=JSONB,
    rates_updated_at=DateTime(timezone=True),
    rates_updated_by=String,
    account_name=String,
    account_segment=String,
    account_owner_email=String,
    revenue_all=Float,
    **{column.name: column.type for column in cost_ledger.c},
)


alerts = tables.alerts

# Marks the account evaluated and locks its open cost alerts to the commit, in one round trip. Without the
# per-subject advisory lock `open_alert_for` takes: every writer of an account's cost alerts holds the account's
# cost lock (`lock_account_costs`), taken in an earlier statement, so no other transaction raises one meanwhile.
BEGIN_EVALUATION = (
    text(
        f"""
    WITH marked AS (
        UPDATE {cost_accounts.fullname} SET evaluated_at = :at WHERE account_id = :account_id
    )
    SELECT {", ".join(f"a.{column.name}" for column in alerts.c)} FROM {alerts.fullname} a
    WHERE a.subject = :account_id AND a.type = ANY(:types) AND a.status = 'open'
    FOR UPDATE OF a
    """
    )
    .bindparams(bindparam("at", type_=DateTime(timezone=True)), bindparam("types", type_=ARRAY(String)))
    .columns(*alerts.c)
)


# Claims up to :limit marked accounts not claimed by a live lease, oldest mark first, for :lease_s seconds.
CLAIM_RECOUNTS = text(
    f"""
    UPDATE {cost_recounts.fullname} c SET claimed_until = now() + :lease_s * interval '1 second'
    FROM (
        SELECT account_id FROM {cost_recounts.fullname}
        WHERE claimed_until IS NULL OR claimed_until < now()
        ORDER BY due_at, account_id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) picked
    WHERE c.account_id = picked.account_id
    RETURNING c.account_id, c.due_at
    """
).bindparams(bindparam("lease_s", type_=Float))


def _begin_recount(*, wait: bool) -> TextClause:
    """The account's cost lock and its mark's `due_seq` (null: no mark), in one round trip. With `wait`, the lock
    is waited for; without, it is taken only if it is free now (`locked` false: another transaction holds it,
    nothing waited for)."""
    lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    return text(
        f"""
    SELECT {lock}(:lock_key) AS locked,
           (SELECT due_seq FROM {cost_recounts.fullname} WHERE account_id = :account_id) AS due_seq
    """
    ).bindparams(bindparam("lock_key", type_=BigInteger))


BEGIN_RECOUNT = _begin_recount(wait=True)
# For an account recounted after others in one transaction: the cost lock only if it is free now.
TRY_BEGIN_RECOUNT = _begin_recount(wait=False)

# The marks of several accounts (one or more): each goes only if no new one came in since its recount read it (a new
# mark has a new `due_seq`); the accounts whose mark went are returned.
FINISH_RECOUNTS = text(
    f"""
    DELETE FROM {cost_recounts.fullname} c
    USING unnest(CAST(:account_ids AS text[]), CAST(:due_seqs AS bigint[])) AS f(account_id, due_seq)
    WHERE c.account_id = f.account_id AND c.due_seq = f.due_seq
    RETURNING c.account_id
    """
)


def cost_lock_key(account_id: str) -> int:
    """The advisory lock that serialises changes to one account's cost facts, ledger and cost alerts."""
    return advisory_lock_key(f"returns-cost:{account_id}")


def _as_date(value: str) -> date:
    return date.fromisoformat(value)


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
    return month_of(row._mapping)


def month_of(row: Mapping[Any, Any]) -> AccountMonth:
    """A ledger month from its row (by column name)."""
    drivers = Drivers(**{name: row[column] for name, column in DRIVER_COLUMNS.items()})
    return AccountMonth(
        account_id=row["account_id"],
        month=row["month"],
        drivers=drivers,
        revenue=row["revenue"],
        cost_of_goods=row["cost_of_goods"],
        returned_units=row["returned_units"],
        written_off_units=row["written_off_units"],
        written_off_cost=row["written_off_cost"],
        unpriced_units=row["unpriced_units"],
    )


def ledger_facts_of(account_id: str, row: Mapping[Any, Any]) -> LedgerFacts:
    """The account's facts from the JSON arrays `ACCOUNT_FACTS` reads (a row by column name)."""
    orders = [
        OrderFact(
            order_id,
            account,
            version,
            _as_date(ordered_on),
            tuple(
                OrderLineFact(
                    line["line_id"],
                    line["sku"],
                    line["quantity"],
                    _as_date(line["promised_on"]),
                    line.get("unit_price"),
                    line.get("unit_cost"),
                )
                for line in lines
            ),
            rush,
            status == "cancelled",
        )
        for order_id, account, version, ordered_on, rush, status, lines in row["orders"]
    ]
    shipments = [
        ShipmentFact(
            shipment_id,
            order_id,
            _as_date(shipped_on),
            tuple(ShipmentLineFact(x["line_id"], x["quantity"]) for x in lines),
        )
        for shipment_id, order_id, shipped_on, lines in row["shipments"]
    ]
    records = [
        ReturnRecord(
            return_id,
            sku,
            quantity,
            account,
            ReturnReason(reason),
            ReturnCondition(condition),
            _as_date(returned_on),
            Resolution(resolution) if resolution else None,
            order_id,
        )
        for return_id, sku, quantity, account, reason, condition, returned_on, resolution, order_id in (
            (r[0], r[1], r[2], account_id, r[3], r[4], r[5], r[6], r[7]) for r in row["returns"]
        )
    ]
    found = [
        Complaint(
            complaint_id,
            account,
            sku,
            ComplaintCategory(category),
            Severity(severity),
            description,
            _as_date(received_on),
        )
        for complaint_id, account, sku, category, severity, description, received_on in row["complaints"]
    ]
    return LedgerFacts(orders, shipments, records, found)


def ledger_rows(months: Sequence[AccountMonth]) -> list[dict[str, Any]]:
    """The months as `REPLACE_LEDGER` takes them (`:months`, a JSON array of objects)."""
    return [
        {
            "month": m.month.isoformat(),
            **{column: getattr(m.drivers, name) for name, column in DRIVER_COLUMNS.items()},
            **{f.name: getattr(m, f.name) for f in fields(m) if f.name not in {"account_id", "month", "drivers"}},
        }
        for m in months
    ]


def evaluation_inputs_of(account_id: str, rows: Sequence[Mapping[Any, Any]]) -> EvaluationInputs:
    """The evaluation inputs from the rows `EVALUATION_INPUTS` reads (each by column name)."""
    head = rows[0]
    rates = (
        StoredRates(
            CostRates(currency=head["rates_currency"], **head["rates_rates"]),
            head["rates_updated_at"],
            head["rates_updated_by"],
        )
        if head["rates_currency"] is not None
        else StoredRates(CostRates(), None, None)
    )
    account = (
        Account(account_id, head["account_name"], Segment(head["account_segment"]), head["account_owner_email"])
        if head["account_name"] is not None
        else None
    )
    months = [month_of(row) for row in rows if row["month"] is not None]
    revenue = float(head["revenue_all"]) if head["revenue_all"] is not None else None
    return EvaluationInputs(rates, months, account, revenue)


class CostingStore:
    session: AsyncSession
    # Accounts whose cost lock this store's transaction holds.
    cost_locks: set[str]

    async def lock_account_costs(self, account_id: str) -> None:
        """Serialise ledger rebuilds of one account to the commit: each recount then reads every fact the
        previous one committed (orders of one account arrive on several partitions, returns over HTTP)."""
        if account_id in self.cost_locks:
            return  # held since earlier in this transaction
        await self.session.execute(select(func.pg_advisory_xact_lock(cost_lock_key(account_id))))
        self.cost_locks.add(account_id)

    # ------------------------------------------------------------ recounts of marked accounts

    async def claim_recounts(self, *, limit: int, lease_s: float) -> list[str]:
        """Lease up to `limit` accounts a return or complaint marked for a recount (none another replica holds
        a live lease on), oldest mark first; the caller commits the claim before recounting."""
        rows = (await self.session.execute(CLAIM_RECOUNTS, {"limit": limit, "lease_s": lease_s})).all()
        return [row.account_id for row in sorted(rows, key=lambda r: (r.due_at, r.account_id))]

    async def begin_recount(self, account_id: str) -> int | None:
        """Take the account's cost lock (to the commit) and return its mark's `due_seq`, None when it has no
        mark. The mark is read in the statement that takes the lock, so as it was before any wait for the lock: a
        recount that waited for another one may see a mark that one has since removed, and counts again."""
        row = (
            await self.session.execute(BEGIN_RECOUNT, {"lock_key": cost_lock_key(account_id), "account_id": account_id})
        ).one()
        self.cost_locks.add(account_id)
        return None if row.due_seq is None else int(row.due_seq)

    async def finish_recount(self, account_id: str, due_seq: int) -> bool:
        """Remove the account's mark if it is still the one read by `begin_recount`; a mark that came in since
        (its record may not have been counted) stays for the next recount. True when removed."""
        params = {"account_ids": [account_id], "due_seqs": [due_seq]}
        return bool((await self.session.execute(FINISH_RECOUNTS, params)).all())

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
        complaints (one round trip)."""
        row = (await self.session.execute(ACCOUNT_FACTS, {"account_id": account_id})).one()
        return ledger_facts_of(account_id, row._mapping)

    async def replace_ledger(self, account_id: str, months: Sequence[AccountMonth], as_of: date) -> None:
        """The account's ledger becomes exactly `months`, counted on `as_of` (one round trip)."""
        rows = ledger_rows(months)
        await self.session.execute(REPLACE_LEDGER, {"account_id": account_id, "months": rows, "as_of": as_of})

    async def evaluation_inputs(
        self, account_id: str, *, first: date, last: date, mapping_first: date, mapping_last: date
    ) -> EvaluationInputs:
        """The rates, the account's ledger months in [first, last], the account, and every account's revenue in
        [mapping_first, mapping_last] when the account has a month in it (None otherwise), in one round trip."""
        rows = (
            await self.session.execute(
                EVALUATION_INPUTS,
                {
                    "account_id": account_id,
                    "first": first,
                    "last": last,
                    "m_first": mapping_first,
                    "m_last": mapping_last,
                },
            )
        ).all()
        return evaluation_inputs_of(account_id, [row._mapping for row in rows])

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

    async def begin_evaluation(
        self, account_id: str, alert_types: Sequence[AlertType], at: datetime
    ) -> dict[str, AlertRecord]:
        """Mark the account evaluated at `at` and return its open alerts of `alert_types` by type, locked to the
        commit. The caller holds the account's cost lock (see `BEGIN_EVALUATION`)."""
        assert account_id in self.cost_locks, "evaluate an account's cost alerts under its cost lock"
        result = await self.session.execute(
            BEGIN_EVALUATION, {"account_id": account_id, "types": [t.value for t in alert_types], "at": at}
        )
        return {row.type: AlertRecord(**row._mapping) for row in result.all()}

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
