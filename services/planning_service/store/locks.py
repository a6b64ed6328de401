"""Advisory locks of the planning service: every re-plan holds one lock per SKU it plans (taken in SKU order), a
full re-plan one chunk of SKUs at a time. Two writers never build a plan version from the same stored plan, and
no writer waits for more than the chunk that holds its SKUs."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables

SKU_LOCK_SPACE = 0x504C41


class LockSql:
    session: AsyncSession

    async def lock_skus(self, skus: Collection[str]) -> None:
        # One statement, locks taken in a fixed order: two writers of overlapping SKUs cannot deadlock.
        await self.session.execute(
            text(
                "select count(pg_advisory_xact_lock(:space, hashtext(sku)))"
                " from (select sku from unnest(cast(:skus as text[])) as sku order by sku) as ordered"
            ),
            {"space": SKU_LOCK_SPACE, "skus": sorted(set(skus))},
        )

    async def skus_to_replan(self, *, after: str | None, limit: int) -> list[str]:
        """The next chunk of a full re-plan: up to `limit` SKUs with an item, in SKU order, after `after`."""
        items = tables.items
        query = select(items.c.sku).order_by(items.c.sku).limit(limit)
        if after is not None:
            query = query.where(items.c.sku > after)
        return list((await self.session.execute(query)).scalars().all())
