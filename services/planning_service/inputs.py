"""Loading the planning core's inputs from planning's own tables (items, history, signals, promotions)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import (
    Cannibalization,
    Item,
    Launch,
    PlanWeek,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    Spike,
    baseline_level,
)
from shared.events import LaunchData, PromotionData

# The smoothed baseline gives weeks older than three years no weight (see domain.forecast).
HISTORY_WEEKS = 157
# Sensing looks at most a few weeks back from the horizon; older spikes cannot move any week.
SPIKE_LOOKBACK_DAYS = 8 * 7


@dataclass(frozen=True)
class StoredPlan:
    sku: str
    plan_version: int
    plan: SkuPlan
    exceptions: list[dict[str, Any]]


@dataclass
class PlanningInputs:
    """What `plan_many` needs for a set of SKUs, plus the plans currently stored for them."""

    inputs: list[SkuInputs] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    reference_baselines: dict[str, float] = field(default_factory=dict)
    stored: dict[str, StoredPlan] = field(default_factory=dict)


def item_from_row(row: Any) -> Item:
    return Item(
        sku=row.sku,
        name=row.name,
        on_hand=row.on_hand,
        safety_stock=row.safety_stock,
        lot_size=row.lot_size,
        weekly_capacity=row.weekly_capacity,
        frozen_weeks=row.frozen_weeks,
        baseline_weekly_demand=row.baseline_weekly_demand,
    )


def promotion_from_data(data: PromotionData, *, cancelled: bool = False) -> Promotion:
    return Promotion(
        promotion_id=data.promotion_id,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        items=tuple(PromotionItem(i.sku, i.uplift_pct) for i in data.items),
        post_promo_dip_pct=data.post_promo_dip_pct,
        post_promo_dip_weeks=data.post_promo_dip_weeks,
        cannibalized=tuple(Cannibalization(c.sku, c.pct) for c in data.cannibalized),
        cancelled=cancelled,
    )


def promotion_skus(promotion: Promotion | PromotionData) -> set[str]:
    return {i.sku for i in promotion.items} | {c.sku for c in promotion.cannibalized}


def plan_from_json(sku: str, weeks: list[dict[str, Any]]) -> SkuPlan:
    return SkuPlan(
        sku,
        tuple(PlanWeek(**{**w, "week_start": date.fromisoformat(w["week_start"])}) for w in weeks),
    )


def plan_weeks_json(plan: SkuPlan) -> list[dict[str, Any]]:
    return [{**w._asdict(), "week_start": w.week_start.isoformat()} for w in plan.weeks]


def _in(column: Any, skus: Collection[str] | None) -> Any:
    return True if skus is None else column.in_(list(skus))


async def active_promotions(session: AsyncSession, skus: Collection[str] | None) -> list[Promotion]:
    P = tables.promotions
    rows = (await session.execute(select(P.c.body).where(P.c.status != "cancelled"))).all()
    promotions = [promotion_from_data(PromotionData.model_validate(r.body)) for r in rows]
    if skus is None:
        return promotions
    wanted = set(skus)
    return [p for p in promotions if promotion_skus(p) & wanted]


async def weekly_history(
    session: AsyncSession, skus: Collection[str] | None, horizon_start: date, *, until: date | None = None
) -> dict[str, dict[date, float]]:
    """Units ordered per SKU and ISO week (keyed by Monday), summed over the stored daily totals."""
    V = tables.daily_volumes
    week = cast(func.date_trunc("week", V.c.day), Date).label("week")
    query = (
        select(V.c.sku, week, func.sum(V.c.units_ordered).label("units"))
        .where(_in(V.c.sku, skus), V.c.day >= horizon_start - timedelta(weeks=HISTORY_WEEKS))
        .group_by(V.c.sku, week)
    )
    if until is not None:
        query = query.where(V.c.day < until)
    history: dict[str, dict[date, float]] = defaultdict(dict)
    for row in (await session.execute(query)).all():
        history[row.sku][row.week] = float(row.units)
    return history


async def load_inputs(session: AsyncSession, skus: Collection[str] | None, horizon_start: date) -> PlanningInputs:
    """Inputs of the given SKUs (all SKUs with an item when None); SKUs without an item are left out."""
    IT, S, R, L = tables.items, tables.spikes, tables.returns, tables.launches
    items = [item_from_row(r) for r in (await session.execute(select(IT).where(_in(IT.c.sku, skus)))).all()]
    if not items:
        return PlanningInputs()
    planned = [i.sku for i in items] if skus is not None else None
    history = await weekly_history(session, planned, horizon_start)
    spikes: dict[str, list[Spike]] = defaultdict(list)
    spike_rows = await session.execute(
        select(S).where(
            _in(S.c.sku, planned),
            S.c.status == "detected",
            S.c.day >= horizon_start - timedelta(days=SPIKE_LOOKBACK_DAYS),
        )
    )
    for row in spike_rows.all():
        spikes[row.sku].append(
            Spike(row.sku, row.day, row.units, row.baseline, row.explained_by_promotion_id is not None)
        )
    receipts: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    replacements: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    return_rows = await session.execute(select(R).where(_in(R.c.sku, planned), R.c.returned_on >= horizon_start))
    for row in return_rows.all():
        if row.condition == "resellable":
            receipts[row.sku][row.returned_on] += row.quantity
        if row.resolution == "replacement":
            replacements[row.sku][row.returned_on] += row.quantity
    stored = await stored_plans(session, planned)
    result = PlanningInputs(stored=stored)
    for item in items:
        previous = stored.get(item.sku)
        result.inputs.append(
            SkuInputs(
                item=item,
                history=history.get(item.sku, {}),
                spikes=tuple(spikes.get(item.sku, ())),
                resellable_returns=dict(receipts.get(item.sku, {})),
                replacements=dict(replacements.get(item.sku, {})),
                previous_mps=({w.week_start: w.mps_quantity for w in previous.plan.weeks} if previous else None),
            )
        )
    result.promotions = await active_promotions(session, planned)
    launch_rows = (await session.execute(select(L.c.body).where(_in(L.c.sku, planned)))).all()
    result.launches = [_launch(LaunchData.model_validate(r.body)) for r in launch_rows]
    result.reference_baselines = await _reference_baselines(
        session, result.launches, {i.sku for i in items}, horizon_start
    )
    return result


def _launch(data: LaunchData) -> Launch:
    return Launch(data.launch_id, data.sku, data.launch_on, data.reference_sku, data.scale_pct, data.ramp_weeks)


async def _reference_baselines(
    session: AsyncSession, launches: list[Launch], planned: set[str], horizon_start: date
) -> dict[str, float]:
    """Baselines of launch reference SKUs that are not planned in this batch (a launched SKU's own event
    must not re-plan its reference)."""
    missing = {launch.reference_sku for launch in launches} - planned
    if not missing:
        return {}
    IT = tables.items
    rows = (await session.execute(select(IT).where(IT.c.sku.in_(sorted(missing))))).all()
    items = {r.sku: item_from_row(r) for r in rows}
    history = await weekly_history(session, sorted(missing), horizon_start)
    promotions = await active_promotions(session, missing)
    baselines: dict[str, float] = {}
    for sku in missing:
        if sku not in items and sku not in history:
            continue  # unknown reference: the core plans 0 and raises an exception for the planner
        item = items.get(sku) or Item(sku=sku, name=sku, on_hand=0, safety_stock=0)
        baselines[sku] = baseline_level(SkuInputs(item, history.get(sku, {})), horizon_start, promotions)
    return baselines


async def stored_plans(session: AsyncSession, skus: Collection[str] | None) -> dict[str, StoredPlan]:
    PL = tables.plans
    query = select(PL.c.sku, PL.c.plan_version, PL.c.weeks, PL.c.exceptions).where(_in(PL.c.sku, skus))
    rows = (await session.execute(query)).all()
    return {r.sku: StoredPlan(r.sku, r.plan_version, plan_from_json(r.sku, r.weeks), r.exceptions) for r in rows}
