"""Promotion commands and queries: load, apply the domain rules, save, record events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert

from services.promotion_service import tables
from services.promotion_service.domain import PromotionStatus, check_promotion, fingerprint
from services.promotion_service.schemas import PromotionCreate, PromotionRead
from shared.db import UnitOfWork
from shared.errors import ProblemError, conflict
from shared.events import EventType, PromotionData

T = tables.promotions


def _to_read(row: Row[Any]) -> PromotionRead:
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


def _reject_violations(command: PromotionCreate) -> None:
    violations = check_promotion(
        starts_on=command.starts_on,
        ends_on=command.ends_on,
        item_skus=[i.sku for i in command.items],
        cannibalized_skus=[c.sku for c in command.cannibalized],
    )
    if violations:
        raise ProblemError(
            422,
            "Unprocessable Entity",
            "; ".join(f"{v.field}: {v.message}" for v in violations),
            errors=[{"field": v.field, "message": v.message} for v in violations],
        )


async def create_promotion(uow: UnitOfWork, command: PromotionCreate) -> tuple[PromotionRead, bool]:
    """Store a new promotion and announce it; an identical retry returns the stored one (created=False)."""
    _reject_violations(command)
    body = command.model_dump(mode="json")
    digest = fingerprint(body)
    inserted = (
        await uow.session.execute(
            insert(T)
            .values(
                promotion_id=command.promotion_id,
                body=body,
                request_hash=digest,
                status=PromotionStatus.PLANNED.value,
                version=1,
                partition_key=command.items[0].sku,
            )
            .on_conflict_do_nothing(index_elements=[T.c.promotion_id])
            .returning(*T.c)
        )
    ).first()
    if inserted is None:
        existing = (await uow.session.execute(select(T).where(T.c.promotion_id == command.promotion_id))).one()
        if existing.request_hash != digest:
            raise conflict(
                f"promotion '{command.promotion_id}' already exists with a different body",
                promotion_id=command.promotion_id,
            )
        return _to_read(existing), False
    promotion = _to_read(inserted)
    uow.publish(
        EventType.PROMOTION_PLANNED,
        key=inserted.partition_key,
        subject=promotion.promotion_id,
        data=PromotionData.model_validate(promotion.model_dump(mode="json")),
    )
    return promotion, True


async def get_promotion(uow: UnitOfWork, promotion_id: str) -> PromotionRead | None:
    row = (await uow.session.execute(select(T).where(T.c.promotion_id == promotion_id))).first()
    return _to_read(row) if row else None


async def list_promotions(
    uow: UnitOfWork, *, status: PromotionStatus | None, sku: str | None, limit: int, after: str | None
) -> list[PromotionRead]:
    query = select(T).order_by(T.c.promotion_id).limit(limit)
    if status is not None:
        query = query.where(T.c.status == status.value)
    if sku is not None:
        query = query.where(T.c.body["items"].contains([{"sku": sku}]))
    if after is not None:
        query = query.where(T.c.promotion_id > after)
    return [_to_read(row) for row in (await uow.session.execute(query)).all()]
