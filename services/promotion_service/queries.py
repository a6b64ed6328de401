"""Read side of the promotion API: promotions and launches as the API shows them, one or a page at a time.

Like every read model, these read through the store and only shape its records into response models.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.promotion_service.domain import OverlapWarning
from services.promotion_service.schemas import (
    LaunchRead,
    PromotionRead,
    PromotionWarning,
    PromotionWritten,
)
from services.promotion_service.store import LaunchRecord, PromotionFilter, PromotionRecord, SqlStore


def promotion_read(promotion: PromotionRecord) -> PromotionRead:
    return PromotionRead.model_validate(
        {
            **promotion.body,
            "status": promotion.status,
            "version": promotion.version,
            "conflict": promotion.conflict,
            "created_at": promotion.created_at,
            "updated_at": promotion.updated_at,
        }
    )


def _warning(warning: OverlapWarning) -> PromotionWarning:
    return PromotionWarning(
        code=warning.code,
        sku=warning.sku,
        promotion_id=warning.promotion_id,
        starts_on=warning.starts_on,
        ends_on=warning.ends_on,
    )


def promotion_written(promotion: PromotionRecord, warnings: Sequence[OverlapWarning]) -> PromotionWritten:
    """The answer to a create or a revision: the promotion and the advice that did not block the change."""
    read = promotion_read(promotion)
    return PromotionWritten(**read.model_dump(), warnings=[_warning(w) for w in warnings])


def launch_read(launch: LaunchRecord) -> LaunchRead:
    return LaunchRead.model_validate({**launch.body, "created_at": launch.created_at})


async def get_promotion(store: SqlStore, promotion_id: str) -> PromotionRead | None:
    promotion = await store.promotion(promotion_id)
    return promotion_read(promotion) if promotion else None


async def list_promotions(
    store: SqlStore, where: PromotionFilter, *, limit: int, after: str | None
) -> list[PromotionRead]:
    return [promotion_read(p) for p in await store.list_promotions(where, limit=limit, after=after)]


async def get_launch(store: SqlStore, launch_id: str) -> LaunchRead | None:
    launch = await store.launch(launch_id)
    return launch_read(launch) if launch else None


async def list_launches(store: SqlStore, *, sku: str | None, limit: int, after: str | None) -> list[LaunchRead]:
    return [launch_read(launch) for launch in await store.list_launches(sku=sku, limit=limit, after=after)]
