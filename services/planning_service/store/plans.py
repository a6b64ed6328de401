"""Writing plans: each SKU's current plan, its revisions, forecast snapshots, the open capacity conflicts as
last announced, and the week the plans were rolled to."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import CapacityConflict, SkuPlan
from services.planning_service.store.inputs import plan_weeks_json

ROLLED_TO = "horizon_start"


@dataclass(frozen=True)
class PlanRevision:
    """A new version of a SKU's plan, the events that moved it and which week fields changed."""

    plan: SkuPlan
    plan_version: int
    exceptions: list[dict[str, Any]]
    driver_event_ids: list[str]
    changes: list[dict[str, Any]]


def conflict_from_row(row: Any) -> CapacityConflict:
    weeks = tuple((date.fromisoformat(w["week_start"]), float(w["shortfall"])) for w in row.weeks)
    return CapacityConflict(row.sku, tuple(row.promotion_ids), weeks, row.total_shortfall)


class PlanSql:
    session: AsyncSession

    async def earlier_drivers(self, skus: Collection[str]) -> dict[str, list[str]]:
        """Events recorded for SKUs before they had a plan (e.g. a promotion that arrived before the item),
        oldest first."""
        if not skus:
            return {}
        drivers = tables.drivers
        rows = await self.session.execute(
            select(drivers.c.event_id, drivers.c.skus)
            .where(drivers.c.skus.overlap(list(skus)))
            .order_by(drivers.c.received_at, drivers.c.event_id)
        )
        wanted = set(skus)
        found: dict[str, list[str]] = {}
        for row in rows.all():
            for sku in wanted.intersection(row.skus):
                found.setdefault(sku, []).append(row.event_id)
        return found

    async def save_revisions(
        self, revisions: Sequence[PlanRevision], *, horizon_start: date, generated_at: datetime
    ) -> None:
        """Each revision becomes its SKU's current plan and one row of its history."""
        if not revisions:
            return
        plans = tables.plans
        plan_rows = [
            {
                "sku": r.plan.sku,
                "plan_version": r.plan_version,
                "horizon_start": horizon_start,
                "generated_at": generated_at,
                "weeks": plan_weeks_json(r.plan),
                "exceptions": r.exceptions,
                "total_forecast": sum(w.forecast for w in r.plan.weeks),
                "total_mps": sum(w.mps_quantity for w in r.plan.weeks),
                "shortfall_weeks": sum(1 for w in r.plan.weeks if w.capacity_shortfall > 0),
            }
            for r in revisions
        ]
        statement = insert(plans)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[plans.c.sku],
                set_={c.name: statement.excluded[c.name] for c in plans.columns if c.name != "sku"},
            ),
            plan_rows,
        )
        revision_rows = [
            {
                "sku": r.plan.sku,
                "plan_version": r.plan_version,
                "generated_at": generated_at,
                "driver_event_ids": r.driver_event_ids,
                "changes": r.changes,
            }
            for r in revisions
        ]
        await self.session.execute(insert(tables.plan_revisions), revision_rows)

    async def save_exceptions(self, exceptions: Mapping[str, list[dict[str, Any]]]) -> None:
        """New exceptions of plans that did not change otherwise (no new version)."""
        if not exceptions:
            return
        plans = tables.plans
        await self.session.execute(
            update(plans).where(plans.c.sku == bindparam("p_sku")).values(exceptions=bindparam("p_exceptions")),
            [{"p_sku": sku, "p_exceptions": found} for sku, found in exceptions.items()],
        )

    async def snapshot_forecasts(self, week_start: date, forecasts: Mapping[str, float]) -> None:
        """The first forecast of a week that a SKU gets is kept: what its accuracy is measured against."""
        await self.session.execute(
            insert(tables.forecast_snapshots).on_conflict_do_nothing(),
            [{"sku": sku, "week_start": week_start, "forecast": forecast} for sku, forecast in forecasts.items()],
        )

    async def open_conflicts(self, skus: Collection[str]) -> dict[str, CapacityConflict]:
        conflicts = tables.conflicts
        rows = (await self.session.execute(select(conflicts).where(conflicts.c.sku.in_(list(skus))))).all()
        return {row.sku: conflict_from_row(row) for row in rows}

    async def save_conflict(self, conflict: CapacityConflict, *, plan_version: int, detected_at: datetime) -> None:
        conflicts = tables.conflicts
        statement = insert(conflicts).values(
            sku=conflict.sku,
            promotion_ids=list(conflict.promotion_ids),
            weeks=[{"week_start": w.isoformat(), "shortfall": s} for w, s in conflict.weeks],
            total_shortfall=conflict.total_shortfall,
            plan_version=plan_version,
            detected_at=detected_at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[conflicts.c.sku],
                set_={k: statement.excluded[k] for k in ("promotion_ids", "weeks", "total_shortfall", "plan_version")},
            )
        )

    async def delete_conflict(self, sku: str) -> None:
        await self.session.execute(delete(tables.conflicts).where(tables.conflicts.c.sku == sku))

    async def rolled_to(self) -> date | None:
        """The ISO week the plans were last rolled to; locked until the commit, so one instance rolls."""
        state = tables.planning_state
        query = select(state.c.value).where(state.c.key == ROLLED_TO).with_for_update()
        row = (await self.session.execute(query)).first()
        return date.fromisoformat(row.value) if row else None

    async def set_rolled_to(self, week_start: date) -> None:
        state = tables.planning_state
        statement = insert(state).values(key=ROLLED_TO, value=week_start.isoformat())
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[state.c.key], set_={"value": statement.excluded.value})
        )
