"""The forecast's track record on a SKU's own history: a rolling-origin backtest of the planning core as
production runs it (fit on the weeks before the origin, then plan), against seasonal naive and ETS computed
in the same run on the same zero-filled weekly series.

At each origin every method sees only the weeks before it and forecasts the next `lead_weeks`; only
complete weeks (before `horizon_start`) are scored. Errors are tallied per SKU and week kind (normal,
promotion, post-promotion, cannibalized): wMAPE = Σ|forecast - actual| / Σ actual, bias = Σ(forecast -
actual) / Σ actual (positive: over-forecast), MAE per week. The SKU's forecastability class is its demand
class over the whole history (smooth, erratic, intermittent, lumpy; see intermittent.py).

Needs the statistics libraries (like fitting.py): import it where it runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
from statsforecast.models import AutoETS

from .fitting import fit_baselines
from .history import weekly_history
from .intermittent import classify, demand_profile
from .model import PlanningParams, Promotion, SkuInputs
from .plan import plan_many
from .weeks import FloatArray, monday_of, require_monday

SALESOPS = "salesops"
SEASONAL_NAIVE = "seasonal naive"
ETS = "ETS"
METHODS = (SALESOPS, SEASONAL_NAIVE, ETS)
WEEK_KINDS = ("normal", "promotion", "post-promotion", "cannibalized")
ALL = "all"
SEASON = 52
MIN_ORIGIN_WEEKS = 4  # an origin needs this many observed weeks before it to be scored
MIN_ETS_WEEKS = 8  # below it ETS forecasts the mean of what there is


@dataclass
class Tally:
    absolute: float = 0.0
    signed: float = 0.0
    actual: float = 0.0
    weeks: int = 0

    def add(self, forecast: float, actual: float) -> None:
        self.absolute += abs(forecast - actual)
        self.signed += forecast - actual
        self.actual += actual
        self.weeks += 1

    def merge(self, other: Tally) -> None:
        self.absolute += other.absolute
        self.signed += other.signed
        self.actual += other.actual
        self.weeks += other.weeks

    @property
    def wmape(self) -> float | None:
        return self.absolute / self.actual if self.actual > 0 else None

    @property
    def bias(self) -> float | None:
        return self.signed / self.actual if self.actual > 0 else None

    @property
    def mae(self) -> float | None:
        return self.absolute / self.weeks if self.weeks else None


@dataclass
class SkuTrack:
    """One SKU's backtest: tallies by (method, week kind or "all")."""

    sku: str
    demand_class: str
    origins: int = 0
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)

    def tally(self, method: str, kind: str = ALL) -> Tally:
        return self.tallies.get((method, kind), Tally())

    def add(self, method: str, kind: str, forecast: float, actual: float) -> None:
        for name in (ALL, kind):
            self.tallies.setdefault((method, name), Tally()).add(forecast, actual)


def origins_before(horizon_start: date, origins: int, step_weeks: int) -> list[date]:
    """The backtest's origins, oldest first: every `step_weeks` weeks back from the horizon."""
    require_monday(horizon_start)
    return [horizon_start - timedelta(weeks=step_weeks * k) for k in range(origins, 0, -1)]


def backtest(
    inputs: Sequence[SkuInputs],
    horizon_start: date,
    promotions: Sequence[Promotion] = (),
    *,
    origins: int = 6,
    step_weeks: int = 2,
    lead_weeks: int = 4,
    params: PlanningParams = PlanningParams(),
) -> list[SkuTrack]:
    """One track per SKU (in the order given): salesops, seasonal naive and ETS from each origin."""
    if not inputs:
        return []
    units, observed = weekly_history([inp.history for inp in inputs], horizon_start)
    adi, cv2 = demand_profile(units, observed)
    classes = [classify(float(a), float(c)).value for a, c in zip(adi, cv2, strict=True)]
    tracks = [SkuTrack(inp.item.sku, demand_class) for inp, demand_class in zip(inputs, classes, strict=True)]
    history_weeks = units.shape[1]
    kinds = [week_kinds(inp.item.sku, promotions, horizon_start, history_weeks) for inp in inputs]
    for origin in origins_before(horizon_start, origins, step_weeks):
        column = history_weeks - (horizon_start - origin).days // 7  # the origin's column in `units`
        scored = [row for row in range(len(inputs)) if observed[row, :column].sum() >= MIN_ORIGIN_WEEKS]
        if not scored:
            continue
        lead = min(lead_weeks, history_weeks - column)
        salesops = _salesops(inputs, scored, origin, lead, promotions, params)
        for index, row in enumerate(scored):
            track = tracks[row]
            track.origins += 1
            history = units[row, :column][observed[row, :column]]
            forecasts = {
                SALESOPS: salesops[index],
                SEASONAL_NAIVE: seasonal_naive(history, lead),
                ETS: auto_ets(history, lead),
            }
            for week in range(lead):
                actual = float(units[row, column + week])
                kind = kinds[row][column + week]
                for method, forecast in forecasts.items():
                    track.add(method, kind, float(forecast[week]), actual)
    return tracks


def _salesops(
    inputs: Sequence[SkuInputs],
    rows: Sequence[int],
    origin: date,
    lead: int,
    promotions: Sequence[Promotion],
    params: PlanningParams,
) -> FloatArray:
    """(len(rows), lead) forecasts of the planning core as it stood at `origin`: fitted, then planned."""
    known = [_as_of(inputs[row], origin) for row in rows]
    models = fit_baselines(known, origin, promotions, params)
    known = [replace(inp, baseline_model=model) for inp, model in zip(known, models, strict=True)]
    plans = plan_many(known, origin, lead, promotions=promotions, params=params, today=origin - timedelta(days=1))
    return np.array([[w.forecast for w in plan.weeks] for plan in plans])


def _as_of(inp: SkuInputs, origin: date) -> SkuInputs:
    """What planning knew of a SKU the day before `origin`: its history and spikes before it, no plan."""
    return SkuInputs(
        item=inp.item,
        history={week: units for week, units in inp.history.items() if week < origin},
        spikes=tuple(s for s in inp.spikes if s.day < origin),
        recent_days={day: units for day, units in inp.recent_days.items() if day < origin},
    )


def week_kinds(sku: str, promotions: Sequence[Promotion], horizon_start: date, weeks: int) -> list[str]:
    """The kind of each of the `weeks` weeks before the horizon: promotion > cannibalized > post-promotion
    > normal."""
    kinds = ["normal"] * weeks
    rank = {"normal": 0, "post-promotion": 1, "cannibalized": 2, "promotion": 3}
    first = horizon_start - timedelta(weeks=weeks)

    def mark(start: date, end: date, kind: str) -> None:
        monday = max(monday_of(start), first)
        while monday <= end and monday < horizon_start:
            column = (monday - first).days // 7
            if rank[kind] > rank[kinds[column]]:
                kinds[column] = kind
            monday += timedelta(weeks=1)

    for promo in promotions:
        if promo.cancelled:
            continue
        if any(i.sku == sku for i in promo.items):
            mark(promo.starts_on, promo.ends_on, "promotion")
            if promo.post_promo_dip_pct and promo.post_promo_dip_weeks > 0:
                mark(
                    promo.ends_on + timedelta(days=1),
                    promo.ends_on + timedelta(weeks=promo.post_promo_dip_weeks),
                    "post-promotion",
                )
        if any(c.sku == sku for c in promo.cannibalized):
            mark(promo.starts_on, promo.ends_on, "cannibalized")
    return kinds


def seasonal_naive(history: FloatArray, horizon: int) -> FloatArray:
    """The same week a year before; the last week while there is no full year."""
    if history.size >= SEASON:
        return np.resize(history[-SEASON:], horizon).astype(np.float64)
    return np.full(horizon, float(history[-1]) if history.size else 0.0)


def auto_ets(history: FloatArray, horizon: int) -> FloatArray:
    """statsforecast's AutoETS (error, trend and damping chosen by AICc; no season: it fits none longer
    than 24 periods) on the raw zero-filled series, as a planner would run it off the shelf."""
    mean = np.full(horizon, float(history.mean()) if history.size else 0.0)
    if history.size < MIN_ETS_WEEKS:
        return mean
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            forecast = np.asarray(AutoETS(model="ZZN").fit(history).predict(horizon)["mean"], dtype=np.float64)
        except Exception:  # the library gives up on degenerate series (e.g. all zeros): the mean serves
            return mean
    if forecast.shape != (horizon,) or not np.isfinite(forecast).all():
        return mean
    result: FloatArray = np.maximum(forecast, 0.0)
    return result


def summary(tracks: Sequence[SkuTrack], key: Mapping[str, str] | None = None) -> dict[tuple[str, str, str], Tally]:
    """Tallies summed over SKUs by (group, method, week kind); the group is `key[sku]` (default: "all")."""
    totals: dict[tuple[str, str, str], Tally] = {}
    for track in tracks:
        group = key.get(track.sku, ALL) if key is not None else ALL
        for (method, kind), tally in track.tallies.items():
            totals.setdefault((group, method, kind), Tally()).merge(tally)
    return totals
