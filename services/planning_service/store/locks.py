"""Advisory locks of the planning service: a per-event re-plan holds the global lock shared plus its SKUs'
locks; a full re-plan holds the global lock exclusively. Two writers never build a plan version from the
same stored plan."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

GLOBAL_LOCK = 0x504C414E
SKU_LOCK_SPACE = 0x504C41


class LockSql:
    session: AsyncSession

    async def lock_skus(self, skus: Collection[str]) -> None:
        await self.session.execute(text("select pg_advisory_xact_lock_shared(:k)"), {"k": GLOBAL_LOCK})
        # One statement, locks taken in a fixed order: two writers of overlapping SKUs cannot deadlock.
        await self.session.execute(
            text(
                "select count(pg_advisory_xact_lock(:space, hashtext(sku)))"
                " from (select sku from unnest(cast(:skus as text[])) as sku order by sku) as ordered"
            ),
            {"space": SKU_LOCK_SPACE, "skus": sorted(set(skus))},
        )

    async def lock_all(self) -> None:
        await self.session.execute(text("select pg_advisory_xact_lock(:k)"), {"k": GLOBAL_LOCK})
