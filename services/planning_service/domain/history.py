"""Weekly demand history as dense (n_skus, weeks) arrays: zero-filled from each SKU's first report, with the
weeks promotions distorted and the units of unexplained spike days taken out before a baseline is fitted."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from itertools import chain

import numpy as np
import numpy.typing as npt

from .model import Promotion, Spike
from .weeks import FloatArray, monday_of, shift_days

BoolArray = npt.NDArray[np.bool_]
# Three years of weeks: enough for a 52-week season to be seen three times; older weeks add little.
MAX_HISTORY_WEEKS = 156
# A distorted week is replaced by the median of up to this many clean weeks on each side ...
CLEAN_NEIGHBOURS = 3
# ... found within this many weeks of it: further away the level or season may have moved.
CLEAN_REACH = 8
# What a one-off spike day ordered above this multiple of the detector's baseline is taken out of the
# history. The detector flags days from 1.5 times its baseline, so ordinary noise is flagged now and then:
# taking out all of such a day's excess would bias the baseline low; a bulk order is several times it.
SPIKE_CLEAN_RATIO = 2.0


def weekly_history(
    histories: Sequence[Mapping[date, float]], horizon_start: date, weeks: int = MAX_HISTORY_WEEKS
) -> tuple[FloatArray, BoolArray]:
    """Units ordered per SKU in the `weeks` complete weeks before the horizon, oldest column first.

    Returns (units, observed): every week from a SKU's first reported week to the last complete week (the
    one before the horizon) is observed, and a week without a report is zero demand; warehouses that report
    only the days with orders send no zero lines. The current week is incomplete and is left out. Keys are
    normalised to their week's Monday. Vectorised over all SKUs' entries at once.
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
    np.minimum.at(first, rows, columns)
    observed = np.arange(weeks) >= first[:, None]
    return units.reshape(count, weeks), observed


def promotion_history_weeks(promotions: Iterable[Promotion], horizon_start: date) -> dict[str, set[int]]:
    """Ordinals of pre-horizon week Mondays that a promotion distorted (uplift, dip or cannibalization)."""
    distorted: dict[str, set[int]] = defaultdict(set)
    last_past_day = horizon_start - timedelta(days=1)
    # Weeks before the history the baseline reads are never used: a promotion running for decades must not
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


def distorted_mask(
    skus: Sequence[str], distorted: Mapping[str, set[int]], horizon_start: date, weeks: int = MAX_HISTORY_WEEKS
) -> BoolArray:
    """(n_skus, weeks) True where a promotion distorted the SKU's week."""
    mask = np.zeros((len(skus), weeks), dtype=np.bool_)
    oldest = horizon_start.toordinal() - 7 * weeks
    for row, sku in enumerate(skus):
        for monday in distorted.get(sku, ()):
            column = (monday - oldest) // 7
            if 0 <= column < weeks:
                mask[row, column] = True
    return mask


def spike_excess(spikes: Sequence[Iterable[Spike]], horizon_start: date, weeks: int = MAX_HISTORY_WEEKS) -> FloatArray:
    """(n_skus, weeks) units above SPIKE_CLEAN_RATIO x the detector's baseline on the given spike days, per week.

    Callers pass only the spikes to clean out (unexplained and not part of a confirmed level shift, see
    sensing.isolated_spikes): a one-off day's excess is not demand the baseline should learn.
    """
    excess = np.zeros((len(spikes), weeks))
    oldest = horizon_start.toordinal() - 7 * weeks
    for row, sku_spikes in enumerate(spikes):
        for spike in sku_spikes:
            column = (monday_of(spike.day).toordinal() - oldest) // 7
            if 0 <= column < weeks:
                excess[row, column] += max(0.0, spike.units - SPIKE_CLEAN_RATIO * spike.baseline)
    return excess


def replace_distorted(units: FloatArray, observed: BoolArray, distorted: BoolArray) -> FloatArray:
    """A copy of `units` whose observed distorted weeks hold a robust local estimate of undistorted demand.

    The estimate is the median of the nearest clean observed weeks, up to CLEAN_NEIGHBOURS on each side
    within CLEAN_REACH weeks; with none nearby, the median of all the SKU's clean weeks; with no clean
    week at all the week is left as it is (there is nothing better to learn from).
    """
    cleaned = units.copy()
    clean = observed & ~distorted
    for row, column in zip(*np.nonzero(observed & distorted), strict=True):
        row_clean = clean[row]
        left = [c for c in range(column - 1, max(column - CLEAN_REACH, 0) - 1, -1) if row_clean[c]]
        right = [c for c in range(column + 1, min(column + CLEAN_REACH, units.shape[1] - 1) + 1) if row_clean[c]]
        near = left[:CLEAN_NEIGHBOURS] + right[:CLEAN_NEIGHBOURS]
        if near:
            cleaned[row, column] = float(np.median(units[row, near]))
        elif row_clean.any():
            cleaned[row, column] = float(np.median(units[row, row_clean]))
    return cleaned
