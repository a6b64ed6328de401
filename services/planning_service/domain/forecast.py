"""Forecast components as (n_skus, weeks) arrays: smoothed baseline, launches, promotion effects, sensing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import chain

import numpy as np
import numpy.typing as npt

from .model import Launch, PlanException, PlanningParams, Promotion, SkuInputs
from .weeks import FloatArray, days_outside, days_per_week, monday_of, shift_days, week_index

BoolArray = npt.NDArray[np.bool_]
DECIMALS = 6  # forecast components are rounded before summing so the forecast formula holds exactly
# Older weeks weigh under (1 - alpha)^156 (< 1e-24 at alpha 0.3) in the level: reading them changes nothing.
MAX_HISTORY_WEEKS = 156


@dataclass
class ForecastComponents:
    baseline: FloatArray
    promotion_uplift: FloatArray
    sensing_adjustment: FloatArray
    # row -> (promotion_id, weeks where that promotion lifts the SKU): used to name conflicting promotions
    uplift_weeks: dict[int, list[tuple[str, BoolArray]]] = field(default_factory=dict)
    exceptions: dict[int, list[PlanException]] = field(default_factory=dict)


def promotion_history_weeks(promotions: Iterable[Promotion], horizon_start: date) -> dict[str, set[int]]:
    """Ordinals of pre-horizon week Mondays that a promotion distorted (uplift, dip or cannibalization)."""
    distorted: dict[str, set[int]] = defaultdict(set)
    last_past_day = horizon_start - timedelta(days=1)
    # Weeks before the history the level reads are never used: a promotion running for decades must not
    # cost a set entry per week of its life.
    first_history_day = shift_days(horizon_start, -7 * MAX_HISTORY_WEEKS)
    for promo in promotions:
        if promo.cancelled or promo.starts_on > last_past_day:
            continue
        during = _mondays(max(promo.starts_on, first_history_day), min(promo.ends_on, last_past_day))
        for promo_item in promo.items:
            distorted[promo_item.sku].update(during)
        for cannibalized in promo.cannibalized:
            distorted[cannibalized.sku].update(during)
        if promo.post_promo_dip_pct and promo.post_promo_dip_weeks > 0:
            dip_start = max(shift_days(promo.ends_on, 1), first_history_day)
            dip_end = min(shift_days(promo.ends_on, 7 * promo.post_promo_dip_weeks), last_past_day)
            if dip_start <= dip_end:
                dip = _mondays(dip_start, dip_end)
                for promo_item in promo.items:
                    distorted[promo_item.sku].update(dip)
    return distorted


def _mondays(first: date, last: date) -> range:
    start = monday_of(first).toordinal()
    return range(start, monday_of(last).toordinal() + 1, 7)


def weekly_history(
    histories: Sequence[Mapping[date, float]], horizon_start: date, weeks: int = MAX_HISTORY_WEEKS
) -> tuple[FloatArray, BoolArray]:
    """Units ordered per SKU in the `weeks` complete weeks before the horizon, oldest column first.

    Returns (units, observed): a week counts as observed from a SKU's first to its last reported week,
    missing weeks in between as 0. The current week is incomplete and would drag the level down, so it is
    left out. Keys are normalised to their week's Monday. Vectorised over all SKUs' entries at once.
    """
    count = len(histories)
    lengths = np.fromiter(map(len, histories), dtype=np.int64, count=count)
    total = int(lengths.sum())
    ordinals = np.fromiter(map(date.toordinal, chain.from_iterable(histories)), dtype=np.int64, count=total)
    values = np.fromiter(chain.from_iterable(h.values() for h in histories), dtype=np.float64, count=total)
    rows = np.repeat(np.arange(count), lengths)
    mondays = ordinals - (ordinals - 1) % 7  # ordinal 1 (0001-01-01) is a Monday
    columns = (mondays - horizon_start.toordinal()) // 7 + weeks
    keep = (columns >= 0) & (columns < weeks)
    rows, columns, values = rows[keep], columns[keep], values[keep]
    units = np.zeros(count * weeks)
    np.add.at(units, rows * weeks + columns, values)
    first = np.full(count, weeks)
    last = np.full(count, -1)
    np.minimum.at(first, rows, columns)
    np.maximum.at(last, rows, columns)
    span = np.arange(weeks)
    observed = (span >= first[:, None]) & (span <= last[:, None])
    return units.reshape(count, weeks), observed


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


def _levels(
    inputs: Sequence[SkuInputs],
    distorted: Mapping[str, set[int]],
    horizon_start: date,
    params: PlanningParams,
) -> FloatArray:
    units, usable = weekly_history([inp.history for inp in inputs], horizon_start)
    oldest = horizon_start.toordinal() - 7 * MAX_HISTORY_WEEKS
    for row, inp in enumerate(inputs):
        for monday in distorted.get(inp.item.sku, ()):
            column = (monday - oldest) // 7
            if 0 <= column < MAX_HISTORY_WEEKS:
                usable[row, column] = False
    levels = smoothed_levels(units, usable, params.smoothing_alpha)
    seeds = np.fromiter((inp.item.baseline_weekly_demand or 0.0 for inp in inputs), dtype=np.float64, count=len(inputs))
    return np.maximum(np.where(np.isnan(levels), seeds, levels), 0.0)


def baseline_level(
    inputs: SkuInputs,
    horizon_start: date,
    promotions: Sequence[Promotion] = (),
    params: PlanningParams = PlanningParams(),
) -> float:
    """The flat weekly baseline of one SKU before launches (what a launch referencing it copies)."""
    distorted = promotion_history_weeks(promotions, horizon_start)
    return float(_levels([inputs], distorted, horizon_start, params)[0])


def forecast_components(
    inputs: Sequence[SkuInputs],
    rows: Mapping[str, int],
    horizon_start: date,
    horizon_weeks: int,
    promotions: Sequence[Promotion],
    launches: Sequence[Launch],
    reference_baselines: Mapping[str, float],
    params: PlanningParams,
) -> ForecastComponents:
    active = [p for p in promotions if not p.cancelled]
    levels = _levels(inputs, promotion_history_weeks(active, horizon_start), horizon_start, params)
    baseline = np.repeat(levels[:, None], horizon_weeks, axis=1)
    components = ForecastComponents(baseline, np.zeros_like(baseline), np.zeros_like(baseline))
    _apply_launches(components, levels, inputs, rows, launches, reference_baselines, horizon_start, params)
    _apply_promotions(components, rows, active, horizon_start)
    _apply_sensing(components, inputs, horizon_start, params)
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


def _apply_promotions(
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


def _apply_sensing(
    components: ForecastComponents, inputs: Sequence[SkuInputs], horizon_start: date, params: PlanningParams
) -> None:
    baseline, sensing = components.baseline, components.sensing_adjustment
    weeks = baseline.shape[1]
    for row, inp in enumerate(inputs):
        for spike in inp.spikes:
            if spike.explained:
                continue  # a promotion already accounts for it
            if spike.sku != inp.item.sku:
                raise ValueError(f"spike for {spike.sku} given with inputs of {inp.item.sku}")
            spike_week = week_index(spike.day, horizon_start)
            for offset in range(params.sensing_weeks):
                week = spike_week + offset
                if not 0 <= week < weeks:
                    continue
                gap = spike.units * 7.0 - baseline[row, week]
                if gap > 0:
                    lift = gap * params.sensing_weight * params.sensing_decay**offset
                    # several spikes signal one run rate: take the strongest, do not add them up
                    sensing[row, week] = max(sensing[row, week], lift)
