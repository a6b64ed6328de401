"""Sensing scenarios with a known truth, replayed day by day as planning sees them: SKUs with no change
(false alarms), a one-off bulk order day, and a real threefold step in demand."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np

from salesops.evaluation.simulator import DISPERSION, WEEKDAY_SHARE, FloatArray
from services.fulfillment_service.domain import SpikeRule, detect_spikes
from services.planning_service.domain import BaselineModel, Item, SkuInputs, Spike, plan_many
from services.planning_service.domain.fitting import fit_baselines

START = date(2023, 1, 2)
HISTORY_WEEKS = 156
EVENT_DAY = 7 * HISTORY_WEEKS + 1  # the Tuesday of the first week after three years of history
REPLAY_DAYS = 28
STEP = 3.0
BULK = 4.0  # the bulk order adds four days' worth of units to its day
CHECKPOINTS = (1, 3, 7, 14, 21)  # days after the event at which the step's next-week forecast is read


@dataclass
class SensingReport:
    skus: int
    false_alarm_skus: float = 0.0  # share of no-change SKUs whose forecast adopted a shift on some day
    false_alarm_days: float = 0.0  # share of no-change SKU-days with a shift adopted
    steady_ratio: float = 0.0  # next-week forecast / truth on the no-change SKUs
    bulk_week_ratio: float = 0.0  # forecast of the bulk order's own week / (truth + the bulk excess)
    bulk_next_ratio: float = 0.0  # next-week forecast / truth after the bulk order day
    step_ratio: dict[int, float] = field(default_factory=dict)  # days after the step -> next-week ratio


def _series(rng: np.random.Generator, count: int, days: int) -> tuple[FloatArray, FloatArray]:
    weeks = days // 7 + 1
    level = rng.uniform(100, 400, count)
    expected = (level[:, None] * np.tile(WEEKDAY_SHARE, weeks)[None, :])[:, :days]
    orders = rng.negative_binomial(DISPERSION, DISPERSION / (DISPERSION + expected)).astype(np.float64)
    return expected, orders


def _spikes(orders: FloatArray, first_day: int, last_day: int) -> list[list[Spike]]:
    rule = SpikeRule()
    days = [START + timedelta(days=d) for d in range(first_day, last_day)]
    found: list[list[Spike]] = []
    for row in range(orders.shape[0]):
        daily = {START + timedelta(days=d): float(v) for d, v in enumerate(orders[row, :last_day])}
        verdicts = detect_spikes(daily, days, rule, sku=f"S{row}")
        found.append([Spike(f"S{row}", s.day, s.units, s.baseline, False) for s in verdicts.values() if s is not None])
    return found


def _forecasts(orders: FloatArray, spikes: list[list[Spike]]) -> tuple[dict[int, FloatArray], dict[int, FloatArray]]:
    """Day of the replay -> (n, 2) forecasts of the current and the next week, and the next week's sensing
    adjustment (n,), refitting each Monday."""
    result: dict[int, FloatArray] = {}
    sensed: dict[int, FloatArray] = {}
    models: list[BaselineModel | None] = []
    fitted_for: date | None = None
    for today_index in range(EVENT_DAY, EVENT_DAY + REPLAY_DAYS):
        today = START + timedelta(days=today_index)
        horizon = today - timedelta(days=today.weekday())
        monday_index = (horizon - START).days
        inputs = [
            SkuInputs(
                Item(f"S{row}", "x", on_hand=0, safety_stock=0),
                {
                    START + timedelta(weeks=w): float(orders[row, 7 * w : 7 * w + 7].sum())
                    for w in range(monday_index // 7)
                },
                spikes=tuple(s for s in spikes[row] if s.day <= today),
                recent_days={
                    START + timedelta(days=d): float(orders[row, d]) for d in range(today_index - 27, today_index + 1)
                },
            )
            for row in range(orders.shape[0])
        ]
        if fitted_for != horizon:  # the weekly rollover refits
            models, fitted_for = fit_baselines(inputs, horizon), horizon
        inputs = [replace(inp, baseline_model=m) for inp, m in zip(inputs, models, strict=True)]
        plans = plan_many(inputs, horizon, 2, today=today)
        result[today_index] = np.array([[w.forecast for w in p.weeks] for p in plans])
        sensed[today_index] = np.array([p.weeks[1].sensing_adjustment for p in plans])
    return result, sensed


def _week_sum(values: FloatArray, today_index: int, offset: int) -> FloatArray:
    monday = today_index - today_index % 7 + 7 * offset
    total: FloatArray = values[:, monday : monday + 7].sum(axis=1)
    return total


def run_sensing(count: int = 40, seed: int = 11) -> SensingReport:
    rng = np.random.default_rng(seed)
    days = EVENT_DAY + REPLAY_DAYS + 14
    first = EVENT_DAY - 14 * 7  # spikes older than the cleaning matters for are not looked for
    report = SensingReport(count)

    expected, orders = _series(rng, count, days)
    forecasts, sensed = _forecasts(orders, _spikes(orders, first, days))
    adopted = np.array([sensed[d] > 0 for d in sensed])
    report.false_alarm_skus = float(adopted.any(axis=0).mean())
    report.false_alarm_days = float(adopted.mean())
    report.steady_ratio = _ratio(
        [_next_week(forecasts[d]) for d in forecasts], [_next_week_truth(expected, d) for d in forecasts]
    )

    expected, orders = _series(rng, count, days)
    bulk = np.round(expected[:, EVENT_DAY] * BULK)
    orders[:, EVENT_DAY] += bulk
    forecasts, _ = _forecasts(orders, _spikes(orders, first, days))
    same_week = [d for d in forecasts if d // 7 == EVENT_DAY // 7]
    report.bulk_week_ratio = _ratio(
        [forecasts[d][:, 0] for d in same_week], [_week_sum(expected, d, 0) + bulk for d in same_week]
    )
    report.bulk_next_ratio = _ratio(
        [_next_week(forecasts[d]) for d in forecasts], [_next_week_truth(expected, d) for d in forecasts]
    )

    expected, orders = _series(rng, count, days)
    expected[:, EVENT_DAY:] *= STEP
    orders[:, EVENT_DAY:] = rng.negative_binomial(
        DISPERSION, DISPERSION / (DISPERSION + expected[:, EVENT_DAY:])
    ).astype(np.float64)
    forecasts, _ = _forecasts(orders, _spikes(orders, first, days))
    for after in CHECKPOINTS:
        day = EVENT_DAY + after
        report.step_ratio[after] = _ratio([_next_week(forecasts[day])], [_next_week_truth(expected, day)])
    return report


def _next_week(forecast: FloatArray) -> FloatArray:
    column: FloatArray = forecast[:, 1]
    return column


def _next_week_truth(expected: FloatArray, day: int) -> FloatArray:
    return _week_sum(expected, day, 1)


def _ratio(forecasts: list[FloatArray], truths: list[FloatArray]) -> float:
    return float(np.sum(forecasts) / np.sum(truths))
