"""Demand sensing: what order spikes that no promotion explains say about the current and coming weeks.

- A spike day in the current week adds its observed excess (units above the detector's expectation for
  that day) to the current week: those orders are already in, and they are all the spike says.
- A level shift is adopted only once confirmed: `sensing_confirm_days` spike days within
  `sensing_window_days`. From then on the forecast moves toward the run rate observed since the shift
  began (all days, from the daily volumes when given), by `sensing_weight` of the gap to the baseline,
  held for `sensing_weeks` weeks and fading by `sensing_decay` per week after. The gap is measured against
  the current baseline, so as the baseline learns the new level the adjustment shrinks by itself.
- One-off spike days (no confirmed shift) are taken out of the baseline's history (see history.spike_excess),
  so they neither lift the baseline nor anything after their own week.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

import numpy as np

from .model import PlanningParams, SkuInputs, Spike
from .weeks import FloatArray


def shift_days(days: Iterable[date], confirm_days: int, window_days: int) -> list[list[date]]:
    """Runs of spike days that confirm a level shift, oldest first.

    A day belongs to a run when some `window_days`-day window holding it holds at least `confirm_days`
    spike days; runs closer than `window_days` apart are one run.
    """
    ordered = sorted(set(days))
    confirmed: set[date] = set()
    span = timedelta(days=window_days - 1)
    for start, first in enumerate(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] - first <= span:
            end += 1
        if end - start + 1 >= max(confirm_days, 1):
            confirmed.update(ordered[start : end + 1])
    runs: list[list[date]] = []
    for day in sorted(confirmed):
        if runs and day - runs[-1][-1] <= span:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def unexplained(spikes: Iterable[Spike]) -> list[Spike]:
    return [s for s in spikes if not s.explained]


def isolated_spikes(spikes: Iterable[Spike], params: PlanningParams) -> list[Spike]:
    """Unexplained spikes that are not part of a confirmed level shift: noise for the baseline."""
    candidates = unexplained(spikes)
    in_runs = {d for run in shift_days((s.day for s in candidates), *_rule(params)) for d in run}
    return [s for s in candidates if s.day not in in_runs]


def _rule(params: PlanningParams) -> tuple[int, int]:
    return params.sensing_confirm_days, params.sensing_window_days


def sensing_adjustments(
    baseline: FloatArray,
    inputs: Sequence[SkuInputs],
    horizon_start: date,
    today: date | None,
    params: PlanningParams,
) -> FloatArray:
    """(n, weeks) sensing adjustment per SKU and horizon week; never negative."""
    sensing = np.zeros_like(baseline)
    weeks = baseline.shape[1]
    fade = np.array(
        [
            1.0 if w < params.sensing_weeks else params.sensing_decay ** (w - params.sensing_weeks + 1)
            for w in range(weeks)
        ]
    )
    week_end = horizon_start + timedelta(days=6)
    for row, inp in enumerate(inputs):
        spikes = unexplained(inp.spikes)
        if not spikes:
            continue
        for spike in spikes:
            if spike.sku != inp.item.sku:
                raise ValueError(f"spike for {spike.sku} given with inputs of {inp.item.sku}")
        now = today or _latest_day(spikes, inp.recent_days, horizon_start, week_end)
        known = [s for s in spikes if s.day <= now]
        observed = sum(max(0.0, s.units - s.baseline) for s in known if horizon_start <= s.day)
        sensing[row, 0] += observed
        runs = shift_days((s.day for s in known), *_rule(params))
        if not runs:
            continue
        run = runs[-1]
        rate = _run_rate(run, known, inp.recent_days, now, params)
        if rate is None:
            continue
        gap = np.maximum(7.0 * rate - baseline[row], 0.0) * params.sensing_weight * fade
        elapsed = min(max((now - horizon_start).days + 1, 0), 7)
        gap[0] *= (7 - elapsed) / 7.0  # the elapsed days of this week are known: their excess is counted above
        sensing[row] += gap
    return sensing


def _latest_day(
    spikes: Sequence[Spike], recent_days: Mapping[date, float], horizon_start: date, week_end: date
) -> date:
    """Without a clock, the newest day the SKU's own signals show (the day before the horizon at least)."""
    days = [s.day for s in spikes if s.day <= week_end] + [d for d in recent_days if d <= week_end]
    return max([horizon_start - timedelta(days=1), *days])


def _run_rate(
    run: list[date],
    spikes: Sequence[Spike],
    recent_days: Mapping[date, float],
    now: date,
    params: PlanningParams,
) -> float | None:
    """Units per day since the shift began; None once a shift only seen through spikes has gone quiet."""
    start = run[0]
    if recent_days:
        days = (now - start).days + 1
        return sum(recent_days.get(start + timedelta(days=d), 0.0) for d in range(days)) / days
    if (now - run[-1]).days >= 7 * max(params.sensing_weeks, 1):
        return None
    in_run = [s.units for s in spikes if start <= s.day <= run[-1]]
    return float(np.mean(in_run))
