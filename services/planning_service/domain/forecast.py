"""Forecast components as (n_skus, weeks) arrays: baseline, launches, promotion effects, sensing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from .baseline import project
from .history import (
    MAX_HISTORY_WEEKS,
    BoolArray,
    distorted_mask,
    promotion_history_weeks,
    spike_excess,
    weekly_history,
)
from .model import Launch, PlanException, PlanningParams, Promotion, SkuInputs
from .sensing import isolated_spikes, sensing_adjustments
from .weeks import FloatArray, days_outside, days_per_week, monday_of, shift_days, week_index

__all__ = [
    "MAX_HISTORY_WEEKS",
    "BoolArray",
    "ForecastComponents",
    "apply_promotions",
    "baseline_level",
    "forecast_components",
]

DECIMALS = 6  # forecast components are rounded before summing so the forecast formula holds exactly


@dataclass
class ForecastComponents:
    baseline: FloatArray
    promotion_uplift: FloatArray
    sensing_adjustment: FloatArray
    # row -> (promotion_id, weeks where that promotion lifts the SKU): used to name conflicting promotions
    uplift_weeks: dict[int, list[tuple[str, BoolArray]]] = field(default_factory=dict)
    exceptions: dict[int, list[PlanException]] = field(default_factory=dict)


def smoothed_levels(units: FloatArray, usable: BoolArray, alpha: float) -> FloatArray:
    """Simple exponential smoothing over the usable weeks of each row; NaN for a row with none.

    The level starts at the first usable week. Skipping a week is exactly smoothing with that week's actual
    replaced by the model's expectation (the level does not move): how promotion weeks are cleaned out.
    """
    level = np.full(units.shape[0], np.nan)
    first_used = int(np.argmax(usable.any(axis=0))) if usable.any() else units.shape[1]
    for column in range(first_used, units.shape[1]):
        x = units[:, column]
        updated = np.where(np.isnan(level), x, level + alpha * (x - level))
        level = np.where(usable[:, column], updated, level)
    return level


def baselines(
    inputs: Sequence[SkuInputs],
    distorted: Mapping[str, set[int]],
    horizon_start: date,
    horizon_weeks: int,
    params: PlanningParams,
) -> FloatArray:
    """(n, horizon_weeks) baseline per SKU from its cleaned, zero-filled weekly history.

    A SKU with a fitted model (`baseline_model`) gets that model, advanced through the weeks completed
    since its fit; one without gets the flat simple-smoothing level (the rule for short histories, and
    until a model is fitted); one without any history gets its item's `baseline_weekly_demand`.
    """
    units, observed = weekly_history([inp.history for inp in inputs], horizon_start)
    units = np.maximum(units - spike_excess([isolated_spikes(i.spikes, params) for i in inputs], horizon_start), 0.0)
    usable = observed & ~distorted_mask([inp.item.sku for inp in inputs], distorted, horizon_start)
    levels = smoothed_levels(units, usable, params.smoothing_alpha)
    seeds = np.fromiter((inp.item.baseline_weekly_demand or 0.0 for inp in inputs), dtype=np.float64, count=len(inputs))
    flat = np.maximum(np.where(np.isnan(levels), seeds, levels), 0.0)
    result = np.repeat(flat[:, None], horizon_weeks, axis=1)
    fitted = [row for row, inp in enumerate(inputs) if inp.baseline_model is not None]
    if fitted:
        models = [inputs[row].baseline_model for row in fitted]
        result[fitted] = project(models, units[fitted], usable[fitted], horizon_start, horizon_weeks)  # type: ignore[arg-type]
    return result


def baseline_level(
    inputs: SkuInputs,
    horizon_start: date,
    promotions: Sequence[Promotion] = (),
    params: PlanningParams = PlanningParams(),
) -> float:
    """The baseline of one SKU's first horizon week before launches (what a launch referencing it copies)."""
    distorted = promotion_history_weeks(promotions, horizon_start)
    return float(baselines([inputs], distorted, horizon_start, 1, params)[0, 0])


def forecast_components(
    inputs: Sequence[SkuInputs],
    rows: Mapping[str, int],
    horizon_start: date,
    horizon_weeks: int,
    promotions: Sequence[Promotion],
    launches: Sequence[Launch],
    reference_baselines: Mapping[str, float],
    params: PlanningParams,
    today: date | None = None,
) -> ForecastComponents:
    active = [p for p in promotions if not p.cancelled]
    baseline = baselines(inputs, promotion_history_weeks(active, horizon_start), horizon_start, horizon_weeks, params)
    components = ForecastComponents(baseline, np.zeros_like(baseline), np.zeros_like(baseline))
    levels = baseline[:, 0].copy()
    _apply_launches(components, levels, inputs, rows, launches, reference_baselines, horizon_start, params)
    apply_promotions(components, rows, active, horizon_start)
    components.sensing_adjustment = sensing_adjustments(components.baseline, inputs, horizon_start, today, params)
    for values in (components.baseline, components.promotion_uplift, components.sensing_adjustment):
        np.round(values, DECIMALS, out=values)
        values += 0.0  # turns -0.0 into 0.0 so outputs read cleanly
    return components


def _apply_launches(
    components: ForecastComponents,
    levels: FloatArray,
    inputs: Sequence[SkuInputs],
    rows: Mapping[str, int],
    launches: Sequence[Launch],
    reference_baselines: Mapping[str, float],
    horizon_start: date,
    params: PlanningParams,
) -> None:
    latest: dict[str, Launch] = {}
    for launch in launches:  # a re-launch supersedes the earlier one
        current = latest.get(launch.sku)
        if current is None or launch.launch_on >= current.launch_on:
            latest[launch.sku] = launch
    weeks = components.baseline.shape[1]
    for sku, launch in latest.items():
        row = rows.get(sku)
        if row is None:
            continue
        launch_week = monday_of(launch.launch_on)
        own_weeks = {monday_of(d) for d in inputs[row].history if launch_week <= d < horizon_start}
        if len(own_weeks) >= params.launch_history_weeks:
            continue  # enough own sales since launch: the SKU's own smoothed history is the better guess
        reference_row = rows.get(launch.reference_sku)
        if reference_row is not None:
            reference = float(levels[reference_row])
        elif launch.reference_sku in reference_baselines:
            reference = reference_baselines[launch.reference_sku]
        else:
            reference = 0.0
            components.exceptions.setdefault(row, []).append(
                PlanException(
                    launch_week,
                    "launch-reference-missing",
                    None,
                    None,
                    f"launch {launch.launch_id}: reference {launch.reference_sku} is unknown; planned as 0",
                )
            )
        since_launch = np.arange(weeks) - week_index(launch.launch_on, horizon_start)
        ramp = np.ones(weeks) if launch.ramp_weeks <= 0 else (since_launch + 1) / launch.ramp_weeks
        ramp = np.clip(ramp, 0.0, 1.0)
        horizon_end = horizon_start + timedelta(weeks=weeks)
        selling_days = days_per_week(launch.launch_on, horizon_end, horizon_start, weeks) / 7.0
        components.baseline[row] = reference * launch.scale_pct / 100.0 * ramp * selling_days


def apply_promotions(
    components: ForecastComponents, rows: Mapping[str, int], active: Sequence[Promotion], horizon_start: date
) -> None:
    baseline, uplift = components.baseline, components.promotion_uplift
    weeks = baseline.shape[1]
    for promo in active:
        days = days_per_week(promo.starts_on, promo.ends_on, horizon_start, weeks)
        share = days / 7.0
        dip_share: FloatArray | None = None
        if promo.post_promo_dip_pct and promo.post_promo_dip_weeks > 0:
            dip_days = days_per_week(
                shift_days(promo.ends_on, 1),
                shift_days(promo.ends_on, 7 * promo.post_promo_dip_weeks),
                horizon_start,
                weeks,
            )
            # the pulled-forward volume is taken evenly per day over the dip weeks
            dip_share = promo.post_promo_dip_pct / 100.0 * dip_days / (7.0 * promo.post_promo_dip_weeks)
        for promo_item in promo.items:
            row = rows.get(promo_item.sku)
            if row is None:
                continue
            extra = baseline[row] * (promo_item.uplift_pct / 100.0) * share
            uplift[row] += extra
            if promo_item.uplift_pct <= 0:
                continue  # no incremental volume: nothing pulled forward and nothing to conflict over
            lifted = extra > 0
            if lifted.any():
                components.uplift_weeks.setdefault(row, []).append((promo.promotion_id, lifted))
            if dip_share is not None:
                before, after = days_outside(promo.starts_on, promo.ends_on, horizon_start, weeks)
                # days outside the horizon are valued at the nearest horizon week's baseline
                daily = baseline[row] / 7.0
                incremental = (
                    promo_item.uplift_pct / 100.0 * (float(daily @ days) + before * daily[0] + after * daily[-1])
                )
                uplift[row] -= incremental * dip_share
        for cannibalized in promo.cannibalized:
            row = rows.get(cannibalized.sku)
            if row is not None:
                uplift[row] -= baseline[row] * (cannibalized.pct / 100.0) * share
