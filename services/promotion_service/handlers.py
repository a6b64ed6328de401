"""Promotion commands and queries: load, apply the domain rules, save, record events."""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.promotion_service import tables
from services.promotion_service.domain import (
    PromotionSpan,
    PromotionStatus,
    RuleViolation,
    SkuConflict,
    check_promotion,
    conflict_summary,
    merge_revision,
    overlap_warnings,
    status_after_conflicts,
)
from services.promotion_service.schemas import (
    LaunchCreate,
    LaunchRead,
    PromotionCreate,
    PromotionRead,
    PromotionRevise,
    PromotionWarning,
    PromotionWritten,
)
from shared.db import UnitOfWork
from shared.errors import ProblemError, conflict, not_found
from shared.events import CapacityConflictData, CloudEvent, EventType, LaunchData, PromotionData
from shared.idempotency import create_once

T = tables.promotions
C = tables.conflicts
L = tables.launches

log = structlog.get_logger("salesops.promotion")


def to_read(row: Row[Any]) -> PromotionRead:
    return PromotionRead.model_validate(
        {
            **row.body,
            "status": row.status,
            "version": row.version,
            "conflict": row.conflict,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def _unprocessable(violations: list[RuleViolation]) -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Entity",
        "; ".join(f"{v.field}: {v.message}" for v in violations),
        errors=[{"field": v.field, "message": v.message} for v in violations],
    )


def _reject_violations(command: PromotionCreate) -> None:
    violations = check_promotion(
        starts_on=command.starts_on,
        ends_on=command.ends_on,
        item_skus=[i.sku for i in command.items],
        cannibalized_skus=[c.sku for c in command.cannibalized],
    )
    if violations:
        raise _unprocessable(violations)


def _span(promotion: PromotionCreate | PromotionRead) -> PromotionSpan:
    return PromotionSpan(
        promotion_id=promotion.promotion_id,
        skus=frozenset(item.sku for item in promotion.items),
        starts_on=promotion.starts_on,
        ends_on=promotion.ends_on,
    )


async def _warnings(uow: UnitOfWork, promotion: PromotionCreate | PromotionRead) -> list[PromotionWarning]:
    """Overlapping live promotions of the same SKUs: advice in the answer, never a refusal."""
    skus = sorted({item.sku for item in promotion.items})
    query = select(T).where(
        T.c.status != PromotionStatus.CANCELLED.value,
        T.c.promotion_id != promotion.promotion_id,
        # ISO dates compare correctly as text; the exact overlap is decided by the domain.
        T.c.body["starts_on"].astext <= promotion.ends_on.isoformat(),
        T.c.body["ends_on"].astext >= promotion.starts_on.isoformat(),
    )
    contains_any = [T.c.body["items"].contains([{"sku": sku}]) for sku in skus]
    query = query.where(or_(*contains_any)).limit(1000)
    others = [_span(to_read(row)) for row in (await uow.session.execute(query)).all()]
    return [
        PromotionWarning(code=w.code, sku=w.sku, promotion_id=w.promotion_id, starts_on=w.starts_on, ends_on=w.ends_on)
        for w in overlap_warnings(_span(promotion), others)
    ]


def _event_data(promotion: PromotionRead) -> PromotionData:
    return PromotionData.model_validate(promotion.model_dump(mode="json"))


async def create_promotion(uow: UnitOfWork, command: PromotionCreate) -> tuple[PromotionWritten, bool]:
    """Store a new promotion and announce it; an identical retry returns the stored one (created=False)."""
    _reject_violations(command)
    inserted, created = await create_once(
        uow.session,
        T,
        key="promotion_id",
        values={
            "promotion_id": command.promotion_id,
            "status": PromotionStatus.PLANNED.value,
            "version": 1,
            "partition_key": command.items[0].sku,
        },
        body=command.model_dump(mode="json"),
        what="promotion",
    )
    if not created:
        stored = to_read(inserted)
        return PromotionWritten(**stored.model_dump(), warnings=await _warnings(uow, stored)), False
    promotion = to_read(inserted)
    uow.publish(
        EventType.PROMOTION_PLANNED,
        key=inserted.partition_key,
        subject=promotion.promotion_id,
        data=_event_data(promotion),
    )
    return PromotionWritten(**promotion.model_dump(), warnings=await _warnings(uow, promotion)), True


async def _load_for_update(uow: UnitOfWork, promotion_id: str) -> Row[Any]:
    # The row lock serialises concurrent revisions, so versions and events never interleave.
    row = (await uow.session.execute(select(T).where(T.c.promotion_id == promotion_id).with_for_update())).first()
    if row is None:
        raise not_found("promotion", promotion_id)
    return row


def _validated_merge(current: dict[str, Any], changes: dict[str, Any]) -> PromotionCreate:
    merged, violations = merge_revision(current, changes)
    if violations:
        raise _unprocessable(violations)
    try:
        command = PromotionCreate.model_validate(merged)
    except ValidationError as exc:
        raise _unprocessable(
            [RuleViolation(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) for err in exc.errors()]
        ) from exc
    _reject_violations(command)
    return command


async def revise_promotion(
    uow: UnitOfWork, promotion_id: str, revision: PromotionRevise
) -> tuple[PromotionWritten, bool]:
    """Apply a partial revision; publishes `revised` with the whole promotion when anything changed."""
    row = await _load_for_update(uow, promotion_id)
    if row.status == PromotionStatus.CANCELLED.value:
        raise conflict(
            f"promotion '{promotion_id}' is cancelled and can no longer be revised",
            promotion_id=promotion_id,
        )
    changes = revision.model_dump(mode="json", exclude_unset=True)
    command = _validated_merge(dict(row.body), changes)
    body = command.model_dump(mode="json")
    if body == row.body:
        current = to_read(row)
        return PromotionWritten(**current.model_dump(), warnings=await _warnings(uow, current)), False
    updated = (
        await uow.session.execute(
            update(T)
            .where(T.c.promotion_id == promotion_id)
            .values(body=body, version=T.c.version + 1, updated_at=func.now())
            .returning(*T.c)
        )
    ).one()
    promotion = to_read(updated)
    uow.publish(
        EventType.PROMOTION_REVISED,
        key=updated.partition_key,
        subject=promotion_id,
        data=_event_data(promotion),
    )
    return PromotionWritten(**promotion.model_dump(), warnings=await _warnings(uow, promotion)), True


async def cancel_promotion(uow: UnitOfWork, promotion_id: str) -> tuple[PromotionRead, bool]:
    """Cancel once: a repeated cancel answers with the cancelled promotion and publishes nothing."""
    row = await _load_for_update(uow, promotion_id)
    if row.status == PromotionStatus.CANCELLED.value:
        return to_read(row), False
    updated = (
        await uow.session.execute(
            update(T)
            .where(T.c.promotion_id == promotion_id)
            .values(status=PromotionStatus.CANCELLED.value, version=T.c.version + 1, updated_at=func.now())
            .returning(*T.c)
        )
    ).one()
    promotion = to_read(updated)
    uow.publish(
        EventType.PROMOTION_CANCELLED,
        key=updated.partition_key,
        subject=promotion_id,
        data=_event_data(promotion),
    )
    return promotion, True


async def get_promotion(uow: UnitOfWork, promotion_id: str) -> PromotionRead | None:
    row = (await uow.session.execute(select(T).where(T.c.promotion_id == promotion_id))).first()
    return to_read(row) if row else None


async def list_promotions(
    uow: UnitOfWork,
    *,
    status: PromotionStatus | None,
    sku: str | None,
    active_on: date | None,
    since: date | None,
    until: date | None,
    limit: int,
    after: str | None,
) -> list[PromotionRead]:
    query = select(T).order_by(T.c.promotion_id).limit(limit)
    if status is not None:
        query = query.where(T.c.status == status.value)
    if sku is not None:
        query = query.where(T.c.body["items"].contains([{"sku": sku}]))
    starts_on, ends_on = T.c.body["starts_on"].astext, T.c.body["ends_on"].astext
    if active_on is not None:
        query = query.where(starts_on <= active_on.isoformat(), ends_on >= active_on.isoformat())
    if since is not None:
        query = query.where(ends_on >= since.isoformat())
    if until is not None:
        query = query.where(starts_on <= until.isoformat())
    if after is not None:
        query = query.where(T.c.promotion_id > after)
    return [to_read(row) for row in (await uow.session.execute(query)).all()]


# ---------------------------------------------------------------- launches


def _launch_read(row: Row[Any]) -> LaunchRead:
    return LaunchRead.model_validate({**row.body, "created_at": row.created_at})


async def create_launch(uow: UnitOfWork, command: LaunchCreate) -> tuple[LaunchRead, bool]:
    """Store a launch and announce it; idempotent on `launch_id` like a promotion create."""
    if command.reference_sku == command.sku:
        raise _unprocessable([RuleViolation("reference_sku", "must differ from sku (the new product)")])
    inserted, created = await create_once(
        uow.session,
        L,
        key="launch_id",
        values={"launch_id": command.launch_id, "sku": command.sku, "launch_on": command.launch_on},
        body=command.model_dump(mode="json"),
        what="launch",
    )
    if not created:
        return _launch_read(inserted), False
    uow.publish(
        EventType.LAUNCH_PLANNED,
        key=command.sku,
        subject=command.launch_id,
        data=LaunchData.model_validate(inserted.body),
    )
    return _launch_read(inserted), True


async def get_launch(uow: UnitOfWork, launch_id: str) -> LaunchRead | None:
    row = (await uow.session.execute(select(L).where(L.c.launch_id == launch_id))).first()
    return _launch_read(row) if row else None


async def list_launches(uow: UnitOfWork, *, sku: str | None, limit: int, after: str | None) -> list[LaunchRead]:
    query = select(L).order_by(L.c.launch_id).limit(limit)
    if sku is not None:
        query = query.where(L.c.sku == sku)
    if after is not None:
        query = query.where(L.c.launch_id > after)
    return [_launch_read(row) for row in (await uow.session.execute(query)).all()]


# ---------------------------------------------------------------- capacity conflicts from planning


async def _refresh_conflict_state(uow: UnitOfWork, promotion_id: str) -> None:
    """Recompute the promotion's conflict summary and status from its open conflict rows."""
    row = (await uow.session.execute(select(T).where(T.c.promotion_id == promotion_id).with_for_update())).first()
    if row is None:
        return
    rows = (await uow.session.execute(select(C).where(C.c.promotion_id == promotion_id))).all()
    conflicts = [
        SkuConflict(
            sku=r.sku,
            weeks=tuple((date.fromisoformat(w["week_start"]), float(w["shortfall"])) for w in r.weeks),
            total_shortfall=r.total_shortfall,
        )
        for r in rows
    ]
    status = status_after_conflicts(PromotionStatus(row.status), len(conflicts))
    summary = conflict_summary(conflicts)
    if status.value != row.status or summary != row.conflict:
        # Status mirrors planning's own report, so no promotion event is published for it: planning
        # already knows, and re-announcing would make it re-plan for nothing.
        await uow.session.execute(
            update(T)
            .where(T.c.promotion_id == promotion_id)
            .values(status=status.value, conflict=summary, updated_at=func.now())
        )


async def _known_promotions(uow: UnitOfWork, promotion_ids: list[str]) -> set[str]:
    if not promotion_ids:
        return set()
    result = await uow.session.execute(select(T.c.promotion_id).where(T.c.promotion_id.in_(promotion_ids)))
    return set(result.scalars())


def _is_stale(stored_version: int | None, incoming: int | None) -> bool:
    return stored_version is not None and incoming is not None and incoming < stored_version


async def on_capacity_conflict_detected(uow: UnitOfWork, event: CloudEvent, data: CapacityConflictData) -> None:
    """Planning cannot cover the SKU's demand: the named promotions are at risk until it says resolved."""
    known = await _known_promotions(uow, sorted(set(data.promotion_ids)))
    for unknown in sorted(set(data.promotion_ids) - known):
        log.warning("capacity conflict for an unknown promotion ignored", promotion_id=unknown, sku=data.sku)
    weeks = [{"week_start": w.week_start.isoformat(), "shortfall": w.shortfall} for w in data.weeks]
    for promotion_id in sorted(known):
        stored = (
            await uow.session.execute(
                select(C.c.plan_version).where(C.c.promotion_id == promotion_id, C.c.sku == data.sku)
            )
        ).scalar_one_or_none()
        if _is_stale(stored, data.plan_version):
            continue
        statement = insert(C).values(
            promotion_id=promotion_id,
            sku=data.sku,
            weeks=weeks,
            total_shortfall=data.total_shortfall,
            plan_version=data.plan_version,
            event_id=event.id,
        )
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[C.c.promotion_id, C.c.sku],
                set_={
                    "weeks": statement.excluded.weeks,
                    "total_shortfall": statement.excluded.total_shortfall,
                    "plan_version": statement.excluded.plan_version,
                    "event_id": statement.excluded.event_id,
                    "updated_at": func.now(),
                },
            )
        )
        await _refresh_conflict_state(uow, promotion_id)


async def on_capacity_conflict_resolved(uow: UnitOfWork, event: CloudEvent, data: CapacityConflictData) -> None:
    """Planning covers the SKU again; without promotion ids, every conflict on the SKU is resolved."""
    query = select(C.c.promotion_id, C.c.plan_version).where(C.c.sku == data.sku)
    if data.promotion_ids:
        query = query.where(C.c.promotion_id.in_(sorted(set(data.promotion_ids))))
    open_rows = (await uow.session.execute(query)).all()
    for row in open_rows:
        if _is_stale(row.plan_version, data.plan_version):
            continue
        await uow.session.execute(delete(C).where(C.c.promotion_id == row.promotion_id, C.c.sku == data.sku))
        await _refresh_conflict_state(uow, row.promotion_id)
