"""Master production schedule netting, vectorised across SKUs: lot sizing, safety stock, capacity, pre-build.

The recursion runs over weeks; every step is numpy over all SKUs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .weeks import FloatArray

BoolArray = npt.NDArray[np.bool_]
TOLERANCE = 1e-9  # float noise below this is not a real requirement, shortfall or change
NOISE = 1e-6  # a deficit or a rise of it below this is rounding noise, not a shortage


@dataclass(frozen=True)
class Netting:
    mps_quantity: FloatArray  # (n, weeks), multiples of the lot size
    projected_available: FloatArray
    capacity_shortfall: FloatArray
    wanted_in_fence: FloatArray  # what the frozen weeks would have planned; NaN outside the fence


def max_production(lot_size: FloatArray, weekly_capacity: FloatArray) -> FloatArray:
    """Most that can be made in a week in whole lots; inf where capacity is unlimited (given as inf)."""
    with np.errstate(invalid="ignore"):
        whole_lots = np.floor(weekly_capacity / lot_size + TOLERANCE) * lot_size
    return np.where(np.isinf(weekly_capacity), np.inf, whole_lots)


def net_requirements(
    gross_requirements: FloatArray,
    returns_receipts: FloatArray,
    on_hand: FloatArray,
    safety_stock: FloatArray,
    lot_size: FloatArray,
    weekly_capacity: FloatArray,
    frozen: BoolArray,
    frozen_quantity: FloatArray,
) -> Netting:
    """Plan production week by week to keep projected available >= safety stock.

    A week produces the lots needed to restore safety stock, up to capacity. What capacity cannot cover is
    pre-built in earlier weeks, latest first, using their spare capacity; frozen weeks keep their quantity
    and take no pre-build. Whatever is still missing leaves projected available below safety stock.
    """
    count, weeks = gross_requirements.shape
    ceiling = max_production(lot_size, weekly_capacity)
    mps = np.zeros((count, weeks))
    wanted = np.full((count, weeks), np.nan)
    available = on_hand.astype(np.float64).copy()
    for week in range(weeks):
        before = available + returns_receipts[:, week] - gross_requirements[:, week]
        need = np.maximum(safety_stock - before, 0.0)
        lots = np.ceil(need / lot_size - TOLERANCE) * lot_size
        quantity = np.minimum(lots, ceiling)
        in_fence = frozen[:, week]
        if in_fence.any():
            wanted[in_fence, week] = quantity[in_fence]
            quantity = np.where(in_fence, frozen_quantity[:, week], quantity)
        mps[:, week] = quantity
        short = np.where(in_fence, 0.0, lots - quantity)
        if week > 0:
            short_rows = np.nonzero(short > TOLERANCE)[0]
            if short_rows.size:
                before[short_rows] += _prebuild(mps, short_rows, short[short_rows], ceiling, frozen, week)
        available = before + quantity
    projected = _projected_available(on_hand, mps, returns_receipts, gross_requirements)
    deficit = np.maximum(safety_stock[:, None] - projected, 0.0)
    deficit[deficit < NOISE] = 0.0  # rounding noise, not a shortage
    return Netting(mps, projected, _shortfall(deficit), wanted)


def _shortfall(deficit: FloatArray) -> FloatArray:
    """How much further below safety stock each week ends than the week before. A rise below `NOISE` is not
    reported; where one occurs (rarely), the rows are reported as `_carried` does, so that a deficit creeping up in
    rises below `NOISE` is still reported once it has risen by `NOISE`."""
    rises = np.diff(deficit, axis=1, prepend=0.0)
    shortfall = np.maximum(rises, 0.0)
    shortfall[shortfall < NOISE] = 0.0
    creeping = ((rises > 0.0) & (rises < NOISE)).any(axis=1)
    if creeping.any():
        shortfall[creeping] = _carried(deficit[creeping])
    return shortfall


def _carried(deficit: FloatArray) -> FloatArray:
    """How much further below safety stock each week ends than the deficit last reported: a rise below `NOISE` is
    not reported, but is not forgotten either. Every unit below safety stock is then reported in its week or
    before, to within `NOISE`; without rises below `NOISE` this is the plain week-on-week rise."""
    shortfall = np.zeros_like(deficit)
    reported = np.zeros(deficit.shape[0])
    for week in range(deficit.shape[1]):
        level = deficit[:, week]
        reported = np.minimum(reported, level)  # a deficit that shrank is reported from its new level
        rise = level - reported
        rows = rise >= NOISE
        shortfall[rows, week] = rise[rows]
        reported[rows] = level[rows]
    return shortfall


def _prebuild(
    mps: FloatArray,
    rows: npt.NDArray[np.intp],
    short: FloatArray,
    ceiling: FloatArray,
    frozen: BoolArray,
    week: int,
) -> FloatArray:
    """Spread `short` (whole lots) over the spare capacity of weeks before `week`, latest first.

    Updates `mps` in place and returns how much extra stock each row carries into `week`.
    """
    spare = np.where(frozen[rows, :week], 0.0, ceiling[rows, None] - mps[rows, :week])
    latest_first = spare[:, ::-1]
    used_by_later = np.cumsum(latest_first, axis=1) - latest_first
    allocation = np.clip(short[:, None] - used_by_later, 0.0, latest_first)[:, ::-1]
    mps[rows, :week] += allocation
    total: FloatArray = allocation.sum(axis=1)
    return total


def _projected_available(on_hand: FloatArray, mps: FloatArray, receipts: FloatArray, gross: FloatArray) -> FloatArray:
    """PAB[w] = PAB[w-1] + mps[w] + receipts[w] - gross[w], evaluated in exactly that order."""
    projected = np.empty_like(mps)
    previous = on_hand.astype(np.float64)
    for week in range(mps.shape[1]):
        previous = previous + mps[:, week] + receipts[:, week] - gross[:, week]
        projected[:, week] = previous
    return projected
