"""Read side of the planning API: items, plans with their drivers, revision history, accuracy, scenarios."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import PlanWeek, accuracy, diff_plans, plan_many
from services.planning_service.inputs import (
    PlanningInputs,
    load_inputs,
    plan_from_json,
    promotion_from_data,
    promotion_skus,
    weekly_history,
)
from services.planning_service.recompute import exceptions_json
from services.planning_service.schemas import (
    AccuracyRead,
    ConflictRead,
    DriverRef,
    ItemRead,
    MpsRead,
    MpsSummary,
    MpsWeek,
    PlanExceptionRead,
    RevisionRead,
    ScenarioPlan,
    ScenarioPromotion,
    ScenarioResult,
    ShortfallWeek,
    WeekChangeRead,
)
from services.planning_service.settings import PlanningSettings
from shared.events import PromotionData

MAX_DRIVERS = 200

# ---------------------------------------------------------------- items


async def get_item(session: AsyncSession, sku: str) -> ItemRead | None:
    IT = tables.items
    row = (await session.execute(select(IT).where(IT.c.sku == sku))).first()
    return ItemRead.model_validate(dict(row._mapping)) if row else None


async def list_items(session: AsyncSession, *, limit: int, after: str | None) -> list[ItemRead]:
    IT = tables.items
    query = select(IT).order_by(IT.c.sku).limit(limit)
    if after is not None:
        query = query.where(IT.c.sku > after)
    return [ItemRead.model_validate(dict(r._mapping)) for r in (await session.execute(query)).all()]


# ---------------------------------------------------------------- plans


def _week(week: PlanWeek, changed_by: Sequence[str] = ()) -> MpsWeek:
    return MpsWeek.model_validate({**week._asdict(), "changed_by": list(changed_by)})


def _conflict(row: Any) -> ConflictRead | None:
    if row is None or row.promotion_ids is None:
        return None
    return ConflictRead(
        sku=row.sku,
        promotion_ids=list(row.promotion_ids),
        weeks=row.weeks,
        total_shortfall=row.total_shortfall,
        plan_version=row.plan_version,
    )


async def _drivers(session: AsyncSession, ids: Sequence[str]) -> list[DriverRef]:
    D = tables.drivers
    rows = (await session.execute(select(D).where(D.c.event_id.in_(list(ids))))).all()
    by_id = {r.event_id: r for r in rows}
    return [DriverRef(event_id=i, type=by_id[i].event_type, summary=by_id[i].summary) for i in ids if i in by_id]


async def get_mps(session: AsyncSession, sku: str) -> MpsRead | None:
    PL, REV, C = tables.plans, tables.plan_revisions, tables.conflicts
    row = (await session.execute(select(PL).where(PL.c.sku == sku))).first()
    if row is None:
        return None
    revisions = (
        await session.execute(
            # Only the revisions of the plan just read: a revision committed in between belongs to a newer plan.
            select(REV.c.driver_event_ids, REV.c.changes)
            .where(REV.c.sku == sku, REV.c.plan_version <= row.plan_version)
            .order_by(REV.c.plan_version.desc())
        )
    ).all()
    changed_by: dict[str, list[str]] = defaultdict(list)
    newest_first: list[str] = []
    for revision in revisions:
        newest_first.extend(revision.driver_event_ids)
        for week in {c["week_start"] for c in revision.changes}:
            changed_by[week].extend(revision.driver_event_ids)
    driver_ids = list(dict.fromkeys(newest_first))[:MAX_DRIVERS]
    conflict = (await session.execute(select(C).where(C.c.sku == sku))).first()
    plan = plan_from_json(sku, row.weeks)
    return MpsRead(
        sku=sku,
        plan_version=row.plan_version,
        generated_at=row.generated_at,
        weeks=[_week(w, list(dict.fromkeys(changed_by.get(w.week_start.isoformat(), ())))) for w in plan.weeks],
        drivers=await _drivers(session, driver_ids),
        exceptions=[PlanExceptionRead.model_validate(e) for e in row.exceptions],
        conflict=_conflict(conflict),
    )


async def list_mps(session: AsyncSession, *, limit: int, after: str | None) -> list[MpsSummary]:
    PL, C = tables.plans, tables.conflicts
    query = (
        select(
            PL.c.sku,
            PL.c.plan_version,
            PL.c.generated_at,
            PL.c.total_forecast,
            PL.c.total_mps,
            PL.c.shortfall_weeks,
            C.c.promotion_ids,
            C.c.weeks,
            C.c.total_shortfall,
            C.c.plan_version.label("conflict_version"),
        )
        .select_from(PL.outerjoin(C, C.c.sku == PL.c.sku))
        .order_by(PL.c.sku)
        .limit(limit)
    )
    if after is not None:
        query = query.where(PL.c.sku > after)
    summaries = []
    for r in (await session.execute(query)).all():
        open_conflict = None
        if r.promotion_ids is not None:
            open_conflict = ConflictRead(
                sku=r.sku,
                promotion_ids=list(r.promotion_ids),
                weeks=r.weeks,
                total_shortfall=r.total_shortfall,
                plan_version=r.conflict_version,
            )
        summaries.append(
            MpsSummary(
                sku=r.sku,
                plan_version=r.plan_version,
                generated_at=r.generated_at,
                total_forecast=r.total_forecast,
                total_mps=r.total_mps,
                shortfall_weeks=r.shortfall_weeks,
                open_conflict=open_conflict,
            )
        )
    return summaries


async def revisions(session: AsyncSession, sku: str, *, week_start: date | None, limit: int) -> list[RevisionRead]:
    """Revisions of a SKU's plan, newest first; with `week_start`, only those that changed that week."""
    REV = tables.plan_revisions
    rows = (await session.execute(select(REV).where(REV.c.sku == sku).order_by(REV.c.plan_version.desc()))).all()
    found: list[tuple[Any, list[dict[str, Any]]]] = []
    for row in rows:
        changes = row.changes
        if week_start is not None:
            changes = [c for c in changes if c["week_start"] == week_start.isoformat()]
            if not changes:
                continue
        found.append((row, changes))
        if len(found) >= limit:
            break
    all_ids = list(dict.fromkeys(i for row, _ in found for i in row.driver_event_ids))
    refs = {d.event_id: d for d in await _drivers(session, all_ids)}
    return [
        RevisionRead(
            plan_version=row.plan_version,
            generated_at=row.generated_at,
            drivers=[refs[i] for i in row.driver_event_ids if i in refs],
            changes=[WeekChangeRead.model_validate(c) for c in changes],
        )
        for row, changes in found
    ]


# ---------------------------------------------------------------- accuracy


async def forecast_accuracy(
    session: AsyncSession, skus: list[str] | None, settings: PlanningSettings
) -> list[AccuracyRead]:
    """Each week's forecast as it stood when the week began against the units ordered in that week; only
    complete weeks count."""
    SNAP = tables.forecast_snapshots
    query = select(SNAP.c.sku, SNAP.c.week_start, SNAP.c.forecast).order_by(SNAP.c.sku)
    if skus is not None:
        query = query.where(SNAP.c.sku.in_(skus))
    snapshots: dict[str, dict[date, float]] = defaultdict(dict)
    for row in (await session.execute(query)).all():
        snapshots[row.sku][row.week_start] = row.forecast
    current_week = settings.horizon_start()
    actuals = await weekly_history(session, list(snapshots), current_week, until=current_week)
    results = []
    for sku in sorted(snapshots):
        measured = accuracy(snapshots[sku], actuals.get(sku, {}))
        results.append(
            AccuracyRead(
                sku=sku,
                weeks_compared=measured.weeks_compared,
                wmape=measured.wmape,
                bias=measured.bias,
                mae=measured.mae,
            )
        )
    return results


# ---------------------------------------------------------------- scenarios


# Scenarios are planned on threads of their own, a few at a time: the planning core is CPU work, and on the
# event loop one large scenario would hold back every other request of the service.
_SCENARIO_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scenario")


async def scenario(session: AsyncSession, proposed: Sequence[ScenarioPromotion], settings: PlanningSettings) -> bytes:
    """The plans of every SKU the proposed promotions touch, as they would be with them (a `ScenarioResult`,
    as JSON, built off the event loop); writes nothing.

    A proposed promotion with the id of a known one replaces it, as a revision would.
    """
    data = [PromotionData.model_validate(p.model_dump(mode="json")) for p in proposed]
    skus = set().union(*(promotion_skus(d) for d in data))
    horizon_start = settings.horizon_start()
    loaded = await load_inputs(session, skus, horizon_start)
    # Nothing is written: end the transaction now, so the connection is not held while the plans are computed.
    await session.rollback()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_SCENARIO_THREADS, _scenario_json, data, skus, loaded, horizon_start, settings)


def _scenario_json(
    data: Sequence[PromotionData],
    skus: set[str],
    loaded: PlanningInputs,
    horizon_start: date,
    settings: PlanningSettings,
) -> bytes:
    return _plan_scenario(data, skus, loaded, horizon_start, settings).model_dump_json().encode()


def _plan_scenario(
    data: Sequence[PromotionData],
    skus: set[str],
    loaded: PlanningInputs,
    horizon_start: date,
    settings: PlanningSettings,
) -> ScenarioResult:
    proposed_ids = {d.promotion_id for d in data}
    promotions = [p for p in loaded.promotions if p.promotion_id not in proposed_ids]
    promotions += [promotion_from_data(d) for d in data]
    plans = plan_many(
        loaded.inputs,
        horizon_start,
        settings.planning_horizon_weeks,
        promotions=promotions,
        launches=loaded.launches,
        reference_baselines=loaded.reference_baselines,
        params=settings.planning_params(),
    )
    results, conflicts = [], []
    for plan in plans:
        current = loaded.stored.get(plan.sku)
        changes = diff_plans(current.plan if current else None, plan)
        results.append(
            ScenarioPlan(
                sku=plan.sku,
                current_plan_version=current.plan_version if current else None,
                weeks=[_week(w) for w in plan.weeks],
                exceptions=[PlanExceptionRead.model_validate(e) for e in exceptions_json(plan.exceptions)],
                changes=[
                    WeekChangeRead(week_start=c.week_start, field=c.field, before=c.before, after=c.after)
                    for c in changes
                ],
            )
        )
        for conflict in plan.conflicts:
            conflicts.append(
                ConflictRead(
                    sku=conflict.sku,
                    promotion_ids=list(conflict.promotion_ids),
                    weeks=[ShortfallWeek(week_start=w, shortfall=s) for w, s in conflict.weeks],
                    total_shortfall=conflict.total_shortfall,
                )
            )
    planned = {p.sku for p in plans}
    return ScenarioResult(plans=results, conflicts=conflicts, skus_without_item=sorted(skus - planned))
