"""Fitted baseline models as plain parameters, and their cheap application on every re-plan.

A model is fitted when a week rolls over or a SKU's history changes (see fitting.py); applying it is numpy
over all SKUs at once: advance the state through the weeks completed since the fit, then project it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from .intermittent import croston_step, sba_forecast
from .weeks import FloatArray

BoolArray = npt.NDArray[np.bool_]
# Weeks in a mean calendar year: the annual season is read off the date, so it stays in phase across
# 52- and 53-week ISO years.
SEASON_WEEKS = 365.2425 / 7
# A seasonal factor never quite reaches zero, so deseasonalising a week cannot divide by nothing.
MIN_SEASON_FACTOR = 0.05


class Method(StrEnum):
    ETS = "ets"  # exponential smoothing state space: level, optional (damped) trend, optional annual season
    CROSTON_SBA = "croston-sba"  # intermittent demand: smoothed size / smoothed interval, debiased


@dataclass(frozen=True, slots=True)
class BaselineModel:
    """One SKU's fitted baseline, as plain values that store as JSON.

    `origin` is the Monday of the first week the state forecasts (the week after the last fitted week).
    ETS: `level` and `trend` are the deseasonalised state, `damping` the trend's phi (1 = undamped),
    `alpha` and `beta` the state-space smoothing weights. Croston: `level` is the smoothed demand size,
    `interval` the smoothed weeks between demands, `since_demand` the weeks since the last one.
    `season` holds Fourier coefficients (sin, cos per harmonic) of a multiplicative annual factor.
    """

    method: Method
    origin: date
    level: float
    trend: float = 0.0
    damping: float = 1.0
    alpha: float = 0.0
    beta: float = 0.0
    interval: float = 1.0
    since_demand: float = 0.0
    season: tuple[float, ...] = ()
    demand_class: str = "smooth"
    spec: str = ""  # what was chosen, for people: e.g. "ETS(A,Ad,N) season K=2"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = self.method.value
        data["origin"] = self.origin.isoformat()
        data["season"] = list(self.season)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BaselineModel:
        values = dict(data)
        values["method"] = Method(values["method"])
        values["origin"] = date.fromisoformat(values["origin"])
        values["season"] = tuple(float(c) for c in values.get("season", ()))
        return cls(**values)


def week_number(monday: date) -> int:
    """Weeks since 0001-01-01 (a Monday): the time axis the seasonal terms are evaluated on."""
    return (monday.toordinal() - 1) // 7


def fourier_terms(weeks: np.ndarray, harmonics: int) -> FloatArray:
    """(len(weeks), 2 * harmonics) columns sin(2πkt/P), cos(2πkt/P) for k = 1..harmonics, P = SEASON_WEEKS."""
    angle = 2.0 * np.pi * np.outer(np.asarray(weeks, dtype=np.float64), np.arange(1, harmonics + 1)) / SEASON_WEEKS
    terms = np.empty((angle.shape[0], 2 * harmonics))
    terms[:, 0::2] = np.sin(angle)
    terms[:, 1::2] = np.cos(angle)
    return terms


def season_factors(coefficients: FloatArray, weeks: np.ndarray) -> FloatArray:
    """(n, len(weeks)) multiplicative seasonal factors from (n, 2K) Fourier coefficients (zero-padded)."""
    harmonics = coefficients.shape[1] // 2
    if harmonics == 0:
        return np.ones((coefficients.shape[0], len(weeks)))
    factors: FloatArray = np.maximum(1.0 + coefficients @ fourier_terms(weeks, harmonics).T, MIN_SEASON_FACTOR)
    return factors


@dataclass
class _States:
    is_ets: BoolArray
    level: FloatArray
    trend: FloatArray
    damping: FloatArray
    alpha: FloatArray
    beta: FloatArray
    interval: FloatArray
    since: FloatArray
    season: FloatArray  # (n, 2K)
    lag: np.ndarray  # weeks between each model's origin and the horizon (negative: fitted past it)


def _states(models: Sequence[BaselineModel], horizon_start: date) -> _States:
    count = len(models)
    harmonics = max((len(m.season) // 2 for m in models), default=0)
    season = np.zeros((count, 2 * harmonics))
    for row, model in enumerate(models):
        if model.season:
            season[row, : len(model.season)] = model.season

    def column(name: str) -> FloatArray:
        return np.fromiter((getattr(m, name) for m in models), dtype=np.float64, count=count)

    is_ets = np.fromiter((m.method is Method.ETS for m in models), dtype=np.bool_, count=count)
    lag = np.fromiter(((horizon_start - m.origin).days // 7 for m in models), dtype=np.int64, count=count)
    return _States(
        is_ets,
        column("level"),
        column("trend"),
        column("damping"),
        column("alpha"),
        column("beta"),
        column("interval"),
        column("since_demand"),
        season,
        lag,
    )


def project(
    models: Sequence[BaselineModel],
    units: FloatArray,
    usable: BoolArray,
    horizon_start: date,
    horizon_weeks: int,
) -> FloatArray:
    """(n, horizon_weeks) baseline of each model's SKU, from the horizon's first week on.

    `units` and `usable` are the SKUs' weekly history up to the week before the horizon (last column).
    Weeks completed after a model's origin update its state with its own fitted weights, so a model fitted
    a week ago still forecasts from last week's demand; an unusable (distorted) week leaves the state to
    its own expectation. Vectorised over all models.
    """
    count = len(models)
    if count == 0:
        return np.zeros((0, horizon_weeks))
    s = _states(models, horizon_start)
    history_weeks = units.shape[1]
    lag = np.clip(s.lag, 0, history_weeks)
    first_week = week_number(horizon_start) - history_weeks
    level, trend, size, interval, since = s.level.copy(), s.trend.copy(), s.level.copy(), s.interval, s.since
    for column in range(history_weeks - int(lag.max(initial=0)), history_weeks):
        active = column >= history_weeks - lag
        factor = season_factors(s.season, np.array([first_week + column]))[:, 0]
        seen = active & usable[:, column]
        demand = units[:, column]
        # ETS: error correction on the deseasonalised week; a skipped week follows the model's own forecast
        expected = level + s.damping * trend
        error = np.where(seen, demand / factor - expected, 0.0)
        moved = active & s.is_ets
        level = np.where(moved, expected + s.alpha * error, level)
        trend = np.where(moved, s.damping * trend + s.beta * error, trend)
        # Croston: only weeks actually observed count towards the interval
        croston = seen & ~s.is_ets
        new_size, new_interval, new_since = croston_step(size, interval, since, s.alpha, demand)
        size = np.where(croston, new_size, size)
        interval = np.where(croston, new_interval, interval)
        since = np.where(croston, new_since, since)
    # a model fitted past the horizon (negative lag) forecasts the horizon's weeks from fewer steps ahead
    ahead = np.arange(1, horizon_weeks + 1)[None, :] + np.minimum(s.lag, 0)[:, None]
    ahead = np.maximum(ahead, 1)
    powers = s.damping[:, None] ** np.arange(1, ahead.max() + 1)[None, :]
    damped_steps = np.take_along_axis(np.cumsum(powers, axis=1), ahead - 1, axis=1)
    weeks = week_number(horizon_start) + np.arange(horizon_weeks)
    ets = (level[:, None] + trend[:, None] * damped_steps) * season_factors(s.season, weeks)
    flat = np.repeat(sba_forecast(size, interval, s.alpha)[:, None], horizon_weeks, axis=1)
    baseline: FloatArray = np.maximum(np.where(s.is_ets[:, None], ets, flat), 0.0)
    return baseline
