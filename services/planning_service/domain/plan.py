"""Planning orchestration: SKU inputs, promotions and launches in; one forecast-and-MPS plan per SKU out."""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

import numpy as np

from .atp import Atp, available_to_promise
from .conflicts import capacity_conflicts
from .forecast import BoolArray, ForecastComponents, forecast_components
from .model import (
    Item,
    Launch,
    PlanException,
    PlanningParams,
    PlanWeek,
    Promotion,
    SkuInputs,
    SkuPlan,
)
from .mps import TOLERANCE, Netting, max_production, net_requirements
from .orders import booked_matrix, consume_forecast
from .weeks import FloatArray, require_monday, week_index, week_starts

HORIZON_WEEKS = 26
DEFAULT_PARAMS = PlanningParams()
# `PlanWeek._make` without its Python frame per week: a week's values come from one zip of a column per field.
_NEW_WEEK = functools.partial(tuple.__new__, PlanWeek)


def plan_sku(
    inputs: SkuInputs,
    horizon_start: date,
    horizon_weeks: int = HORIZON_WEEKS,
    *,
    promotions: Sequence[Promotion] = (),
    launches: Sequence[Launch] = (),
    reference_baselines: Mapping[str, float] | None = None,
    params: PlanningParams = DEFAULT_PARAMS,
    today: date | None = None,
) -> SkuPlan:
    """Plan one SKU; a launch's reference baseline comes from `reference_baselines` (see baseline_level)."""
    return plan_many(
        [inputs],
        horizon_start,
        horizon_weeks,
        promotions=promotions,
        launches=launches,
        reference_baselines=reference_baselines,
        params=params,
        today=today,
    )[0]


def plan_many(
    inputs: Sequence[SkuInputs],
    horizon_start: date,
    horizon_weeks: int = HORIZON_WEEKS,
    *,
    promotions: Sequence[Promotion] = (),
    launches: Sequence[Launch] = (),
    reference_baselines: Mapping[str, float] | None = None,
    params: PlanningParams = DEFAULT_PARAMS,
    today: date | None = None,
) -> list[SkuPlan]:
    """Plan many SKUs at once, numpy over (n_skus, horizon_weeks); same result as plan_sku for each.

    A launch whose reference SKU is among `inputs` copies that SKU's baseline; otherwise the reference
    level is looked up in `reference_baselines`. Scenarios are plain calls with extra promotions. `today`
    tells sensing which days of the current week are already known (default: the newest day the SKU's
    own signals show).
    """
    with _cyclic_gc_paused():
        return _plan_many(
            inputs, horizon_start, horizon_weeks, promotions, launches, reference_baselines, params, today
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Plans hold no reference cycles, but building ~300k week tuples among a large live input set triggers
    repeated full collections that double the run time; pause the cycle collector, then restore it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plan_many(
    inputs: Sequence[SkuInputs],
    horizon_start: date,
    horizon_weeks: int,
    promotions: Sequence[Promotion],
    launches: Sequence[Launch],
    reference_baselines: Mapping[str, float] | None,
    params: PlanningParams,
    today: date | None,
) -> list[SkuPlan]:
    require_monday(horizon_start)
    if horizon_weeks <= 0:
        raise ValueError("horizon_weeks must be positive")
    rows: dict[str, int] = {}
    for row, inp in enumerate(inputs):
        if rows.setdefault(inp.item.sku, row) != row:
            raise ValueError(f"SKU {inp.item.sku} given twice")
    if not inputs:
        return []
    starts = week_starts(horizon_start, horizon_weeks)
    components = forecast_components(
        inputs, rows, horizon_start, horizon_weeks, promotions, launches, reference_baselines or {}, params, today
    )
    forecast = np.maximum(components.baseline + components.promotion_uplift + components.sensing_adjustment, 0.0)
    receipts = _by_week([inp.resellable_returns for inp in inputs], horizon_start, horizon_weeks)
    replacements = _by_week([inp.replacements for inp in inputs], horizon_start, horizon_weeks)
    booked = booked_matrix([line for inp in inputs for line in inp.order_lines], rows, horizon_start, horizon_weeks)
    gross = consume_forecast(forecast, booked, replacements)
    items = [inp.item for inp in inputs]
    capacity = np.array([np.inf if i.weekly_capacity is None else i.weekly_capacity for i in items])
    lot_size = np.array([i.lot_size for i in items], dtype=np.float64)
    frozen, requested = _frozen_fence(inputs, starts)
    # A previous quantity the item can no longer make (capacity or lot size changed since) is cut to the
    # nearest feasible one: mps_quantity stays within capacity and whole lots, and an exception says so.
    ceiling = max_production(lot_size, capacity)[:, None]
    feasible = np.floor(np.clip(requested, 0.0, ceiling) / lot_size[:, None] + TOLERANCE) * lot_size[:, None]
    frozen_quantity = np.where(frozen, feasible, np.nan)
    netting = net_requirements(
        gross,
        receipts,
        np.array([i.on_hand for i in items], dtype=np.float64),
        np.array([i.safety_stock for i in items], dtype=np.float64),
        lot_size,
        capacity,
        frozen,
        frozen_quantity,
    )
    baseline_l, uplift_l, sensing_l = (
        c.tolist() for c in (components.baseline, components.promotion_uplift, components.sensing_adjustment)
    )
    forecast_l, gross_l, receipts_l, replacements_l = (c.tolist() for c in (forecast, gross, receipts, replacements))
    available_l, mps_l, shortfall_l = (
        c.tolist() for c in (netting.projected_available, netting.mps_quantity, netting.capacity_shortfall)
    )
    columns = zip(
        baseline_l,
        uplift_l,
        sensing_l,
        forecast_l,
        gross_l,
        receipts_l,
        replacements_l,
        available_l,
        mps_l,
        strict=True,
    )
    promising = _promising(items, netting, receipts, booked, replacements)
    with_exceptions = set(components.exceptions) | _fence_differs(netting, requested, frozen_quantity)
    with_shortfall = set(np.nonzero(netting.capacity_shortfall.any(axis=1))[0].tolist())
    plans = []
    for row, (item, values, shortfall, promised) in enumerate(zip(items, columns, shortfall_l, promising, strict=True)):
        capacities = [None if item.weekly_capacity is None else float(item.weekly_capacity)] * len(starts)
        weeks = tuple(map(_NEW_WEEK, zip(starts, *values, capacities, shortfall, *promised, strict=True)))
        if weeks and len(weeks[0]) != len(PlanWeek._fields):
            # `_NEW_WEEK` takes any width (`_make` would refuse): a field without its column fails here, not later.
            raise TypeError(
                f"a plan week has {len(weeks[0])} values for the {len(PlanWeek._fields)} fields of PlanWeek"
            )
        exceptions = (
            _exceptions(row, components, netting, requested, frozen_quantity, starts) if row in with_exceptions else ()
        )
        conflicts = (
            capacity_conflicts(item.sku, netting.capacity_shortfall[row], starts, components.uplift_weeks.get(row, ()))
            if row in with_shortfall
            else ()
        )
        plans.append(SkuPlan(item.sku, weeks, exceptions, conflicts))
    return plans


# ---------------------------------------------------------------- promising: booked orders and ATP


def _promising(
    items: Sequence[Item], netting: Netting, returns_receipts: FloatArray, booked: FloatArray, replacements: FloatArray
) -> zip[tuple[list[float], list[float], list[float]]]:
    """Per SKU the (booked_orders, atp, cumulative_atp) week columns of its plan.

    Supply is the planned production plus resellable returns; commitments are the booked lines and the
    replacements owed, never the forecast (as `promises.Supply.from_plan` reads a stored plan).
    """
    on_hand = np.array([i.on_hand for i in items], dtype=np.float64)
    atp: Atp = available_to_promise(on_hand, netting.mps_quantity + returns_receipts, booked + replacements)
    return zip(booked.tolist(), atp.atp.tolist(), atp.cumulative_atp.tolist(), strict=True)


def _by_week(per_day: Sequence[Mapping[date, float]], horizon_start: date, weeks: int) -> FloatArray:
    """Daily quantities summed into the horizon week they fall in; days outside the horizon are ignored."""
    totals = np.zeros((len(per_day), weeks))
    for row, quantities in enumerate(per_day):
        for day, units in quantities.items():
            week = week_index(day, horizon_start)
            if 0 <= week < weeks:
                totals[row, week] += units
    return totals


def _frozen_fence(inputs: Sequence[SkuInputs], starts: Sequence[date]) -> tuple[BoolArray, FloatArray]:
    """Weeks whose previous mps_quantity must be kept; a fence week the previous plan lacks is planned."""
    frozen = np.zeros((len(inputs), len(starts)), dtype=np.bool_)
    quantity = np.full((len(inputs), len(starts)), np.nan)
    for row, inp in enumerate(inputs):
        previous = inp.previous_mps
        if previous is None or inp.item.frozen_weeks <= 0:
            continue
        for week, start in enumerate(starts[: inp.item.frozen_weeks]):
            if start in previous:
                frozen[row, week] = True
                quantity[row, week] = previous[start]
    return frozen, quantity


def _fence_differs(netting: Netting, requested: FloatArray, kept: FloatArray) -> set[int]:
    with np.errstate(invalid="ignore"):  # NaN outside the fence compares as no difference
        differs = (np.abs(netting.wanted_in_fence - kept) > TOLERANCE) | (np.abs(requested - kept) > TOLERANCE)
    return set(np.nonzero(differs.any(axis=1))[0].tolist())


def _exceptions(
    row: int,
    components: ForecastComponents,
    netting: Netting,
    requested: FloatArray,
    frozen_quantity: FloatArray,
    starts: Sequence[date],
) -> tuple[PlanException, ...]:
    found = list(components.exceptions.get(row, ()))
    wanted = netting.wanted_in_fence[row]
    for week in np.nonzero(~np.isnan(wanted))[0].tolist():
        previous, kept, would_plan = (
            float(requested[row, week]),
            float(frozen_quantity[row, week]),
            float(wanted[week]),
        )
        if abs(previous - kept) > TOLERANCE:
            found.append(
                PlanException(
                    starts[week],
                    "frozen-fence-infeasible",
                    kept,
                    None,
                    f"frozen mps_quantity {previous:g} exceeds capacity or whole lots now; cut to {kept:g}",
                )
            )
        if abs(kept - would_plan) > TOLERANCE:
            found.append(
                PlanException(
                    starts[week],
                    "frozen-fence",
                    kept,
                    would_plan,
                    f"frozen week keeps mps_quantity {kept:g}; current requirements want {would_plan:g}",
                )
            )
    return tuple(found)
