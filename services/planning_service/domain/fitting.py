"""Fitting each SKU's baseline model on its cleaned weekly history, where it is cheap to do so: at the
week's rollover and when a SKU's history changes, in chunks, never on the per-event path.

Per SKU, on the zero-filled history with promotion, dip and cannibalized weeks replaced by a robust local
estimate and one-off spike days taken out:
- fewer than MIN_FIT_WEEKS observed weeks: no model (the fixed-weight smoothing serves short histories);
- intermittent or lumpy demand (ADI >= 1.32): Croston with the Syntetos-Boylan debiasing (statsforecast);
- otherwise: with two full years observed, an annual multiplicative season of K Fourier harmonics, K
  chosen by AICc (K = 0 when the history shows no season); then, on the deseasonalised history,
  exponential smoothing with no trend or a damped one, chosen by AICc (statsforecast's ETS).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np
from statsforecast.ets import ets_f
from statsforecast.models import SimpleExponentialSmoothing

from .baseline import MIN_SEASON_FACTOR, BaselineModel, Method, fourier_terms, week_number
from .history import (
    MAX_HISTORY_WEEKS,
    distorted_mask,
    promotion_history_weeks,
    replace_distorted,
    spike_excess,
    weekly_history,
)
from .intermittent import classify, demand_profile
from .model import PlanningParams, Promotion, SkuInputs
from .refit import MIN_FIT_WEEKS
from .sensing import isolated_spikes
from .weeks import FloatArray, require_monday

MIN_SEASON_WEEKS = 104  # a season must have been seen twice before it is believed
HARMONICS = (0, 1, 2, 3, 5, 8)  # candidate Fourier orders of the annual season
CROSTON_ALPHA = 0.1  # the smoothing weight statsforecast's Croston methods use
CHUNK_SKUS = 500


def fit_baselines(
    inputs: Sequence[SkuInputs],
    horizon_start: date,
    promotions: Sequence[Promotion] = (),
    params: PlanningParams = PlanningParams(),
) -> list[BaselineModel | None]:
    """One model per SKU (None where the history is too short), fitted on the complete weeks before
    `horizon_start`; the models' origin is `horizon_start`."""
    require_monday(horizon_start)
    if not inputs:
        return []
    cleaned, observed = cleaned_history(inputs, horizon_start, promotions, params)
    adi, cv2 = demand_profile(cleaned, observed)
    first_week = week_number(horizon_start) - MAX_HISTORY_WEEKS
    models: list[BaselineModel | None] = []
    for row in range(len(inputs)):
        start = int(np.argmax(observed[row])) if observed[row].any() else MAX_HISTORY_WEEKS
        history = cleaned[row, start:]
        if history.size < MIN_FIT_WEEKS:
            models.append(None)
            continue
        demand_class = classify(float(adi[row]), float(cv2[row]))
        if demand_class.sporadic:
            models.append(_croston(history, horizon_start, demand_class.value))
        else:
            models.append(_ets(history, first_week + start, horizon_start, demand_class.value))
    return models


def fit_in_chunks(
    inputs: Iterable[SkuInputs],
    horizon_start: date,
    promotions: Sequence[Promotion] = (),
    params: PlanningParams = PlanningParams(),
    chunk_skus: int = CHUNK_SKUS,
) -> Iterator[list[tuple[str, BaselineModel | None]]]:
    """(sku, model) pairs a chunk at a time: memory stays flat in the number of SKUs."""
    chunk: list[SkuInputs] = []
    for inp in inputs:
        chunk.append(inp)
        if len(chunk) >= chunk_skus:
            yield _fit_chunk(chunk, horizon_start, promotions, params)
            chunk = []
    if chunk:
        yield _fit_chunk(chunk, horizon_start, promotions, params)


def _fit_chunk(
    chunk: Sequence[SkuInputs], horizon_start: date, promotions: Sequence[Promotion], params: PlanningParams
) -> list[tuple[str, BaselineModel | None]]:
    models = fit_baselines(chunk, horizon_start, promotions, params)
    return [(inp.item.sku, model) for inp, model in zip(chunk, models, strict=True)]


def cleaned_history(
    inputs: Sequence[SkuInputs], horizon_start: date, promotions: Sequence[Promotion], params: PlanningParams
) -> tuple[FloatArray, np.ndarray]:
    """Zero-filled weekly history with one-off spike excess removed and distorted weeks replaced."""
    units, observed = weekly_history([inp.history for inp in inputs], horizon_start)
    excess = spike_excess([isolated_spikes(inp.spikes, params) for inp in inputs], horizon_start)
    units = np.maximum(units - excess, 0.0)
    skus = {inp.item.sku for inp in inputs}
    # a chunk of SKUs is touched by few of all promotions: find those before computing their weeks
    active = [
        p
        for p in promotions
        if not p.cancelled and (any(i.sku in skus for i in p.items) or any(c.sku in skus for c in p.cannibalized))
    ]
    distorted = distorted_mask(
        [inp.item.sku for inp in inputs], promotion_history_weeks(active, horizon_start), horizon_start
    )
    return replace_distorted(units, observed, distorted), observed


def _croston(history: FloatArray, origin: date, demand_class: str) -> BaselineModel:
    demand_weeks = np.nonzero(history > 0)[0]
    if demand_weeks.size == 0:
        return BaselineModel(Method.CROSTON_SBA, origin, 0.0, alpha=CROSTON_ALPHA, demand_class=demand_class)
    intervals = np.diff(demand_weeks + 1, prepend=0).astype(np.float64)
    size = _ses(history[demand_weeks])
    interval = _ses(intervals)
    since = float(history.size - 1 - demand_weeks[-1])
    return BaselineModel(
        Method.CROSTON_SBA,
        origin,
        size,
        alpha=CROSTON_ALPHA,
        interval=interval,
        since_demand=since,
        demand_class=demand_class,
        spec="Croston SBA",
    )


def _ses(values: FloatArray) -> float:
    fitted = SimpleExponentialSmoothing(alpha=CROSTON_ALPHA).fit(values)
    return float(fitted.predict(1)["mean"][0])


def _ets(history: FloatArray, first_week: int, origin: date, demand_class: str) -> BaselineModel:
    weeks = first_week + np.arange(history.size)
    season = _season(history, weeks) if history.size >= MIN_SEASON_WEEKS else np.zeros(0)
    factors = np.ones(history.size)
    if season.size:
        factors = np.maximum(1.0 + fourier_terms(weeks, season.size // 2) @ season, MIN_SEASON_FACTOR)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        adjusted = history / factors
        # level only, or level and damped trend, whichever AICc prefers: an undamped trend extrapolated over
        # half a year is rarely right, and leaving it out saves a third of the fitting time
        fit = min(
            (ets_f(adjusted, m=1, model="ANN"), ets_f(adjusted, m=1, model="AAN", damped=True)),
            key=_aicc,
        )
    components = str(fit["components"])  # error, trend, season, damped: e.g. "AAND"
    alpha, beta, _, phi = (float(v) for v in fit["par"][:4])
    has_trend = components[1] != "N"
    damped = has_trend and components[3] == "D"
    state = fit["states"][-1]
    trend_name = ("Ad" if damped else "A") if has_trend else "N"
    return BaselineModel(
        Method.ETS,
        origin,
        float(state[0]),
        trend=float(state[1]) if has_trend else 0.0,
        damping=phi if damped else 1.0,
        alpha=alpha,
        beta=beta if has_trend else 0.0,
        season=tuple(float(c) for c in season),
        demand_class=demand_class,
        spec=f"ETS(A,{trend_name},N)" + (f" season K={season.size // 2}" if season.size else ""),
    )


def _aicc(fit: dict[str, Any]) -> float:
    value = float(fit["aicc"])
    return value if np.isfinite(value) else np.inf


def _season(history: FloatArray, weeks: np.ndarray) -> FloatArray:
    """Relative Fourier coefficients of the annual season, K chosen by AICc of a regression on a smooth
    (cubic) trend plus K harmonics; empty when K = 0 wins or the level is not positive."""
    count = history.size
    t = (weeks - weeks.mean()) / max(count, 1)
    trend = np.column_stack([np.ones(count), t, t**2, t**3])
    best: tuple[float, FloatArray] | None = None
    for harmonics in HARMONICS:
        design = np.hstack([trend, fourier_terms(weeks, harmonics)]) if harmonics else trend
        coefficients, *_ = np.linalg.lstsq(design, history, rcond=None)
        residual = history - design @ coefficients
        rss = max(float(residual @ residual), 1e-12)
        params = design.shape[1] + 1
        if count - params - 1 <= 0:
            break
        aicc = count * np.log(rss / count) + 2 * params + 2 * params * (params + 1) / (count - params - 1)
        if best is None or aicc < best[0]:
            best = (aicc, coefficients[trend.shape[1] :])
    level = float(history.mean())
    if best is None or best[1].size == 0 or level <= 0:
        return np.zeros(0)
    relative: FloatArray = best[1] / level
    return relative
