"""Planning's event handlers and queries: keep its copy of the inputs current and record every driver."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.planning_service import tables
from shared.db import UnitOfWork
from shared.events import CloudEvent, EventType, PromotionData

P = tables.promotions
D = tables.drivers


def promotion_summary(event_type: str, promotion: PromotionData) -> str:
    uplifts = ", ".join(f"{item.uplift_pct:+g}% on {item.sku}" for item in promotion.items)
    if event_type == EventType.PROMOTION_CANCELLED:
        return f"{promotion.promotion_id} cancelled ({uplifts} withdrawn)"
    if event_type == EventType.PROMOTION_REVISED:
        return f"{promotion.promotion_id} revised: {uplifts}"
    return f"{promotion.promotion_id} {uplifts}"


async def record_driver(uow: UnitOfWork, event: CloudEvent, skus: list[str], summary: str) -> None:
    await uow.session.execute(
        insert(D)
        .values(
            event_id=event.id,
            event_type=event.type,
            subject=event.subject,
            skus=sorted(set(skus)),
            summary=summary,
            occurred_at=event.time,
        )
        .on_conflict_do_nothing()
    )


async def on_promotion_event(uow: UnitOfWork, event: CloudEvent, promotion: PromotionData) -> None:
    """Keep the newest version of the promotion; an older version arriving late changes nothing."""
    status = "cancelled" if event.type == EventType.PROMOTION_CANCELLED else promotion.status
    values = {
        "promotion_id": promotion.promotion_id,
        "version": promotion.version,
        "status": status,
        "body": promotion.model_dump(mode="json"),
        "last_event_id": event.id,
    }
    statement = insert(P).values(**values)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[P.c.promotion_id],
            set_={k: statement.excluded[k] for k in ("version", "status", "body", "last_event_id")}
            | {"updated_at": datetime.now().astimezone()},
            where=P.c.version <= statement.excluded.version,
        )
    )
    skus = [item.sku for item in promotion.items] + [c.sku for c in promotion.cannibalized]
    await record_driver(uow, event, skus, promotion_summary(event.type, promotion))


async def list_drivers(uow: UnitOfWork, *, sku: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(D).order_by(D.c.received_at.desc(), D.c.event_id).limit(limit)
    if sku is not None:
        query = query.where(D.c.skus.contains([sku]))
    return [dict(row._mapping) for row in (await uow.session.execute(query)).all()]


async def get_known_promotion(uow: UnitOfWork, promotion_id: str) -> dict[str, Any] | None:
    row = (await uow.session.execute(select(P).where(P.c.promotion_id == promotion_id))).first()
    return dict(row._mapping) if row else None
