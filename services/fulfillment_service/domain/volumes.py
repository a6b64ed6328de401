"""Fulfillment rules: a warehouse report's lines (a correction replaces, never adds), and order spikes
detected against a SKU's own weekday-seasonal baseline, told apart from promotions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from operator import attrgetter
from typing import NamedTuple, Protocol

# Scale factor that makes the median absolute deviation a consistent estimate of a normal sigma.
_MAD_TO_SIGMA = 1.4826


class DayVolume(NamedTuple):
    """One reported line: a warehouse's figures of a SKU on a day (a tuple: a report holds up to 10,000)."""

    sku: str
    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int


class LineFigures(Protocol):
    """A reported line as the request or event models carry it."""

    @property
    def sku(self) -> str: ...
    @property
    def day(self) -> date: ...
    @property
    def units_ordered(self) -> int: ...
    @property
    def units_shipped(self) -> int: ...
    @property
    def units_backordered(self) -> int: ...


@dataclass(frozen=True)
class ReportVolumes:
    """A warehouse reports daily figures; each line replaces the stored figures of its (sku, day)."""

    warehouse_id: str
    lines: tuple[DayVolume, ...]

    @classmethod
    def of(cls, warehouse_id: str, lines: Iterable[LineFigures]) -> ReportVolumes:
        # attrgetter and tuple construction run in C: a report holds up to 10,000 lines.
        return cls(warehouse_id, tuple(map(DayVolume._make, map(_LINE_FIGURES, lines))))


_LINE_FIGURES = attrgetter("sku", "day", "units_ordered", "units_shipped", "units_backordered")


def latest_lines(lines: Iterable[DayVolume]) -> list[DayVolume]:
    """One line per (sku, day): within a batch the last line of a key wins (a correction replaces, never adds)."""
    latest: dict[tuple[str, date], DayVolume] = {}
    for line in lines:
        latest[(line.sku, line.day)] = line
    return list(latest.values())


@dataclass(frozen=True, slots=True)
class SpikeRule:
    """When a day's units ordered (all warehouses) count as a spike.

    For day d, the history is the `baseline_weeks` * 7 days before d, clipped to the SKU's observed
    range: days from the first day present in the series up to d - 1. Inside that range a missing day
    counts as 0 orders; days before the first report are unknown and are not history at all. Later
    days are ignored, so re-evaluating an old day gives the verdict it had.

    - seasonal = lower median of the same-weekday values in the history (weekly seasonality);
    - level    = median of the last `level_days` history days (the SKU's overall recent level);
    - baseline = max(seasonal, level): a usually quiet weekday is not judged against ~0 alone, and a
      sustained rise is absorbed within about half of `level_days` instead of being flagged forever;
    - sigma    = 1.4826 * median |x_t - seasonal(weekday t)| over history days whose weekday has at least
      `min_same_weekday` observations, floored at sqrt(baseline) (the counting noise of orders) and at
      `min_sigma`;
    - spike iff units > baseline + z_threshold * sigma AND units >= baseline * min_ratio AND
      units - baseline >= min_units. A baseline of 0 has no ratio (infinite): only the other two apply.

    The rule judges only with at least `min_history_days` history days and `min_same_weekday`
    observations of d's weekday; otherwise there is no verdict (not a spike).

    Past spikes are not excluded by flag but neutralised by the medians: one outlier cannot move a
    median, and with exactly two same-weekday values the lower one is taken. This keeps the rule
    stateless, so a corrected day and every later day simply re-evaluate from the figures.
    """

    baseline_weeks: int = 8
    level_days: int = 14
    min_history_days: int = 14
    min_same_weekday: int = 2
    z_threshold: float = 3.0
    min_ratio: float = 1.5
    min_units: float = 10.0
    min_sigma: float = 1.0

    def __post_init__(self) -> None:
        if self.baseline_weeks < 1 or self.level_days < 1 or self.min_same_weekday < 1:
            raise ValueError("baseline_weeks, level_days and min_same_weekday must be >= 1")
        if self.min_history_days < 1 or self.min_history_days > self.baseline_weeks * 7:
            raise ValueError("min_history_days must be between 1 and baseline_weeks * 7")
        if self.z_threshold < 0 or self.min_ratio < 0 or self.min_units < 0 or self.min_sigma <= 0:
            raise ValueError("thresholds must be >= 0 and min_sigma > 0")

    @property
    def window_days(self) -> int:
        return self.baseline_weeks * 7


@dataclass(frozen=True, slots=True)
class Spike:
    day: date
    units: float
    baseline: float
    seasonal_baseline: float
    level: float
    sigma: float
    ratio: float | None  # units / baseline; None when the baseline is 0
    excess_units: float
    z_score: float
    sku: str | None = None
    explained_by_promotion_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Baseline:
    seasonal: float
    level: float
    sigma: float

    @property
    def value(self) -> float:
        return max(self.seasonal, self.level)


def _median_low(values: list[float]) -> float:
    # statistics.median_low / median, without their generic type handling (the rule calls them per judged day).
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _by_ordinal(daily_totals: Mapping[date, float]) -> dict[int, float]:
    # Day ordinals instead of dates: the rule walks a 56-day window for every day it judges, and building
    # date objects for it dominated the cost of a bulk report (ordinal % 7 groups weekdays like date.weekday()).
    return {d.toordinal(): float(v) for d, v in daily_totals.items()}


def _baseline(totals: Mapping[int, float], first: int, day: int, rule: SpikeRule) -> _Baseline | None:
    """The baseline of day ordinal `day` from `totals` (day ordinal -> units), whose first day is `first`."""
    start = max(first, day - rule.window_days)
    if day - start < rule.min_history_days:
        return None
    history = range(start, day)
    values = [totals.get(d, 0.0) for d in history]
    by_weekday: dict[int, list[float]] = {}
    for d, value in zip(history, values, strict=True):
        by_weekday.setdefault(d % 7, []).append(value)
    same_weekday = by_weekday.get(day % 7, [])
    if len(same_weekday) < rule.min_same_weekday:
        return None
    seasonal_of = {wd: _median_low(v) for wd, v in by_weekday.items()}
    level = _median(values[-rule.level_days :])
    residuals = [
        abs(value - seasonal_of[d % 7])
        for d, value in zip(history, values, strict=True)
        if len(by_weekday[d % 7]) >= rule.min_same_weekday
    ]
    robust_sigma = _MAD_TO_SIGMA * _median(residuals)
    seasonal = seasonal_of[day % 7]
    sigma = max(robust_sigma, math.sqrt(max(seasonal, level)), rule.min_sigma)
    return _Baseline(seasonal=seasonal, level=level, sigma=sigma)


def _judge(totals: Mapping[int, float], first: int, day: date, rule: SpikeRule, sku: str | None) -> Spike | None:
    base = _baseline(totals, first, day.toordinal(), rule)
    if base is None:
        return None
    units = totals.get(day.toordinal(), 0.0)
    baseline = base.value
    excess = units - baseline
    ratio = units / baseline if baseline > 0 else None
    if excess <= rule.z_threshold * base.sigma or excess < rule.min_units:
        return None
    if ratio is not None and ratio < rule.min_ratio:
        return None
    return Spike(
        day=day,
        units=units,
        baseline=baseline,
        seasonal_baseline=base.seasonal,
        level=base.level,
        sigma=base.sigma,
        ratio=ratio,
        excess_units=excess,
        z_score=excess / base.sigma,
        sku=sku,
    )


def detect_spike(
    daily_totals: Mapping[date, float], day: date, rule: SpikeRule, *, sku: str | None = None
) -> Spike | None:
    """The spike on `day` under `rule`, or None (not a spike, or not enough history to judge)."""
    if not daily_totals:
        return None
    totals = _by_ordinal(daily_totals)
    return _judge(totals, min(totals), day, rule, sku)


def detect_spikes(
    daily_totals: Mapping[date, float], days: Iterable[date], rule: SpikeRule, *, sku: str | None = None
) -> dict[date, Spike | None]:
    """Verdict for every requested day, in date order; None tells the caller to retract a stored spike.

    The same verdicts as `detect_spike` day by day, with the series prepared once."""
    ordered = sorted(set(days))
    if not daily_totals:
        return dict.fromkeys(ordered)
    totals = _by_ordinal(daily_totals)
    first = min(totals)
    return {day: _judge(totals, first, day, rule, sku) for day in ordered}


def shift_days(day: date, days: int) -> date:
    """`day` moved by `days`, held at the first or last representable date rather than overflowing.

    Requests only carry dates of the documented range, far from both ends; rows stored before that range
    was enforced may not, and must not make a whole report fail."""
    return date.fromordinal(min(max(day.toordinal() + days, 1), date.max.toordinal()))


def days_to_reevaluate(changed_days: Iterable[date], rule: SpikeRule, *, until: date) -> list[date]:
    """Days whose verdict a change on `changed_days` can move: each changed day and every later day
    (up to `until`) whose history window contains it."""
    affected: set[date] = set()
    for changed in changed_days:
        last = min(until, shift_days(changed, rule.window_days))
        affected.update(changed + timedelta(days=i) for i in range((last - changed).days + 1))
    return sorted(affected)


@dataclass(frozen=True, slots=True)
class Detection:
    """Store the spike as detected and publish it (a new spike, or one whose published view changed)."""

    spike: Spike


@dataclass(frozen=True, slots=True)
class Retraction:
    """Mark the stored spike retracted and publish it as it was."""

    spike: Spike


def published_view(spike: Spike) -> tuple[float, float, str | None]:
    """What consumers act on; other figures may drift slightly without a new event."""
    return (spike.units, round(spike.baseline, 3), spike.explained_by_promotion_id)


def spike_update(live: Spike | None, verdict: Spike | None) -> Detection | Retraction | None:
    """What a day's new verdict does to its stored spike (`live`: the stored one unless retracted)."""
    if verdict is None:
        return Retraction(live) if live is not None else None
    if live is not None and published_view(live) == published_view(verdict):
        return None
    return Detection(verdict)


@dataclass(frozen=True, slots=True)
class PromotionWindow:
    promotion_id: str
    skus: frozenset[str]
    starts_on: date
    ends_on: date  # inclusive
    cancelled: bool = False

    def __post_init__(self) -> None:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must be on or after starts_on")

    def explains(self, sku: str, day: date) -> bool:
        return not self.cancelled and sku in self.skus and self.starts_on <= day <= self.ends_on


def explaining_promotion(sku: str, day: date, windows: Iterable[PromotionWindow]) -> str | None:
    """The promotion that explains orders of `sku` on `day`: the most recently started covering one,
    ties broken by the smallest promotion_id so the answer never depends on input order."""
    covering = [w for w in windows if w.explains(sku, day)]
    if not covering:
        return None
    best = min(covering, key=lambda w: (-w.starts_on.toordinal(), w.promotion_id))
    return best.promotion_id


def explain_spike(spike: Spike, sku: str, windows: Iterable[PromotionWindow]) -> Spike:
    """The spike with `explained_by_promotion_id` set (or cleared) from the current promotion windows."""
    return replace(spike, sku=sku, explained_by_promotion_id=explaining_promotion(sku, spike.day, windows))


__all__ = [
    "DayVolume",
    "Detection",
    "PromotionWindow",
    "ReportVolumes",
    "Retraction",
    "Spike",
    "SpikeRule",
    "days_to_reevaluate",
    "detect_spike",
    "detect_spikes",
    "explain_spike",
    "explaining_promotion",
    "latest_lines",
    "published_view",
    "spike_update",
]
