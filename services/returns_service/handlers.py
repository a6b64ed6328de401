"""Returns commands and incoming events: load, apply the alert rules, save, record events."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Row, any_, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert

from services.returns_service import alerts, tables
from services.returns_service.domain import (
    QUALITY_REASONS,
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    PromotionRef,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Segment,
    Severity,
    evaluate_capacity_conflict,
    evaluate_complaint,
    evaluate_return_surge,
)
from services.returns_service.schemas import (
    AccountPut,
    AccountRead,
    ComplaintCreate,
    ComplaintRead,
    ReturnCreate,
    ReturnRead,
)
from services.returns_service.settings import ReturnsSettings
from shared.db import UnitOfWork
from shared.events import (
    CapacityConflictData,
    ComplaintData,
    EventType,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
)
from shared.idempotency import create_once

# ---------------------------------------------------------------- returns


async def record_return(uow: UnitOfWork, command: ReturnCreate, settings: ReturnsSettings) -> tuple[ReturnRead, bool]:
    """Store a return, announce it and re-evaluate the SKU's surge; an identical retry changes nothing."""
    T = tables.returns
    body = command.model_dump(mode="json")
    inserted, created = await create_once(
        uow.session,
        T,
        key="return_id",
        values={
            "return_id": command.return_id,
            "sku": command.sku,
            "account_id": command.account_id,
            "quantity": command.quantity,
            "reason": command.reason.value,
            "condition": command.condition.value,
            "returned_on": command.returned_on,
        },
        body=body,
        what="return",
    )
    if not created:
        return ReturnRead.model_validate({**inserted.body, "created_at": inserted.created_at}), False
    uow.publish(
        EventType.RETURN_RECORDED,
        key=command.sku,
        subject=command.return_id,
        data=ReturnData.model_validate(body),
    )
    if command.reason in QUALITY_REASONS:
        await evaluate_surge(uow, command.sku, settings)
    return ReturnRead.model_validate({**inserted.body, "created_at": inserted.created_at}), True


async def evaluate_surge(uow: UnitOfWork, sku: str, settings: ReturnsSettings) -> alerts.AlertRead | None:
    """Re-run the return-surge rule for `sku` on today's window and raise or update its alert."""
    rule = settings.surge_rule()
    today = settings.today()
    start, end = rule.window(today)
    R = tables.returns
    rows = (
        await uow.session.execute(
            select(R).where(
                R.c.sku == sku,
                R.c.returned_on.between(start, end),
                R.c.reason.in_([r.value for r in QUALITY_REASONS]),
            )
        )
    ).all()
    if len(rows) < rule.min_returns:
        return None
    records = [
        ReturnRecord(
            r.return_id,
            r.sku,
            r.quantity,
            r.account_id,
            ReturnReason(r.reason),
            ReturnCondition(r.condition),
            r.returned_on,
        )
        for r in rows
    ]
    V = tables.daily_volumes
    shipped = await uow.session.scalar(
        select(func.coalesce(func.sum(V.c.units_shipped), 0)).where(V.c.sku == sku, V.c.day.between(start, end))
    )
    accounts = await load_accounts(uow, {r.account_id for r in records})
    finding = evaluate_return_surge(
        sku, records, float(shipped or 0), accounts, await promotions_for(uow, sku), today, rule
    )
    thresholds = {
        "window_days": rule.window_days,
        "rate_threshold": rule.rate_threshold,
        "min_returns": rule.min_returns,
    }
    return await alerts.apply_finding(uow, AlertType.RETURN_SURGE, sku, finding, extra={"thresholds": thresholds})


async def load_accounts(uow: UnitOfWork, account_ids: set[str]) -> dict[str, Account]:
    if not account_ids:
        return {}
    A = tables.accounts
    rows = (await uow.session.execute(select(A).where(A.c.account_id.in_(sorted(account_ids))))).all()
    return {r.account_id: Account(r.account_id, r.name, Segment(r.segment), r.owner_email) for r in rows}


async def promotions_for(uow: UnitOfWork, sku: str | None) -> list[PromotionRef]:
    P = tables.promotions
    query = select(P)
    if sku is not None:
        query = query.where(any_(P.c.skus) == sku)
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
        for p in (await uow.session.execute(query)).all()
    ]


# ---------------------------------------------------------------- complaints


async def record_complaint(uow: UnitOfWork, command: ComplaintCreate) -> tuple[ComplaintRead, bool]:
    T = tables.complaints
    body = command.model_dump(mode="json")
    inserted, created = await create_once(
        uow.session,
        T,
        key="complaint_id",
        values={
            "complaint_id": command.complaint_id,
            "account_id": command.account_id,
            "sku": command.sku,
            "severity": command.severity.value,
            "received_on": command.received_on,
        },
        body=body,
        what="complaint",
    )
    if not created:
        return ComplaintRead.model_validate({**inserted.body, "created_at": inserted.created_at}), False
    uow.publish(
        EventType.COMPLAINT_RECORDED,
        key=command.sku or command.complaint_id,
        subject=command.complaint_id,
        data=ComplaintData.model_validate(body),
    )
    account = (await load_accounts(uow, {command.account_id})).get(command.account_id)
    complaint = Complaint(
        command.complaint_id,
        command.account_id,
        command.sku,
        ComplaintCategory(command.category),
        Severity(command.severity),
        command.description,
        command.received_on,
    )
    finding = evaluate_complaint(complaint, account)
    if finding is not None:
        await alerts.apply_finding(
            uow, AlertType.CRITICAL_COMPLAINT, command.complaint_id, finding, extra={}, new_subject=True
        )
    return ComplaintRead.model_validate({**inserted.body, "created_at": inserted.created_at}), True


# ---------------------------------------------------------------- accounts


def _account_read(row: Row[Any]) -> AccountRead:
    return AccountRead.model_validate(row._mapping)


async def put_account(uow: UnitOfWork, account_id: str, command: AccountPut) -> tuple[AccountRead, bool]:
    """Create or replace an account; returns (account, created)."""
    A = tables.accounts
    values = command.model_dump(mode="json")
    row = (
        await uow.session.execute(
            insert(A)
            .values(account_id=account_id, **values)
            .on_conflict_do_update(index_elements=[A.c.account_id], set_={**values, "updated_at": func.now()})
            .returning(*A.c, literal_column("(xmax = 0)").label("inserted"))
        )
    ).one()
    return _account_read(row), bool(row.inserted)


async def get_account(uow: UnitOfWork, account_id: str) -> AccountRead | None:
    A = tables.accounts
    row = (await uow.session.execute(select(A).where(A.c.account_id == account_id))).first()
    return _account_read(row) if row else None


# ---------------------------------------------------------------- incoming events


async def record_order_volumes(uow: UnitOfWork, data: OrderVolumeReportedData, settings: ReturnsSettings) -> None:
    """Store the new daily totals (replacing earlier figures) and re-evaluate the SKU's surge."""
    V = tables.daily_volumes
    rows = [
        {
            "sku": data.sku,
            "day": d.day,
            "units_ordered": d.units_ordered,
            "units_shipped": d.units_shipped,
            "units_backordered": d.units_backordered,
        }
        for d in data.days
    ]
    stmt = insert(V).values(rows)
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[V.c.sku, V.c.day],
            set_={
                "units_ordered": stmt.excluded.units_ordered,
                "units_shipped": stmt.excluded.units_shipped,
                "units_backordered": stmt.excluded.units_backordered,
                "updated_at": func.now(),
            },
        )
    )
    await evaluate_surge(uow, data.sku, settings)


async def record_promotion(uow: UnitOfWork, data: PromotionData, settings: ReturnsSettings, *, cancelled: bool) -> None:
    """Keep the local copy current (never overwritten by an older version) and refresh surge alerts."""
    P = tables.promotions
    skus = sorted({i.sku for i in data.items})
    values: dict[str, Any] = {
        "name": data.name,
        "skus": skus,
        "starts_on": data.starts_on,
        "ends_on": data.ends_on,
        "account_segments": list(data.account_segments),
        "status": "cancelled" if cancelled else data.status,
        "version": data.version,
    }
    stmt = insert(P).values(promotion_id=data.promotion_id, **values)
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[P.c.promotion_id],
            set_={**values, "updated_at": func.now()},
            where=P.c.version <= stmt.excluded.version,
        )
    )
    for sku in skus:
        await evaluate_surge(uow, sku, settings)


async def record_capacity_conflict(uow: UnitOfWork, data: CapacityConflictData) -> None:
    finding = evaluate_capacity_conflict(
        data.sku,
        data.promotion_ids,
        {w.week_start: w.shortfall for w in data.weeks},
        await promotions_for(uow, None),
    )
    extra = {"plan_version": data.plan_version}
    if finding is None:
        await alerts.resolve(uow, AlertType.CAPACITY_CONFLICT, data.sku, extra=extra)
        return
    await alerts.apply_finding(uow, AlertType.CAPACITY_CONFLICT, data.sku, finding, extra=extra)


async def resolve_capacity_conflict(uow: UnitOfWork, data: CapacityConflictData) -> None:
    await alerts.resolve(uow, AlertType.CAPACITY_CONFLICT, data.sku, extra={"plan_version": data.plan_version})


# ---------------------------------------------------------------- queries


async def get_return(uow: UnitOfWork, return_id: str) -> ReturnRead | None:
    T = tables.returns
    row = (await uow.session.execute(select(T).where(T.c.return_id == return_id))).first()
    return ReturnRead.model_validate({**row.body, "created_at": row.created_at}) if row else None


async def list_returns(
    uow: UnitOfWork,
    *,
    sku: str | None,
    account_id: str | None,
    since: date | None,
    limit: int,
    after: str | None,
) -> list[ReturnRead]:
    T = tables.returns
    query = select(T).order_by(T.c.return_id).limit(limit)
    if sku is not None:
        query = query.where(T.c.sku == sku)
    if account_id is not None:
        query = query.where(T.c.account_id == account_id)
    if since is not None:
        query = query.where(T.c.returned_on >= since)
    if after is not None:
        query = query.where(T.c.return_id > after)
    rows = (await uow.session.execute(query)).all()
    return [ReturnRead.model_validate({**r.body, "created_at": r.created_at}) for r in rows]


async def get_complaint(uow: UnitOfWork, complaint_id: str) -> ComplaintRead | None:
    T = tables.complaints
    row = (await uow.session.execute(select(T).where(T.c.complaint_id == complaint_id))).first()
    return ComplaintRead.model_validate({**row.body, "created_at": row.created_at}) if row else None


async def list_complaints(
    uow: UnitOfWork, *, account_id: str | None, sku: str | None, limit: int, after: str | None
) -> list[ComplaintRead]:
    T = tables.complaints
    query = select(T).order_by(T.c.complaint_id).limit(limit)
    if account_id is not None:
        query = query.where(T.c.account_id == account_id)
    if sku is not None:
        query = query.where(T.c.sku == sku)
    if after is not None:
        query = query.where(T.c.complaint_id > after)
    rows = (await uow.session.execute(query)).all()
    return [ComplaintRead.model_validate({**r.body, "created_at": r.created_at}) for r in rows]


async def list_accounts(
    uow: UnitOfWork, *, segment: Segment | None, limit: int, after: str | None
) -> list[AccountRead]:
    A = tables.accounts
    query = select(A).order_by(A.c.account_id).limit(limit)
    if segment is not None:
        query = query.where(A.c.segment == segment.value)
    if after is not None:
        query = query.where(A.c.account_id > after)
    return [_account_read(r) for r in (await uow.session.execute(query)).all()]
