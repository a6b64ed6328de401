"""Read side of the planning API: items, plans with their drivers, revision history, accuracy, scenarios.

Like every read model, these read through the store and only shape its records into response models.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import Any

from services.planning_service.domain import CapacityConflict, PlanWeek, SkuInputs, accuracy, diff_plans, plan_many
from services.planning_service.domain.orders import UNKNOWN_ACCOUNT_TIER, Tier
from services.planning_service.domain.promises import PromiseRequest, Supply, atp_table
from services.planning_service.domain.promises import check_promise as domain_check_promise
from services.planning_service.schemas import (
    AccuracyRead,
    AllocationPolicyRead,
    AtpRead,
    AtpWeekRead,
    BacktestRead,
    ConflictRead,
    DriverRef,
    ErrorRead,
    ItemRead,
    MpsRead,
    MpsSummary,
    MpsWeek,
    PlanExceptionRead,
    PromiseCheckRead,
    PromiseCheckRequest,
    RevisionRead,
    ScenarioItemChange,
    ScenarioPlan,
    ScenarioPromotion,
    ScenarioResult,
    ShortfallWeek,
    WeekChangeRead,
    WeekDrawRead,
)
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import (
    FittingInputs,
    OpenConflict,
    PlanningInputs,
    SqlStore,
    StoredPolicy,
    exceptions_json,
    promotion_from_data,
    promotion_skus,
)
from shared.events import PromotionData

MAX_DRIVERS = 200

# ---------------------------------------------------------------- items


async def get_item(store: SqlStore, sku: str) -> ItemRead | None:
    columns = await store.item_columns(sku)
    return ItemRead.model_validate(columns) if columns else None


async def list_items(store: SqlStore, *, limit: int, after: str | None) -> list[ItemRead]:
    return [ItemRead.model_validate(columns) for columns in await store.items_page(limit=limit, after=after)]


def item_read(columns: Mapping[str, Any]) -> ItemRead:
    return ItemRead.model_validate(columns)


# ---------------------------------------------------------------- plans


def _week(week: PlanWeek, changed_by: Sequence[str] = ()) -> MpsWeek:
    return MpsWeek.model_validate({**week._asdict(), "changed_by": list(changed_by)})


def _conflict(conflict: CapacityConflict, plan_version: int | None = None) -> ConflictRead:
    return ConflictRead(
        sku=conflict.sku,
        promotion_ids=list(conflict.promotion_ids),
        weeks=[ShortfallWeek(week_start=w, shortfall=s) for w, s in conflict.weeks],
        total_shortfall=conflict.total_shortfall,
        plan_version=plan_version,
    )


def _open_conflict(stored: OpenConflict | None) -> ConflictRead | None:
    return _conflict(stored.conflict, stored.plan_version) if stored else None


async def _drivers(store: SqlStore, ids: Sequence[str]) -> list[DriverRef]:
    by_id = await store.drivers_by_id(ids)
    return [DriverRef(event_id=i, type=by_id[i]["event_type"], summary=by_id[i]["summary"]) for i in ids if i in by_id]


async def get_mps(store: SqlStore, sku: str) -> MpsRead | None:
    current = await store.current_plan(sku)
    if current is None:
        return None
    changed_by: dict[str, list[str]] = defaultdict(list)
    newest_first: list[str] = []
    for revision in await store.revisions(sku, up_to=current.plan_version):
        newest_first.extend(revision.driver_event_ids)
        for week in {c["week_start"] for c in revision.changes}:
            changed_by[week].extend(revision.driver_event_ids)
    driver_ids = list(dict.fromkeys(newest_first))[:MAX_DRIVERS]
    return MpsRead(
        sku=sku,
        plan_version=current.plan_version,
        generated_at=current.generated_at,
        weeks=[_week(w, list(dict.fromkeys(changed_by.get(w.week_start.isoformat(), ())))) for w in current.plan.weeks],
        drivers=await _drivers(store, driver_ids),
        exceptions=[PlanExceptionRead.model_validate(e) for e in current.exceptions],
        conflict=_open_conflict(await store.open_conflict(sku)),
    )


async def list_mps(store: SqlStore, *, limit: int, after: str | None) -> list[MpsSummary]:
    return [
        MpsSummary(**summary.columns, open_conflict=_open_conflict(summary.open_conflict))
        for summary in await store.plan_summaries(limit=limit, after=after)
    ]


async def revisions(store: SqlStore, sku: str, *, week_start: date | None, limit: int) -> list[RevisionRead]:
    """Revisions of a SKU's plan, newest first; with `week_start`, only those that changed that week."""
    found = []
    for revision in await store.revisions(sku):
        changes = revision.changes
        if week_start is not None:
            changes = [c for c in changes if c["week_start"] == week_start.isoformat()]
            if not changes:
                continue
        found.append((revision, changes))
        if len(found) >= limit:
            break
    all_ids = list(dict.fromkeys(i for revision, _ in found for i in revision.driver_event_ids))
    refs = {d.event_id: d for d in await _drivers(store, all_ids)}
    return [
        RevisionRead(
            plan_version=revision.plan_version,
            generated_at=revision.generated_at,
            drivers=[refs[i] for i in revision.driver_event_ids if i in refs],
            changes=[WeekChangeRead.model_validate(c) for c in changes],
        )
        for revision, changes in found
    ]


async def list_drivers(store: SqlStore, *, sku: str | None, limit: int) -> list[Mapping[str, Any]]:
    return await store.drivers(sku=sku, limit=limit)


async def get_known_promotion(store: SqlStore, promotion_id: str) -> Mapping[str, Any] | None:
    return await store.known_promotion(promotion_id)


# ---------------------------------------------------------------- accuracy


# The track record of one SKU replays its history from this many origins, this many weeks apart, each
# forecasting this many weeks: a quarter of weeks scored, about a third of a second with three years of history.
BACKTEST_ORIGINS = 6
BACKTEST_STEP_WEEKS = 2
BACKTEST_LEAD_WEEKS = 4


async def forecast_accuracy(store: SqlStore, skus: list[str] | None, settings: PlanningSettings) -> list[AccuracyRead]:
    """Each week's forecast as it stood when the week began against the units ordered in that week; only
    complete weeks count. Asked for one SKU, also its backtest on the stored history (`backtest`)."""
    if skus is not None and len(skus) == 1:
        return await _one_sku_accuracy(store, skus[0], settings)
    return await _snapshot_accuracy(store, skus, settings)


async def _one_sku_accuracy(store: SqlStore, sku: str, settings: PlanningSettings) -> list[AccuracyRead]:
    measured = await _snapshot_accuracy(store, [sku], settings)
    found = measured[0] if measured else AccuracyRead(sku=sku, weeks_compared=0, wmape=None, bias=None, mae=None)
    horizon_start = settings.horizon_start()
    loaded = await store.fitting_inputs([sku], horizon_start)
    await store.end_read()
    if loaded.inputs:
        loop = asyncio.get_running_loop()
        found.backtest = await loop.run_in_executor(_SCENARIO_THREADS, _backtest, loaded, horizon_start, settings)
    return [found]


def _error(tally: Any) -> ErrorRead:
    return ErrorRead(weeks_compared=tally.weeks, wmape=tally.wmape, bias=tally.bias, mae=tally.mae)


def _backtest(loaded: FittingInputs, horizon_start: date, settings: PlanningSettings) -> BacktestRead | None:
    from services.planning_service.domain import track_record

    track = track_record.backtest(
        loaded.inputs,
        horizon_start,
        loaded.promotions,
        origins=BACKTEST_ORIGINS,
        step_weeks=BACKTEST_STEP_WEEKS,
        lead_weeks=BACKTEST_LEAD_WEEKS,
        params=settings.planning_params(),
    )[0]
    stored = loaded.stored.get(track.sku)
    ours = track.tally(track_record.SALESOPS)
    return BacktestRead(
        **_error(ours).model_dump(),
        demand_class=track.demand_class,
        origins=track.origins,
        step_weeks=BACKTEST_STEP_WEEKS,
        lead_weeks=BACKTEST_LEAD_WEEKS,
        model=stored.model.spec if stored and stored.model else None,
        by_week_kind={
            kind: _error(track.tally(track_record.SALESOPS, kind))
            for kind in track_record.WEEK_KINDS
            if track.tally(track_record.SALESOPS, kind).weeks
        },
        standard={method: _error(track.tally(method)) for method in (track_record.SEASONAL_NAIVE, track_record.ETS)},
    )


async def _snapshot_accuracy(store: SqlStore, skus: list[str] | None, settings: PlanningSettings) -> list[AccuracyRead]:
    snapshots = await store.forecast_snapshots(skus)
    current_week = settings.horizon_start()
    first_week = min((week for weeks in snapshots.values() for week in weeks), default=current_week)
    actuals = await store.weekly_units(list(snapshots), since=first_week, until=current_week)
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


async def scenario(
    store: SqlStore,
    proposed: Sequence[ScenarioPromotion],
    item_changes: Sequence[ScenarioItemChange],
    settings: PlanningSettings,
) -> bytes:
    """The plans of every SKU the proposed promotions or item changes touch, as they would be with them (a
    `ScenarioResult`, as JSON, built off the event loop); writes nothing.

    A proposed promotion with the id of a known one replaces it, as a revision would; an item change plans its
    SKU with those item master fields instead of the stored ones.
    """
    data = [PromotionData.model_validate(p.model_dump(mode="json")) for p in proposed]
    changes = {change.sku: change.changes() for change in item_changes}
    skus = set(changes).union(*(promotion_skus(d) for d in data))
    horizon_start = settings.horizon_start()
    loaded = await store.load_inputs(skus, horizon_start)
    # Nothing is written: end the transaction now, so the connection is not held while the plans are computed.
    await store.end_read()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _SCENARIO_THREADS, _scenario_json, data, changes, skus, loaded, horizon_start, settings
    )


def _scenario_json(
    data: Sequence[PromotionData],
    changes: Mapping[str, Mapping[str, float | None]],
    skus: set[str],
    loaded: PlanningInputs,
    horizon_start: date,
    settings: PlanningSettings,
) -> bytes:
    return _plan_scenario(data, changes, skus, loaded, horizon_start, settings).model_dump_json().encode()


def _with_item_changes(inputs: SkuInputs, changes: Mapping[str, float | None]) -> SkuInputs:
    """The SKU's inputs with the scenario's item fields; `weekly_capacity` None is unlimited, the others are
    never None (the request refuses it)."""
    if not changes:
        return inputs
    item = inputs.item

    def given(name: str, stored: float) -> float:
        value = changes.get(name)
        return stored if value is None else value

    changed = replace(
        item,
        on_hand=given("on_hand", item.on_hand),
        safety_stock=given("safety_stock", item.safety_stock),
        lot_size=given("lot_size", item.lot_size),
        weekly_capacity=changes.get("weekly_capacity", item.weekly_capacity),  # a given None: unlimited
    )
    return replace(inputs, item=changed)


def _plan_scenario(
    data: Sequence[PromotionData],
    changes: Mapping[str, Mapping[str, float | None]],
    skus: set[str],
    loaded: PlanningInputs,
    horizon_start: date,
    settings: PlanningSettings,
) -> ScenarioResult:
    proposed_ids = {d.promotion_id for d in data}
    promotions = [p for p in loaded.promotions if p.promotion_id not in proposed_ids]
    promotions += [promotion_from_data(d) for d in data]
    plans = plan_many(
        [_with_item_changes(inputs, changes.get(inputs.item.sku, {})) for inputs in loaded.inputs],
        horizon_start,
        settings.planning_horizon_weeks,
        promotions=promotions,
        launches=loaded.launches,
        reference_baselines=loaded.reference_baselines,
        params=settings.planning_params(),
        today=settings.today(),
    )
    results = []
    for plan in plans:
        current = loaded.stored.get(plan.sku)
        differences = diff_plans(current.plan if current else None, plan)
        results.append(
            ScenarioPlan(
                sku=plan.sku,
                current_plan_version=current.plan_version if current else None,
                item_changes=dict(changes.get(plan.sku, {})),
                weeks=[_week(w) for w in plan.weeks],
                exceptions=[PlanExceptionRead.model_validate(e) for e in exceptions_json(plan.exceptions)],
                changes=[
                    WeekChangeRead(week_start=c.week_start, field=c.field, before=c.before, after=c.after)
                    for c in differences
                ],
            )
        )
    conflicts = [_conflict(conflict) for plan in plans for conflict in plan.conflicts]
    planned = {p.sku for p in plans}
    return ScenarioResult(plans=results, conflicts=conflicts, skus_without_item=sorted(skus - planned))


# ---------------------------------------------------------------- booked orders and promising


def allocation_policy_read(stored: StoredPolicy) -> AllocationPolicyRead:
    return AllocationPolicyRead(
        reserve_pct={tier.value: stored.policy.reserve_pct.get(tier, 0.0) for tier in Tier},
        release_days=stored.policy.release_days,
        revision=stored.revision,
        updated_at=stored.updated_at,
    )


async def get_allocation_policy(store: SqlStore) -> AllocationPolicyRead:
    return allocation_policy_read(await store.allocation_policy())


async def atp(store: SqlStore, sku: str, settings: PlanningSettings) -> AtpRead | None:
    """The SKU's ATP view from its current plan and open lines; None without an item or a plan."""
    view = await store.promising_view(sku)
    if view is None:
        return None
    stored = view.policy
    today = settings.today()
    table = atp_table(Supply.from_plan(view.plan, view.on_hand), view.lines, today, stored.policy)
    return AtpRead(
        sku=sku,
        plan_version=view.plan_version,
        as_of=today,
        oversold=table.oversold,
        allocation_policy=allocation_policy_read(stored),
        weeks=[
            AtpWeekRead(
                week_start=w.week_start,
                receipts=w.receipts,
                booked_orders=w.booked_orders,
                other_commitments=w.other_commitments,
                atp=w.atp,
                cumulative_atp=w.cumulative_atp,
                available_by_tier={tier.value: available for tier, available in w.available_by_tier.items()},
                protected=w.protected,
                protection_lapses_on=w.protection_lapses_on,
            )
            for w in table.weeks
        ],
    )


async def check_promise(
    store: SqlStore, request: PromiseCheckRequest, settings: PlanningSettings
) -> PromiseCheckRead | None:
    """Whether the account's tier may be promised the quantity on the date; reads one SKU's plan and open
    lines, commits nothing. None when the SKU has no item or plan."""
    view = await store.promising_view(request.sku, request.account_id)
    if view is None:
        return None
    segment = view.account_segment
    tier = Tier(segment) if segment else UNKNOWN_ACCOUNT_TIER
    checked = domain_check_promise(
        Supply.from_plan(view.plan, view.on_hand),
        view.lines,
        PromiseRequest(tier, request.quantity, request.requested_on),
        settings.today(),
        view.policy.policy,
    )
    explanation = list(checked.reasons)
    if segment is None:
        explanation.insert(0, f"account {request.account_id} is unknown to planning: it counts as {tier.value}")
    return PromiseCheckRead(
        account_id=request.account_id,
        account_known=segment is not None,
        tier=tier.value,
        sku=request.sku,
        quantity=request.quantity,
        requested_on=request.requested_on,
        can_promise=checked.can_promise,
        available=checked.available,
        available_to_top_tier=checked.available_to_top_tier,
        draws=[WeekDrawRead(week_start=d.week_start, quantity=d.quantity) for d in checked.draws],
        earliest_full_on=checked.earliest_full_on,
        limited_by=checked.limited_by,
        protected_for_higher_tiers=checked.protected_for_higher_tiers,
        protection_lapses_on=checked.protection_lapses_on,
        explanation=explanation,
        plan_version=view.plan_version,
    )
