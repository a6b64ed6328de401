"""All of the promotion service's SQL: promotions, launches and planning's open capacity conflicts.

Handlers see the store through the `Store` protocol (tests pass an in-memory fake); the read side uses the
same `SqlStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.promotion_service import tables
from services.promotion_service.domain import PromotionStatus, SkuConflict

promotions = tables.promotions
conflicts = tables.conflicts
launches = tables.launches

# Overlap warnings are advice: this many overlapping promotions are more than enough to tell the caller.
MAX_OVERLAPS = 1000


@dataclass(frozen=True)
class PromotionRecord:
    """A stored promotion: the request body it was created (or last revised) with, and its lifecycle."""

    promotion_id: str
    body: Mapping[str, Any]
    request_hash: str
    status: str
    version: int
    partition_key: str
    conflict: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LaunchRecord:
    launch_id: str
    sku: str
    launch_on: date
    body: Mapping[str, Any]
    request_hash: str
    created_at: datetime


@dataclass(frozen=True)
class PromotionFilter:
    status: PromotionStatus | None = None
    sku: str | None = None
    active_on: date | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class ConflictReport:
    """Planning's report of one SKU's capacity shortfall, as stored per promotion it names."""

    sku: str
    weeks: tuple[tuple[date, float], ...]
    total_shortfall: float
    plan_version: int | None
    event_id: str


@dataclass(frozen=True)
class OpenConflict:
    promotion_id: str
    plan_version: int | None


class Store(Protocol):
    """What the promotion handlers read and write."""

    async def insert_promotion(
        self, promotion_id: str, *, body: Mapping[str, Any], request_hash: str, partition_key: str
    ) -> PromotionRecord | None: ...

    async def promotion(self, promotion_id: str, *, lock: bool = False) -> PromotionRecord | None: ...

    async def live_promotions_overlapping(
        self, promotion_id: str, skus: Sequence[str], starts_on: date, ends_on: date
    ) -> list[PromotionRecord]: ...

    async def revise_promotion(self, promotion_id: str, body: Mapping[str, Any]) -> PromotionRecord: ...

    async def cancel_promotion(self, promotion_id: str) -> PromotionRecord: ...

    async def insert_launch(
        self, launch_id: str, *, sku: str, launch_on: date, body: Mapping[str, Any], request_hash: str
    ) -> LaunchRecord | None: ...

    async def launch(self, launch_id: str) -> LaunchRecord | None: ...

    async def known_promotion_ids(self, promotion_ids: Sequence[str]) -> set[str]: ...

    async def conflict_plan_version(self, promotion_id: str, sku: str) -> int | None: ...

    async def save_conflict(self, promotion_id: str, report: ConflictReport) -> None: ...

    async def open_conflicts_of_sku(self, sku: str, promotion_ids: Sequence[str]) -> list[OpenConflict]: ...

    async def delete_conflict(self, promotion_id: str, sku: str) -> None: ...

    async def conflicts_of(self, promotion_id: str) -> list[SkuConflict]: ...

    async def set_conflict_state(self, promotion_id: str, status: str, conflict: Mapping[str, Any] | None) -> None: ...


def _promotion(row: Row[Any]) -> PromotionRecord:
    return PromotionRecord(**row._mapping)


def _launch(row: Row[Any]) -> LaunchRecord:
    return LaunchRecord(**row._mapping)


class SqlStore:
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------ promotions

    async def insert_promotion(
        self, promotion_id: str, *, body: Mapping[str, Any], request_hash: str, partition_key: str
    ) -> PromotionRecord | None:
        """The new promotion, or None when its id exists (a concurrent create waits on the unique index)."""
        row = (
            await self.session.execute(
                insert(promotions)
                .values(
                    promotion_id=promotion_id,
                    body=dict(body),
                    request_hash=request_hash,
                    status=PromotionStatus.PLANNED.value,
                    version=1,
                    partition_key=partition_key,
                )
                .on_conflict_do_nothing(index_elements=[promotions.c.promotion_id])
                .returning(*promotions.c)
            )
        ).first()
        return _promotion(row) if row else None

    async def promotion(self, promotion_id: str, *, lock: bool = False) -> PromotionRecord | None:
        """One promotion; with `lock`, its row stays locked until the commit (serialises revisions)."""
        query = select(promotions).where(promotions.c.promotion_id == promotion_id)
        row = (await self.session.execute(query.with_for_update() if lock else query)).first()
        return _promotion(row) if row else None

    async def live_promotions_overlapping(
        self, promotion_id: str, skus: Sequence[str], starts_on: date, ends_on: date
    ) -> list[PromotionRecord]:
        """Other uncancelled promotions of any of the SKUs whose dates may overlap (the domain decides)."""
        body = promotions.c.body
        query = (
            select(promotions)
            .where(
                promotions.c.status != PromotionStatus.CANCELLED.value,
                promotions.c.promotion_id != promotion_id,
                # ISO dates compare correctly as text.
                body["starts_on"].astext <= ends_on.isoformat(),
                body["ends_on"].astext >= starts_on.isoformat(),
                or_(*(body["items"].contains([{"sku": sku}]) for sku in sorted(set(skus)))),
            )
            .limit(MAX_OVERLAPS)
        )
        return [_promotion(row) for row in (await self.session.execute(query)).all()]

    async def revise_promotion(self, promotion_id: str, body: Mapping[str, Any]) -> PromotionRecord:
        return await self._next_version(promotion_id, body=dict(body))

    async def cancel_promotion(self, promotion_id: str) -> PromotionRecord:
        return await self._next_version(promotion_id, status=PromotionStatus.CANCELLED.value)

    async def _next_version(self, promotion_id: str, **values: Any) -> PromotionRecord:
        row = (
            await self.session.execute(
                update(promotions)
                .where(promotions.c.promotion_id == promotion_id)
                .values(**values, version=promotions.c.version + 1, updated_at=func.now())
                .returning(*promotions.c)
            )
        ).one()
        return _promotion(row)

    async def list_promotions(self, where: PromotionFilter, *, limit: int, after: str | None) -> list[PromotionRecord]:
        query = select(promotions).order_by(promotions.c.promotion_id).limit(limit)
        if where.status is not None:
            query = query.where(promotions.c.status == where.status.value)
        if where.sku is not None:
            query = query.where(promotions.c.body["items"].contains([{"sku": where.sku}]))
        starts_on, ends_on = promotions.c.body["starts_on"].astext, promotions.c.body["ends_on"].astext
        if where.active_on is not None:
            query = query.where(starts_on <= where.active_on.isoformat(), ends_on >= where.active_on.isoformat())
        if where.since is not None:
            query = query.where(ends_on >= where.since.isoformat())
        if where.until is not None:
            query = query.where(starts_on <= where.until.isoformat())
        if after is not None:
            query = query.where(promotions.c.promotion_id > after)
        return [_promotion(row) for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ launches

    async def insert_launch(
        self, launch_id: str, *, sku: str, launch_on: date, body: Mapping[str, Any], request_hash: str
    ) -> LaunchRecord | None:
        """The new launch, or None when its id exists."""
        row = (
            await self.session.execute(
                insert(launches)
                .values(launch_id=launch_id, sku=sku, launch_on=launch_on, body=dict(body), request_hash=request_hash)
                .on_conflict_do_nothing(index_elements=[launches.c.launch_id])
                .returning(*launches.c)
            )
        ).first()
        return _launch(row) if row else None

    async def launch(self, launch_id: str) -> LaunchRecord | None:
        row = (await self.session.execute(select(launches).where(launches.c.launch_id == launch_id))).first()
        return _launch(row) if row else None

    async def list_launches(self, *, sku: str | None, limit: int, after: str | None) -> list[LaunchRecord]:
        query = select(launches).order_by(launches.c.launch_id).limit(limit)
        if sku is not None:
            query = query.where(launches.c.sku == sku)
        if after is not None:
            query = query.where(launches.c.launch_id > after)
        return [_launch(row) for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ capacity conflicts from planning

    async def known_promotion_ids(self, promotion_ids: Sequence[str]) -> set[str]:
        if not promotion_ids:
            return set()
        query = select(promotions.c.promotion_id).where(promotions.c.promotion_id.in_(sorted(set(promotion_ids))))
        return set((await self.session.execute(query)).scalars())

    async def conflict_plan_version(self, promotion_id: str, sku: str) -> int | None:
        query = select(conflicts.c.plan_version).where(conflicts.c.promotion_id == promotion_id, conflicts.c.sku == sku)
        version: int | None = (await self.session.execute(query)).scalar_one_or_none()
        return version

    async def save_conflict(self, promotion_id: str, report: ConflictReport) -> None:
        """Planning's latest report of the SKU's shortfall for the promotion replaces the previous one."""
        statement = insert(conflicts).values(
            promotion_id=promotion_id,
            sku=report.sku,
            weeks=[{"week_start": week.isoformat(), "shortfall": shortfall} for week, shortfall in report.weeks],
            total_shortfall=report.total_shortfall,
            plan_version=report.plan_version,
            event_id=report.event_id,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[conflicts.c.promotion_id, conflicts.c.sku],
                set_={
                    "weeks": statement.excluded.weeks,
                    "total_shortfall": statement.excluded.total_shortfall,
                    "plan_version": statement.excluded.plan_version,
                    "event_id": statement.excluded.event_id,
                    "updated_at": func.now(),
                },
            )
        )

    async def open_conflicts_of_sku(self, sku: str, promotion_ids: Sequence[str]) -> list[OpenConflict]:
        """The SKU's open conflicts with the named promotions (with all of its promotions when none are named)."""
        query = select(conflicts.c.promotion_id, conflicts.c.plan_version).where(conflicts.c.sku == sku)
        if promotion_ids:
            query = query.where(conflicts.c.promotion_id.in_(sorted(set(promotion_ids))))
        return [OpenConflict(row.promotion_id, row.plan_version) for row in (await self.session.execute(query)).all()]

    async def delete_conflict(self, promotion_id: str, sku: str) -> None:
        await self.session.execute(
            delete(conflicts).where(conflicts.c.promotion_id == promotion_id, conflicts.c.sku == sku)
        )

    async def conflicts_of(self, promotion_id: str) -> list[SkuConflict]:
        rows = (await self.session.execute(select(conflicts).where(conflicts.c.promotion_id == promotion_id))).all()
        return [
            SkuConflict(
                sku=row.sku,
                weeks=tuple((date.fromisoformat(w["week_start"]), float(w["shortfall"])) for w in row.weeks),
                total_shortfall=row.total_shortfall,
            )
            for row in rows
        ]

    async def set_conflict_state(self, promotion_id: str, status: str, conflict: Mapping[str, Any] | None) -> None:
        await self.session.execute(
            update(promotions)
            .where(promotions.c.promotion_id == promotion_id)
            .values(status=status, conflict=conflict, updated_at=func.now())
        )
