"""The standard models salesops is measured against, as a planner would run them off the shelf on a SKU's
weekly series: seasonal naive, Holt-Winters (statsmodels), automatic ETS and MSTL (statsforecast)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from statsforecast.models import MSTL, AutoETS
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from salesops.evaluation.simulator import FloatArray

SEASON = 52
MIN_WEEKS = 8  # below this every model falls back to the mean of what there is

Forecaster = Callable[[FloatArray, int], FloatArray]


def seasonal_naive(history: FloatArray, horizon: int) -> FloatArray:
    """The same week last year; the last week while there is no full year."""
    if history.size >= SEASON:
        last_year = history[-SEASON:]
        return np.resize(last_year, horizon).astype(np.float64)
    return np.full(horizon, history[-1] if history.size else 0.0)


def holt_winters(history: FloatArray, horizon: int) -> FloatArray:
    """Additive damped trend, plus an additive 52-week season once two full seasons exist (statsmodels's
    ExponentialSmoothing, maximum likelihood from the classical start values)."""
    if history.size < MIN_WEEKS:
        return _mean(history, horizon)
    seasonal = history.size >= 2 * SEASON
    model = ExponentialSmoothing(
        history,
        trend="add",
        damped_trend=True,
        seasonal="add" if seasonal else None,
        seasonal_periods=SEASON if seasonal else None,
        # the classical start values; estimating 52 seasonal starts too costs 40 times as much, no better
        initialization_method="heuristic" if seasonal else "estimated",
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        forecast = np.asarray(model.fit(use_brute=False).forecast(horizon), dtype=np.float64)
    return _clean(forecast, history, horizon)


def auto_ets(history: FloatArray, horizon: int) -> FloatArray:
    """ETS chosen by AICc among error, trend and damping forms (statsforecast's AutoETS, no season: it
    does not fit seasons longer than 24 periods)."""
    if history.size < MIN_WEEKS:
        return _mean(history, horizon)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        forecast = AutoETS(model="ZZN").fit(history).predict(horizon)["mean"]
    return _clean(np.asarray(forecast, dtype=np.float64), history, horizon)


def mstl(history: FloatArray, horizon: int) -> FloatArray:
    """MSTL decomposition with a 52-week season, AutoETS on the trend (statsforecast); AutoETS alone
    before two full seasons exist."""
    if history.size < 2 * SEASON:
        return auto_ets(history, horizon)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        forecast = MSTL(season_length=SEASON).fit(history).predict(horizon)["mean"]
    return _clean(np.asarray(forecast, dtype=np.float64), history, horizon)


STANDARD_MODELS: dict[str, Forecaster] = {
    "seasonal naive": seasonal_naive,
    "Holt-Winters": holt_winters,
    "AutoETS": auto_ets,
    "MSTL": mstl,
}


def _mean(history: FloatArray, horizon: int) -> FloatArray:
    return np.full(horizon, float(history.mean()) if history.size else 0.0)


def _clean(forecast: FloatArray, history: FloatArray, horizon: int) -> FloatArray:
    if forecast.shape != (horizon,) or not np.isfinite(forecast).all():
        return _mean(history, horizon)
    result: FloatArray = np.maximum(forecast, 0.0)
    return result
