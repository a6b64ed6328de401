"""Recomputing plans: run the planning core for some SKUs, keep a plan only when it really changed, and
publish the revision and any capacity conflict through the outbox."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert

from services.planning_service import tables
from services.planning_service.domain import CapacityConflict, PlanException, SkuPlan, diff_plans, plan_many
from services.planning_service.inputs import StoredPlan, load_inputs, plan_weeks_json
from services.planning_service.settings import PlanningSettings
from shared.db import UnitOfWork
from shared.events import (
    CapacityConflictData,
    EventType,
    MpsRevisedData,
    ShortfallWeekData,
    WeekChangeData,
)

# Advisory locks: a per-event recompute holds the global lock shared plus its SKUs' locks; a full replan
# holds the global lock exclusively. Two writers never build a plan version from the same stored plan.
GLOBAL_LOCK = 0x504C414E
SKU_LOCK_SPACE = 0x504C41
# A first plan names every earlier event of its SKU as a driver; an event carries at most this many ids.
MAX_EVENT_DRIVERS = 100
SHORTFALL_DECIMALS = 6


@dataclass(frozen=True)
class RecomputeResult:
    planned: int
    revised: list[str]
    conflicts_detected: list[str]
    conflicts_resolved: list[str]


async def lock_skus(uow: UnitOfWork, skus: Collection[str]) -> None:
    await uow.session.execute(text("select pg_advisory_xact_lock_shared(:k)"), {"k": GLOBAL_LOCK})
    # One statement, locks taken in a fixed order: two writers of overlapping SKUs cannot deadlock.
    await uow.session.execute(
        text(
            "select count(pg_advisory_xact_lock(:space, hashtext(s)))"
            " from (select s from unnest(cast(:skus as text[])) as s order by s) as ordered"
        ),
        {"space": SKU_LOCK_SPACE, "skus": sorted(set(skus))},
    )


async def lock_all(uow: UnitOfWork) -> None:
    await uow.session.execute(text("select pg_advisory_xact_lock(:k)"), {"k": GLOBAL_LOCK})


async def recompute(
    uow: UnitOfWork,
    skus: Collection[str] | None,
    driver_ids: Sequence[str] | Mapping[str, Sequence[str]],
    settings: PlanningSettings,
) -> RecomputeResult:
    """Re-plan the SKUs (all when None); the caller holds the matching lock. SKUs without an item are
    skipped: their inputs are kept until the item master arrives."""
    horizon_start = settings.horizon_start()
    loaded = await load_inputs(uow.session, skus, horizon_start)
    if not loaded.inputs:
        return RecomputeResult(0, [], [], [])
    plans = plan_many(
        loaded.inputs,
        horizon_start,
        settings.planning_horizon_weeks,
        promotions=loaded.promotions,
        launches=loaded.launches,
        reference_baselines=loaded.reference_baselines,
        params=settings.planning_params(),
    )
    return await store_plans(uow, plans, loaded.stored, driver_ids, horizon_start)


def exceptions_json(exceptions: Sequence[PlanException]) -> list[dict[str, Any]]:
    return [
        {
            "week_start": e.week_start.isoformat(),
            "kind": e.kind,
            "planned_quantity": e.planned_quantity,
            "wanted_quantity": e.wanted_quantity,
            "message": e.message,
        }
        for e in exceptions
    ]


async def _earlier_drivers(uow: UnitOfWork, skus: list[str]) -> dict[str, list[str]]:
    """Events recorded for SKUs before they had a plan (e.g. a promotion that arrived before the item)."""
    if not skus:
        return {}
    D = tables.drivers
    rows = await uow.session.execute(
        select(D.c.event_id, D.c.skus).where(D.c.skus.overlap(skus)).order_by(D.c.received_at, D.c.event_id)
    )
    wanted = set(skus)
    found: dict[str, list[str]] = {}
    for row in rows.all():
        for sku in wanted.intersection(row.skus):
            found.setdefault(sku, []).append(row.event_id)
    return found


async def store_plans(
    uow: UnitOfWork,
    plans: Sequence[SkuPlan],
    stored: dict[str, StoredPlan],
    driver_ids: Sequence[str] | Mapping[str, Sequence[str]],
    horizon_start: date,
) -> RecomputeResult:
    """Save the plans that changed as new revisions, naming their drivers (the same for every SKU, or each
    SKU's own), publish the revisions and the conflicts that appeared or went away."""
    PL, REV, SNAP = tables.plans, tables.plan_revisions, tables.forecast_snapshots
    now = datetime.now(UTC)
    earlier = await _earlier_drivers(uow, [p.sku for p in plans if p.sku not in stored])
    plan_rows: list[dict[str, Any]] = []
    revision_rows: list[dict[str, Any]] = []
    exception_updates: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    for plan in plans:
        old = stored.get(plan.sku)
        changes = diff_plans(old.plan if old else None, plan)
        exceptions = exceptions_json(plan.exceptions)
        if not changes:
            assert old is not None  # a plan without a predecessor always differs (every week is new)
            versions[plan.sku] = old.plan_version
            if exceptions != old.exceptions:
                exception_updates.append({"p_sku": plan.sku, "p_exceptions": exceptions})
            continue
        version = old.plan_version + 1 if old else 1
        versions[plan.sku] = version
        own = driver_ids.get(plan.sku, ()) if isinstance(driver_ids, Mapping) else driver_ids
        drivers = list(dict.fromkeys([*own, *earlier.get(plan.sku, ())]))
        plan_rows.append(
            {
                "sku": plan.sku,
                "plan_version": version,
                "horizon_start": horizon_start,
                "generated_at": now,
                "weeks": plan_weeks_json(plan),
                "exceptions": exceptions,
                "total_forecast": sum(w.forecast for w in plan.weeks),
                "total_mps": sum(w.mps_quantity for w in plan.weeks),
                "shortfall_weeks": sum(1 for w in plan.weeks if w.capacity_shortfall > 0),
            }
        )
        changed = [
            {"week_start": c.week_start.isoformat(), "field": c.field, "before": c.before, "after": c.after}
            for c in changes
        ]
        revision_rows.append(
            {
                "sku": plan.sku,
                "plan_version": version,
                "generated_at": now,
                "driver_event_ids": drivers,
                "changes": changed,
            }
        )
        uow.publish(
            EventType.MPS_REVISED,
            key=plan.sku,
            subject=plan.sku,
            data=MpsRevisedData(
                sku=plan.sku,
                plan_version=version,
                changed_weeks=[WeekChangeData.model_validate(c) for c in changed],
                driver_event_ids=drivers[:MAX_EVENT_DRIVERS],
            ),
        )
    if plan_rows:
        statement = insert(PL)
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[PL.c.sku],
                set_={c.name: statement.excluded[c.name] for c in PL.columns if c.name != "sku"},
            ),
            plan_rows,
        )
        await uow.session.execute(insert(REV), revision_rows)
    if exception_updates:
        await uow.session.execute(
            update(PL).where(PL.c.sku == bindparam("p_sku")).values(exceptions=bindparam("p_exceptions")),
            exception_updates,
        )
    # The first forecast of a week that a SKU gets is what its accuracy is measured against.
    await uow.session.execute(
        insert(SNAP).on_conflict_do_nothing(),
        [{"sku": p.sku, "week_start": horizon_start, "forecast": p.weeks[0].forecast} for p in plans],
    )
    detected, resolved = await _sync_conflicts(uow, plans, versions, now)
    return RecomputeResult(len(plans), [r["sku"] for r in plan_rows], detected, resolved)


def _conflict_key(promotion_ids: Sequence[str], weeks: Sequence[tuple[str, float]]) -> tuple[Any, ...]:
    return (
        tuple(sorted(promotion_ids)),
        tuple((w, round(s, SHORTFALL_DECIMALS)) for w, s in weeks),
    )


def conflict_data(conflict: CapacityConflict, plan_version: int | None) -> CapacityConflictData:
    return CapacityConflictData(
        sku=conflict.sku,
        promotion_ids=list(conflict.promotion_ids),
        weeks=[ShortfallWeekData(week_start=w, shortfall=s) for w, s in conflict.weeks],
        total_shortfall=conflict.total_shortfall,
        plan_version=plan_version,
    )


async def _sync_conflicts(
    uow: UnitOfWork, plans: Sequence[SkuPlan], versions: dict[str, int], now: datetime
) -> tuple[list[str], list[str]]:
    """Publish `detected` when a SKU's conflict appears or changes, `resolved` when it disappears (and for
    promotions that no longer take part in a conflict that goes on)."""
    C = tables.conflicts
    skus = [p.sku for p in plans]
    rows = (await uow.session.execute(select(C).where(C.c.sku.in_(skus)))).all()
    open_conflicts = {r.sku: r for r in rows}
    detected: list[str] = []
    resolved: list[str] = []
    for plan in plans:
        current = plan.conflicts[0] if plan.conflicts else None
        previous = open_conflicts.get(plan.sku)
        version = versions[plan.sku]
        if current is None:
            if previous is not None:
                await uow.session.execute(delete(C).where(C.c.sku == plan.sku))
                _publish_resolved(uow, plan.sku, list(previous.promotion_ids), version)
                resolved.append(plan.sku)
            continue
        weeks = [(w.isoformat(), s) for w, s in current.weeks]
        if previous is not None and _conflict_key(
            previous.promotion_ids, [(w["week_start"], w["shortfall"]) for w in previous.weeks]
        ) == _conflict_key(current.promotion_ids, weeks):
            continue
        statement = insert(C).values(
            sku=plan.sku,
            promotion_ids=list(current.promotion_ids),
            weeks=[{"week_start": w, "shortfall": s} for w, s in weeks],
            total_shortfall=current.total_shortfall,
            plan_version=version,
            detected_at=now,
        )
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[C.c.sku],
                set_={k: statement.excluded[k] for k in ("promotion_ids", "weeks", "total_shortfall", "plan_version")},
            )
        )
        uow.publish(
            EventType.CAPACITY_CONFLICT_DETECTED,
            key=plan.sku,
            subject=plan.sku,
            data=conflict_data(current, version),
        )
        detected.append(plan.sku)
        dropped = sorted(set(previous.promotion_ids) - set(current.promotion_ids)) if previous else []
        if dropped:
            _publish_resolved(uow, plan.sku, dropped, version)
    return detected, resolved


def _publish_resolved(uow: UnitOfWork, sku: str, promotion_ids: list[str], version: int) -> None:
    uow.publish(
        EventType.CAPACITY_CONFLICT_RESOLVED,
        key=sku,
        subject=sku,
        data=CapacityConflictData(sku=sku, promotion_ids=promotion_ids, plan_version=version),
    )
