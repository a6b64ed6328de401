"""SQL of what the desk records and the service keeps a copy of: returns, complaints, accounts, shipped
volumes and promotions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    LargeBinary,
    Row,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.returns_service import tables
from services.returns_service.domain import (
    QUALITY_REASONS,
    Account,
    PromotionRef,
    PutAccount,
    RecordReturn,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Segment,
)
from shared.idempotency import (
    DriverInsertOnce,
    InsertOnce,
    create_once_by_driver,
    insert_once,
    stored_once_by_driver,
)
from shared.outbox import EncodedEvent

returns = tables.returns
complaints = tables.complaints
accounts = tables.accounts
daily_volumes = tables.daily_volumes
promotions = tables.promotions


@dataclass(frozen=True)
class Recorded:
    """A stored return or complaint: the request body it was recorded with. A complaint created by this call also
    carries its account as registered then (`account`, None when it is not registered)."""

    body: Mapping[str, Any]
    created_at: datetime
    account: Account | None = None


@dataclass(frozen=True)
class AccountRecord:
    account_id: str
    name: str
    segment: str
    owner_email: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True)
class AccountWrite:
    """A put's outcome: the account as stored, whether this call created it and whether it changed anything
    (an identical put changes nothing and keeps the version)."""

    account: AccountRecord
    created: bool
    changed: bool


@dataclass(frozen=True)
class DayVolume:
    """Totals across warehouses of one SKU on one day, as last reported."""

    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int


@dataclass(frozen=True)
class SurgeInputs:
    """What the return-surge rule reads for one SKU and window: its quality returns, its shipped units, the
    accounts of those returns and the SKU's promotions."""

    returns: list[ReturnRecord]
    shipped_units: float
    accounts: dict[str, Account]
    promotions: list[PromotionRef]


_QUALITY_REASONS = ", ".join(f"'{reason.value}'" for reason in sorted(QUALITY_REASONS, key=lambda q: q.value))
_QUALITY_FIELDS = "r.return_id, r.quantity, r.account_id, r.reason, r.condition, r.returned_on"


def quality_returns_in(source: str) -> str:
    """The query of the returns in `source` (a table or a CTE of the returns table's columns) of `:sku` with a
    quality reason dated in [`:start`, `:end`], as the surge rule reads them (`SURGE_COLUMNS`)."""
    return f"""SELECT {_QUALITY_FIELDS} FROM {source} r
            WHERE r.sku = :sku AND r.returned_on BETWEEN :start AND :end AND r.reason IN ({_QUALITY_REASONS})"""


# The surge rule's inputs for `:sku` in [`:start`, `:end`], each a JSON array (or a number) `surge_inputs_of` reads,
# with its type: SQL expressions over a CTE `quality` of its quality returns (`quality_returns_in`).
SURGE_COLUMNS: dict[str, tuple[str, Any]] = {
    "surge_returns": (f"(SELECT coalesce(json_agg(json_build_array({_QUALITY_FIELDS})), '[]') FROM quality r)", JSON),
    "surge_shipped": (
        f"(SELECT coalesce(sum(v.units_shipped), 0) FROM {daily_volumes.fullname} v"
        " WHERE v.sku = :sku AND v.day BETWEEN :start AND :end)",
        Float,
    ),
    "surge_accounts": (
        "(SELECT coalesce(json_agg(json_build_array(a.account_id, a.name, a.segment, a.owner_email)), '[]')"
        f" FROM {accounts.fullname} a WHERE a.account_id IN (SELECT q.account_id FROM quality q))",
        JSON,
    ),
    "surge_promotions": (
        "(SELECT coalesce(json_agg(json_build_array(p.promotion_id, p.skus, p.starts_on, p.ends_on, p.name,"
        f" p.account_segments, p.status)), '[]') FROM {promotions.fullname} p WHERE :sku = ANY(p.skus))",
        JSON,
    ),
}
# The surge rule's inputs in one round trip.
_SURGE_INPUTS = (
    text(
        f"WITH quality AS ({quality_returns_in(returns.fullname)}) SELECT "
        + ", ".join(f"{expression} AS {name}" for name, (expression, _) in SURGE_COLUMNS.items())
    )
    .bindparams(bindparam("start", type_=Date), bindparam("end", type_=Date))
    .columns(**{name: type_ for name, (_, type_) in SURGE_COLUMNS.items()})
)


def surge_inputs_of(
    sku: str,
    returns_json: Sequence[Any],
    shipped: float | None,
    accounts_json: Sequence[Any],
    promotions_json: Sequence[Any],
) -> SurgeInputs:
    """The surge rule's inputs from the JSON arrays `SURGE_COLUMNS` reads."""
    records = [
        ReturnRecord(
            return_id,
            sku,
            quantity,
            account_id,
            ReturnReason(reason),
            ReturnCondition(condition),
            date.fromisoformat(returned_on),
        )
        for return_id, quantity, account_id, reason, condition, returned_on in returns_json
    ]
    found = {a[0]: Account(a[0], a[1], Segment(a[2]), a[3]) for a in accounts_json}
    promotion_refs = [
        PromotionRef(
            promotion_id=p[0],
            skus=frozenset(p[1]),
            starts_on=date.fromisoformat(p[2]),
            ends_on=date.fromisoformat(p[3]),
            name=p[4],
            account_segments=frozenset(p[5]),
            cancelled=p[6] == "cancelled",
        )
        for p in promotions_json
    ]
    return SurgeInputs(records, float(shipped or 0), found, promotion_refs)


def insert_marking(
    table: Table,
    key: str,
    columns: Sequence[str],
    *,
    with_account: bool = False,
    announced: bool = False,
    then: str = "",
    joined: str = "",
    joined_columns: Mapping[str, tuple[str, Any]] | None = None,
    then_params: Sequence[BindParameter[Any]] = (),
) -> InsertOnce:
    """The create-once insert (`insert_once`) of a return or complaint that, when it creates the row, also marks
    its account for a recount (`cost_recounts`, see `CostingStore.claim_recounts`) in the same statement: the mark
    commits with the record or not at all. A mark already there gets a new `due_seq` and loses its claim, so a
    recount running meanwhile leaves it for the next one. `with_account`: the created row also carries its
    account's name, segment and owner (null when the account is not registered). `announced`: the created row's
    event (already encoded: `event_id`, `event_type`, `event_topic`, `event_key`, `event_payload`) is written to
    the outbox by the same statement, only when it creates the row. `then`, `joined`, `joined_columns` and
    `then_params` add to the statement as `insert_once` takes them."""
    recounts = tables.cost_recounts.fullname
    sequence = f"{tables.cost_recount_seq.schema}.{tables.cost_recount_seq.name}"
    marked = f"""
        , marked AS (
            INSERT INTO {recounts} AS m (account_id, due_seq, due_at)
            SELECT account_id, nextval('{sequence}'), now() FROM created
            ON CONFLICT (account_id) DO UPDATE SET due_seq = excluded.due_seq, claimed_until = NULL
        )"""
    params: tuple[BindParameter[Any], ...] = tuple(then_params)
    if announced:
        marked += f"""
        , announced AS (
            INSERT INTO {tables.outbox.fullname} (event_id, event_type, topic, key, payload)
            SELECT :event_id, :event_type, :event_topic, :event_key, :event_payload FROM created
        )"""
        params += (
            *(bindparam(name, type_=String) for name in ("event_id", "event_type", "event_topic", "event_key")),
            bindparam("event_payload", type_=LargeBinary),
        )
    columns_joined = dict(joined_columns or {})
    if with_account:
        joined += f" LEFT JOIN {accounts.fullname} a ON a.account_id = created.account_id"
        columns_joined |= {
            "account_name": ("a.name", String),
            "account_segment": ("a.segment", String),
            "account_owner_email": ("a.owner_email", String),
        }
    return insert_once(
        table, key, columns, then=marked + then, joined=joined, joined_columns=columns_joined, then_params=params
    )


RETURN_COLUMNS = ("return_id", "sku", "account_id", "quantity", "reason", "condition", "returned_on")
COMPLAINT_COLUMNS = ("complaint_id", "account_id", "sku", "severity", "received_on")
# A return nothing else is evaluated for, with its event, in one statement the driver runs (`ReturnsByDriver`).
_INSERT_RETURN_ANNOUNCED = DriverInsertOnce.of(insert_marking(returns, "return_id", RETURN_COLUMNS, announced=True))


def _recorded(row: Row[Any]) -> Recorded:
    return Recorded(body=row.body, created_at=row.created_at)


def _account(row: Row[Any]) -> AccountRecord:
    return AccountRecord(
        account_id=row.account_id,
        name=row.name,
        segment=row.segment,
        owner_email=row.owner_email,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def return_values(command: RecordReturn) -> dict[str, Any]:
    return {
        "return_id": command.return_id,
        "sku": command.sku,
        "account_id": command.account_id,
        "quantity": command.quantity,
        "reason": command.reason.value,
        "condition": command.condition.value,
        "returned_on": command.returned_on,
    }


def announced_values(command: RecordReturn, event: EncodedEvent) -> dict[str, Any]:
    """A return's values with those of the event that announces it, as the driver's insert binds them."""
    return {**return_values(command), **event_values(event)}


def event_values(event: EncodedEvent) -> dict[str, Any]:
    """The outbox row of the event that announces a created row, as `insert_marking(..., announced=True)` binds it."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_topic": event.topic,
        "event_key": event.key,
        "event_payload": event.payload,
    }


async def stored_return(connection: Any, command: RecordReturn) -> Recorded | None:
    """The return stored under the command's id from its very body, read on the driver without writing anything
    (None: none is); another body under its id is a 409."""
    row = await stored_once_by_driver(
        connection, _INSERT_RETURN_ANNOUNCED, ident=command.return_id, body=command.body, what="return"
    )
    return None if row is None else Recorded(body=row["body"], created_at=row["created_at"])


class ReturnsByDriver:
    """A return that is a transaction of its own, on a pooled connection's driver (`shared.db.driver_connection`):
    one statement stores it, marks its account for a recount and writes its event to the outbox, the last two only
    when it creates the row."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def create_return_announced(self, command: RecordReturn, event: EncodedEvent) -> tuple[Recorded, bool]:
        """The stored return and whether it was created now (then with its event); the same id with another body
        is a 409."""
        row, created = await create_once_by_driver(
            self.connection,
            _INSERT_RETURN_ANNOUNCED,
            values=announced_values(command, event),
            body=command.body,
            what="return",
        )
        return Recorded(body=row["body"], created_at=row["created_at"]), created


class RecordsStore:
    session: AsyncSession

    # ------------------------------------------------------------ returns

    async def surge_inputs(self, sku: str, start: date, end: date) -> SurgeInputs:
        """The SKU's returns with a quality reason dated in [start, end], `shipped_units`, `accounts_by_id` of
        those returns' accounts and `promotions_of` the SKU, in one round trip."""
        row = (await self.session.execute(_SURGE_INPUTS, {"sku": sku, "start": start, "end": end})).one()
        return surge_inputs_of(sku, row.surge_returns, row.surge_shipped, row.surge_accounts, row.surge_promotions)

    async def get_return(self, return_id: str) -> Recorded | None:
        row = (await self.session.execute(select(returns).where(returns.c.return_id == return_id))).first()
        return _recorded(row) if row else None

    async def list_returns(
        self, *, sku: str | None, account_id: str | None, since: date | None, limit: int, after: str | None
    ) -> list[Recorded]:
        query = select(returns).order_by(returns.c.return_id).limit(limit)
        if sku is not None:
            query = query.where(returns.c.sku == sku)
        if account_id is not None:
            query = query.where(returns.c.account_id == account_id)
        if since is not None:
            query = query.where(returns.c.returned_on >= since)
        if after is not None:
            query = query.where(returns.c.return_id > after)
        return [_recorded(row) for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ complaints

    async def get_complaint(self, complaint_id: str) -> Recorded | None:
        query = select(complaints).where(complaints.c.complaint_id == complaint_id)
        row = (await self.session.execute(query)).first()
        return _recorded(row) if row else None

    async def list_complaints(
        self, *, account_id: str | None, sku: str | None, limit: int, after: str | None
    ) -> list[Recorded]:
        query = select(complaints).order_by(complaints.c.complaint_id).limit(limit)
        if account_id is not None:
            query = query.where(complaints.c.account_id == account_id)
        if sku is not None:
            query = query.where(complaints.c.sku == sku)
        if after is not None:
            query = query.where(complaints.c.complaint_id > after)
        return [_recorded(row) for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ accounts

    async def put_account(self, command: PutAccount) -> AccountWrite:
        """Create the account at version 1, or replace it at the next version when any field differs; an
        identical put leaves the row (and its version) as it is."""
        values = {"name": command.name, "segment": command.segment.value, "owner_email": command.owner_email}
        statement = insert(accounts).values(account_id=command.account_id, **values)
        stored = (accounts.c.name, accounts.c.segment, accounts.c.owner_email)
        sent = (statement.excluded.name, statement.excluded.segment, statement.excluded.owner_email)
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[accounts.c.account_id],
                    set_={**values, "version": accounts.c.version + 1, "updated_at": func.now()},
                    where=tuple_(*stored).is_distinct_from(tuple_(*sent)),
                ).returning(*accounts.c, literal_column("(xmax = 0)").label("inserted"))
            )
        ).first()
        if row is not None:
            return AccountWrite(_account(row), created=bool(row.inserted), changed=True)
        same = (await self.session.execute(select(accounts).where(accounts.c.account_id == command.account_id))).one()
        return AccountWrite(_account(same), created=False, changed=False)

    async def accounts_by_id(self, account_ids: Iterable[str]) -> dict[str, Account]:
        wanted = sorted(set(account_ids))
        if not wanted:
            return {}
        rows = (await self.session.execute(select(accounts).where(accounts.c.account_id.in_(wanted)))).all()
        return {r.account_id: Account(r.account_id, r.name, Segment(r.segment), r.owner_email) for r in rows}

    async def get_account(self, account_id: str) -> AccountRecord | None:
        row = (await self.session.execute(select(accounts).where(accounts.c.account_id == account_id))).first()
        return _account(row) if row else None

    async def list_accounts(self, *, segment: Segment | None, limit: int, after: str | None) -> list[AccountRecord]:
        query = select(accounts).order_by(accounts.c.account_id).limit(limit)
        if segment is not None:
            query = query.where(accounts.c.segment == segment.value)
        if after is not None:
            query = query.where(accounts.c.account_id > after)
        return [_account(row) for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ shipped volumes

    async def save_volumes(self, sku: str, days: Sequence[DayVolume]) -> None:
        """The reported daily totals replace earlier figures of the same days."""
        if not days:
            return
        rows = [
            {
                "sku": sku,
                "day": d.day,
                "units_ordered": d.units_ordered,
                "units_shipped": d.units_shipped,
                "units_backordered": d.units_backordered,
            }
            for d in days
        ]
        statement = insert(daily_volumes).values(rows)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[daily_volumes.c.sku, daily_volumes.c.day],
                set_={
                    "units_ordered": statement.excluded.units_ordered,
                    "units_shipped": statement.excluded.units_shipped,
                    "units_backordered": statement.excluded.units_backordered,
                    "updated_at": func.now(),
                },
            )
        )

    async def shipped_units(self, sku: str, start: date, end: date) -> float:
        total = await self.session.scalar(
            select(func.coalesce(func.sum(daily_volumes.c.units_shipped), 0)).where(
                daily_volumes.c.sku == sku, daily_volumes.c.day.between(start, end)
            )
        )
        return float(total or 0)

    # ------------------------------------------------------------ the copy of promotions

    async def save_promotion(self, promotion: PromotionRef, *, status: str, version: int) -> None:
        """Keep the copy current; an older version never overwrites a newer one."""
        values: dict[str, Any] = {
            "name": promotion.name,
            "skus": sorted(promotion.skus),
            "starts_on": promotion.starts_on,
            "ends_on": promotion.ends_on,
            "account_segments": sorted(promotion.account_segments),
            "status": status,
            "version": version,
        }
        statement = insert(promotions).values(promotion_id=promotion.promotion_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[promotions.c.promotion_id],
                set_={**values, "updated_at": func.now()},
                where=promotions.c.version <= statement.excluded.version,
            )
        )

    async def promotions_of(self, sku: str | None) -> list[PromotionRef]:
        """The copy of the promotions of `sku` (of every SKU when None)."""
        query = select(promotions)
        if sku is not None:
            query = query.where(any_(promotions.c.skus) == sku)
        return [
            PromotionRef(
                promotion_id=p.promotion_id,
                skus=frozenset(p.skus),
                starts_on=p.starts_on,
                ends_on=p.ends_on,
                name=p.name,
                account_segments=frozenset(p.account_segments),
                cancelled=p.status == "cancelled",
            )
            for p in (await self.session.execute(query)).all()
        ]
