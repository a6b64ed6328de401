"""The spike rule over many SKUs at once: the same verdicts as `detect_spikes` (see `SpikeRule`), computed with
numpy over dense daily series, so a report touching hundreds of SKUs and thousands of days judges them all in
a handful of array operations instead of a Python loop per judged day.

A SKU's series is dense: `values[i]` is the units ordered (all warehouses) of day ordinal `first + i`, 0 for a
day without a report, and `first` is where the observed history starts (the SKU's first report, or the first
day loaded when earlier history exists). For day d the history window is the `window_days` days before d,
clipped at `first`; laid out as a (weeks, 7) block, column 0 holds d's weekday, so the same-weekday medians are
column medians and every median is a sort along one axis with the missing (clipped) days as NaN at the end.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from services.fulfillment_service.domain.volumes import Spike, SpikeRule, days_to_reevaluate, detect_spikes

_MAD_TO_SIGMA = 1.4826
# Judged days per array block: bounds the (days x window) matrices of a very large report (about 4 MB each).
_BLOCK = 8_192

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DenseSeries:
    """A SKU's daily units ordered (all warehouses): `values[i]` is day ordinal `first + i`."""

    first: int
    values: Floats

    @property
    def last(self) -> int:
        return self.first + len(self.values) - 1

    @classmethod
    def of(cls, daily_totals: Mapping[date, float]) -> DenseSeries:
        """From a sparse series (day -> units); days inside its range without an entry are 0."""
        ordinals = np.fromiter((d.toordinal() for d in daily_totals), dtype=np.int64, count=len(daily_totals))
        first = int(ordinals.min())
        values = np.zeros(int(ordinals.max()) - first + 1)
        values[ordinals - first] = np.fromiter(daily_totals.values(), dtype=np.float64, count=len(daily_totals))
        return cls(first, values)


@dataclass(frozen=True)
class BatchVerdicts:
    """What the rule says about every day a change could move: `spikes` holds the days that are spikes;
    any other judged day (`judged`) is not one (a stored spike there is to be retracted)."""

    spikes: dict[tuple[str, date], Spike]
    _judged: dict[str, tuple[int, npt.NDArray[np.bool_]]]
    _judged_one_by_one: dict[str, frozenset[date]] = field(default_factory=dict)

    def judged(self, sku: str, day: date) -> bool:
        found = self._judged.get(sku)
        if found is None:
            return day in self._judged_one_by_one.get(sku, ())
        first, mask = found
        index = day.toordinal() - first
        return 0 <= index < len(mask) and bool(mask[index])

    def judged_days(self, sku: str) -> Iterator[date]:
        found = self._judged.get(sku)
        if found is not None:
            first, mask = found
            for index in np.flatnonzero(mask).tolist():
                yield date.fromordinal(first + index)
        yield from sorted(self._judged_one_by_one.get(sku, ()))


@dataclass(frozen=True, slots=True)
class SparseSeries:
    """A SKU's daily units ordered as loaded: `values[i]` is day ordinal `first + at[i]` (`at` ascending, no day
    twice); `first` is where its observed history starts (0 before it does not count, 0 after it does)."""

    first: int
    at: Ints
    values: Floats

    @property
    def span(self) -> int:
        """Days from `first` to the last day with a report."""
        return self.at.item(-1) + 1 if len(self.at) else 0  # `item`: a Python int without a numpy scalar

    def dense(self) -> DenseSeries:
        values = np.zeros(self.span)
        values[self.at] = self.values
        return DenseSeries(self.first, values)

    def by_day(self) -> dict[date, float]:
        """As `detect_spikes` reads a series: the observed start is a day (0 when nothing was reported on it)."""
        series = {date.fromordinal(self.first): 0.0}
        series.update(zip(map(date.fromordinal, (self.at + self.first).tolist()), self.values.tolist(), strict=True))
        return series


# Days of dense series one report judges at once (8 bytes a day per array): a report whose SKUs span more, e.g.
# reports decades apart with nothing between, has the rest judged day by day instead, so memory stays bounded.
MAX_DENSE_DAYS = 1_000_000


def judge_report(
    series: Mapping[str, SparseSeries],
    changed: Mapping[str, Collection[date]],
    rule: SpikeRule,
    *,
    max_dense_days: int = MAX_DENSE_DAYS,
) -> BatchVerdicts:
    """`judge_batch` over the SKUs' series made dense, as many as `max_dense_days` allows (the longest last);
    the others judged day by day (`detect_spikes`), with the same verdicts."""
    dense: dict[str, DenseSeries] = {}
    budget = max_dense_days
    one_by_one: list[str] = []
    spans = {sku: sparse.span for sku, sparse in series.items()}
    for sku in sorted(spans, key=spans.__getitem__):
        span = spans[sku]
        if not span:
            continue
        if span <= budget:
            dense[sku] = series[sku].dense()
            budget -= span
        else:
            one_by_one.append(sku)
    verdicts = judge_batch(dense, {sku: changed[sku] for sku in dense}, rule)
    for sku in one_by_one:
        totals = series[sku].by_day()
        days = days_to_reevaluate(changed[sku], rule, until=max(totals))
        for day, verdict in detect_spikes(totals, days, rule, sku=sku).items():
            if verdict is not None:
                verdicts.spikes[(sku, day)] = verdict
        verdicts._judged_one_by_one[sku] = frozenset(days)
    return verdicts


def _sorted_median(ordered: Floats, count: Ints) -> Floats:
    """Median of each row of `ordered` (sorted, NaN last) over its first `count` entries (count >= 1)."""
    middle = count // 2
    upper = np.take_along_axis(ordered, middle[:, None], axis=1)[:, 0]
    lower = np.take_along_axis(ordered, np.maximum(middle - 1, 0)[:, None], axis=1)[:, 0]
    return np.where(count % 2 == 1, upper, (lower + upper) / 2)


def _judge_block(
    flat: Floats, starts: Ints, positions: Ints, rule: SpikeRule
) -> tuple[npt.NDArray[np.bool_], dict[str, Floats]]:
    """Verdicts of the days at `positions` of `flat`, each in a series starting at `starts` (same length)."""
    weeks, window = rule.baseline_weeks, rule.window_days
    index = positions[:, None] + np.arange(-window, 0)[None, :]
    if weeks >= rule.min_same_weekday and bool((positions - window >= starts).all()):
        return _judge_full_windows(flat, index, positions, rule)
    inside = index >= starts[:, None]
    history = np.where(inside, flat[np.maximum(index, 0)], np.nan)
    observed = inside.sum(axis=1)

    # (days, 7, weeks): each weekday's values contiguous, so the sort runs along the last axis.
    by_weekday = np.ascontiguousarray(history.reshape(-1, weeks, 7).transpose(0, 2, 1))
    by_weekday.sort(axis=2)
    per_weekday = inside.reshape(-1, weeks, 7).sum(axis=1)
    seasonal_of = np.take_along_axis(by_weekday, np.maximum((per_weekday - 1) // 2, 0)[:, :, None], axis=2)[:, :, 0]

    level_days = min(rule.level_days, window)
    recent = np.sort(history[:, window - level_days :], axis=1)
    level = _sorted_median(recent, np.maximum(inside[:, window - level_days :].sum(axis=1), 1))

    counted = np.tile(per_weekday >= rule.min_same_weekday, weeks)
    residuals = np.where(counted, np.abs(history - np.tile(seasonal_of, weeks)), np.nan)
    residuals.sort(axis=1)
    robust_sigma = _MAD_TO_SIGMA * _sorted_median(residuals, np.maximum((~np.isnan(residuals)).sum(axis=1), 1))

    judged = (observed >= rule.min_history_days) & (per_weekday[:, 0] >= rule.min_same_weekday)
    return _verdicts(flat[positions], seasonal_of[:, 0], level, robust_sigma, judged, rule)


def _full_median(values: Floats, count: int) -> Floats:
    """Median of each row of `values` (`count` columns, none missing): as `_sorted_median`. Rows are a few dozen
    values, which numpy sorts faster than it partitions around the two middle positions of an even count."""
    ordered = np.sort(values, axis=1)
    middle = count // 2
    if count % 2:
        return ordered[:, middle]
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2


def _judge_full_windows(
    flat: Floats, index: Ints, positions: Ints, rule: SpikeRule
) -> tuple[npt.NDArray[np.bool_], dict[str, Floats]]:
    """`_judge_block` when every judged day has its whole window of history and every weekday enough of it (the
    usual case once a SKU has reported for `baseline_weeks`): nothing is missing, so each median is a partition
    of a full row rather than a sort around missing values. The same figures to the bit."""
    weeks, window = rule.baseline_weeks, rule.window_days
    history = flat[index]
    lower = (weeks - 1) // 2  # the lower median of each weekday's `weeks` values
    # Column j of day p's (weeks, 7) block holds the values at p - window + j + 7w: its median depends on where
    # that column starts alone, and the days of a report share most starts (day p + 1's columns 0-5 are day
    # p's 1-6), so each start's median is taken once.
    firsts = positions[:, None] + np.arange(-window, 7 - window)[None, :]
    unique_firsts, which = np.unique(firsts, return_inverse=True)
    columns = flat[unique_firsts[:, None] + 7 * np.arange(weeks)[None, :]]
    seasonal_of = np.partition(columns, lower, axis=1)[:, lower][which.reshape(firsts.shape)]
    level = _full_median(history[:, window - min(rule.level_days, window) :], min(rule.level_days, window))
    residuals = history - np.tile(seasonal_of, weeks)
    robust_sigma = _MAD_TO_SIGMA * _full_median(np.abs(residuals, out=residuals), window)
    judged = np.full(len(positions), window >= rule.min_history_days)
    return _verdicts(flat[positions], seasonal_of[:, 0], level, robust_sigma, judged, rule)


def _verdicts(
    units: Floats, seasonal: Floats, level: Floats, robust_sigma: Floats, judged: npt.NDArray[np.bool_], rule: SpikeRule
) -> tuple[npt.NDArray[np.bool_], dict[str, Floats]]:
    """The rule's verdicts and figures from the baselines of the judged days."""
    baseline = np.maximum(seasonal, level)
    sigma = np.maximum(np.maximum(robust_sigma, np.sqrt(baseline)), rule.min_sigma)
    excess = units - baseline
    positive = baseline > 0
    ratio = np.divide(units, baseline, out=np.full_like(units, np.inf), where=positive)
    spike = (
        judged
        & ~(excess <= rule.z_threshold * sigma)
        & ~(excess < rule.min_units)
        & ~(positive & (ratio < rule.min_ratio))
    )
    figures = {
        "units": units,
        "baseline": baseline,
        "seasonal": seasonal,
        "level": level,
        "sigma": sigma,
        "ratio": ratio,
        "excess": excess,
    }
    return spike, figures


def judge_batch(
    series: Mapping[str, DenseSeries], changed: Mapping[str, Collection[date]], rule: SpikeRule
) -> BatchVerdicts:
    """Judge every day a change on `changed` can move (each changed day and every later day of the series
    whose history window contains it): the same verdicts as `detect_spikes(..., days_to_reevaluate(...))`."""
    skus = [sku for sku in sorted(changed) if sku in series and len(series[sku].values) and changed[sku]]
    if not skus:
        return BatchVerdicts({}, {})
    lengths = np.array([len(series[sku].values) for sku in skus], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = np.concatenate([series[sku].values for sku in skus]).astype(np.float64, copy=False)

    # Which positions to judge: a +1/-1 difference array over [changed, changed + window] per SKU.
    bounds = offsets.tolist()
    at_list: list[int] = []
    for s, sku in enumerate(skus):
        shift = bounds[s] - series[sku].first
        at_list.extend([day.toordinal() + shift for day in changed[sku]])
    at = np.array(at_list, dtype=np.int64)
    owner = np.repeat(np.arange(len(skus)), [len(changed[sku]) for sku in skus])
    local = at - offsets[owner]
    keep = (local >= 0) & (local < lengths[owner])
    at, owner, local = at[keep], owner[keep], local[keep]
    marks = np.zeros(len(flat) + 1, dtype=np.int64)
    np.add.at(marks, at, 1)
    np.add.at(marks, at - local + np.minimum(local + rule.window_days, lengths[owner] - 1) + 1, -1)
    judged = np.cumsum(marks[:-1]) > 0

    positions = np.flatnonzero(judged)
    owners = np.searchsorted(offsets, positions, side="right") - 1
    spikes: dict[tuple[str, date], Spike] = {}
    for begin in range(0, len(positions), _BLOCK):
        block, block_owners = positions[begin : begin + _BLOCK], owners[begin : begin + _BLOCK]
        is_spike, figures = _judge_block(flat, offsets[block_owners], block, rule)
        hits = np.flatnonzero(is_spike)
        if not len(hits):
            continue
        rows = {name: values[hits].tolist() for name, values in figures.items()}
        for i, (position, s) in enumerate(zip(block[hits].tolist(), block_owners[hits].tolist(), strict=True)):
            sku = skus[s]
            day = date.fromordinal(series[sku].first + position - bounds[s])
            baseline, sigma, excess = rows["baseline"][i], rows["sigma"][i], rows["excess"][i]
            spikes[(sku, day)] = Spike(
                day=day,
                units=rows["units"][i],
                baseline=baseline,
                seasonal_baseline=rows["seasonal"][i],
                level=rows["level"][i],
                sigma=sigma,
                ratio=rows["ratio"][i] if baseline > 0 else None,
                excess_units=excess,
                z_score=excess / sigma,
                sku=sku,
            )
    ends = [*bounds[1:], len(flat)]
    masks = {sku: (series[sku].first, judged[bounds[s] : ends[s]]) for s, sku in enumerate(skus)}
    return BatchVerdicts(spikes, masks)


__all__ = ["MAX_DENSE_DAYS", "BatchVerdicts", "DenseSeries", "SparseSeries", "judge_batch", "judge_report"]
