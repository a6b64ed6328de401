"""What the read side of the API selects: items, plans, revisions, conflicts, drivers, forecast snapshots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import CapacityConflict, SkuPlan
from services.planning_service.store.inputs import plan_from_json
from services.planning_service.store.plans import changes_from_stored, conflict_from_row

SUMMARY_COLUMNS = ("sku", "plan_version", "generated_at", "total_forecast", "total_mps", "shortfall_weeks")


@dataclass(frozen=True)
class OpenConflict:
    conflict: CapacityConflict
    plan_version: int | None


@dataclass(frozen=True)
class CurrentPlan:
    plan: SkuPlan
    plan_version: int
    generated_at: datetime
    exceptions: list[dict[str, Any]]


@dataclass(frozen=True)
class PlanSummary:
    """A plan in brief: its version, time and totals (`columns`) and its open conflict."""

    columns: Mapping[str, Any]
    open_conflict: OpenConflict | None


@dataclass(frozen=True)
class Revision:
    plan_version: int
    generated_at: datetime
    driver_event_ids: list[str]
    changes: list[dict[str, Any]]


class ReadSql:
    session: AsyncSession

    async def item_columns(self, sku: str) -> Mapping[str, Any] | None:
        items = tables.items
        row = (await self.session.execute(select(items).where(items.c.sku == sku))).first()
        return dict(row._mapping) if row else None

    async def items_page(self, *, limit: int, after: str | None) -> list[Mapping[str, Any]]:
        items = tables.items
        query = select(items).order_by(items.c.sku).limit(limit)
        if after is not None:
            query = query.where(items.c.sku > after)
        return [dict(row._mapping) for row in (await self.session.execute(query)).all()]

    async def current_plan(self, sku: str) -> CurrentPlan | None:
        plans = tables.plans
        row = (await self.session.execute(select(plans).where(plans.c.sku == sku))).first()
        if row is None:
            return None
        return CurrentPlan(plan_from_json(sku, row.weeks), row.plan_version, row.generated_at, row.exceptions)

    async def revisions(self, sku: str, *, up_to: int | None = None) -> list[Revision]:
        """A SKU's plan revisions, newest first; with `up_to`, only those of that plan version and before
        (a revision committed after the plan was read belongs to a newer plan)."""
        revisions = tables.plan_revisions
        query = select(revisions).where(revisions.c.sku == sku).order_by(revisions.c.plan_version.desc())
        if up_to is not None:
            query = query.where(revisions.c.plan_version <= up_to)
        return [
            Revision(row.plan_version, row.generated_at, row.driver_event_ids, changes_from_stored(row.changes))
            for row in (await self.session.execute(query)).all()
        ]

    async def open_conflict(self, sku: str) -> OpenConflict | None:
        conflicts = tables.conflicts
        row = (await self.session.execute(select(conflicts).where(conflicts.c.sku == sku))).first()
        return OpenConflict(conflict_from_row(row), row.plan_version) if row else None

    async def plan_summaries(self, *, limit: int, after: str | None) -> list[PlanSummary]:
        plans, conflicts = tables.plans, tables.conflicts
        query = (
            select(
                *(plans.c[name] for name in SUMMARY_COLUMNS),
                conflicts.c.promotion_ids,
                conflicts.c.weeks,
                conflicts.c.total_shortfall,
                conflicts.c.plan_version.label("conflict_version"),
            )
            .select_from(plans.outerjoin(conflicts, conflicts.c.sku == plans.c.sku))
            .order_by(plans.c.sku)
            .limit(limit)
        )
        if after is not None:
            query = query.where(plans.c.sku > after)
        summaries = []
        for row in (await self.session.execute(query)).all():
            stored = (
                OpenConflict(conflict_from_row(row), row.conflict_version) if row.promotion_ids is not None else None
            )
            summaries.append(PlanSummary({name: row._mapping[name] for name in SUMMARY_COLUMNS}, stored))
        return summaries

    async def drivers_by_id(self, event_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        drivers = tables.drivers
        rows = (await self.session.execute(select(drivers).where(drivers.c.event_id.in_(list(event_ids))))).all()
        return {row.event_id: dict(row._mapping) for row in rows}

    async def drivers(self, *, sku: str | None, limit: int) -> list[Mapping[str, Any]]:
        """Every driver recorded, newest first; with `sku`, those that touched it."""
        drivers = tables.drivers
        query = select(drivers).order_by(drivers.c.received_at.desc(), drivers.c.event_id).limit(limit)
        if sku is not None:
            query = query.where(drivers.c.skus.contains([sku]))
        return [dict(row._mapping) for row in (await self.session.execute(query)).all()]

    async def known_promotion(self, promotion_id: str) -> Mapping[str, Any] | None:
        promotions = tables.promotions
        row = (await self.session.execute(select(promotions).where(promotions.c.promotion_id == promotion_id))).first()
        return dict(row._mapping) if row else None

    async def forecast_snapshots(self, skus: Sequence[str] | None) -> dict[str, dict[date, float]]:
        """Each SKU's forecast of every week as it stood when the week began."""
        snapshots = tables.forecast_snapshots
        query = select(snapshots.c.sku, snapshots.c.week_start, snapshots.c.forecast).order_by(snapshots.c.sku)
        if skus is not None:
            query = query.where(snapshots.c.sku.in_(list(skus)))
        found: dict[str, dict[date, float]] = defaultdict(dict)
        for row in (await self.session.execute(query)).all():
            found[row.sku][row.week_start] = row.forecast
        return found
