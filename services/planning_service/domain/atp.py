"""Available-to-promise (APICS): discrete ATP in receipt weeks with look-ahead, and cumulative ATP.

Vectorised over rows (SKUs, or candidate scenarios), arrays shaped (rows, weeks) as in mps.py:

1. Receipt weeks: the first week (it holds the on-hand stock) and every week with a receipt.
2. Discrete ATP of a receipt week = its receipts (plus on hand in the first week) minus the customer
   commitments from that week up to, not including, the next receipt week. Other weeks have ATP 0.
3. Look-ahead: walking back from the last receipt week, a negative ATP is set to 0 and its deficit is
   taken from the receipt week before it, so supply already needed by later commitments is never offered
   again. No ATP is negative.
4. Cumulative ATP is the running sum of the discrete ATP.

Only commitments are subtracted, never the forecast. When commitments exceed on hand plus every receipt up
to some week, the deficit left over in the first week cannot be covered on time: it is reported as
`oversold` and taken from the earliest later ATP (those orders ship late from the next receipts, so that
supply is not free to promise either). APICS would print it as a negative first-week ATP instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .mps import TOLERANCE
from .weeks import FloatArray

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Atp:
    atp: FloatArray  # (rows, weeks) discrete ATP with look-ahead, >= 0, zero outside receipt weeks
    cumulative_atp: FloatArray  # (rows, weeks) running sum of atp, non-decreasing
    receipt_weeks: BoolArray  # (rows, weeks) the weeks ATP is computed in
    oversold: FloatArray  # (rows,) committed quantity no on-hand or receipt covers on time


def available_to_promise(on_hand: FloatArray, receipts: FloatArray, committed: FloatArray) -> Atp:
    """APICS discrete ATP with look-ahead and cumulative ATP for every row.

    `on_hand` (rows,), `receipts` and `committed` (rows, weeks): receipts are the planned supply of each
    week (MPS quantity plus resellable returns), committed the customer commitments due in it.
    """
    receipts = np.asarray(receipts, dtype=np.float64)
    committed = np.asarray(committed, dtype=np.float64)
    on_hand = np.asarray(on_hand, dtype=np.float64)
    if receipts.ndim != 2 or receipts.shape != committed.shape or on_hand.shape != receipts.shape[:1]:
        raise ValueError("on_hand (rows,), receipts and committed (rows, weeks) must have matching shapes")
    rows, weeks = receipts.shape
    if weeks == 0:
        empty = np.zeros((rows, 0))
        return Atp(empty, empty.copy(), np.zeros((rows, 0), dtype=np.bool_), np.zeros(rows))
    receipt_weeks = receipts > TOLERANCE
    receipt_weeks[:, 0] = True
    discrete = _discrete(on_hand, receipts, committed, receipt_weeks)
    atp = np.zeros((rows, weeks))
    deficit = np.zeros(rows)  # <= 0: what later receipt weeks still need from earlier ones
    for week in range(weeks - 1, -1, -1):
        # Outside receipt weeks discrete is 0, so the deficit passes through unchanged to the week before.
        value = discrete[:, week] + deficit
        atp[:, week] = np.maximum(value, 0.0)
        deficit = np.minimum(value, 0.0)
    oversold = 0.0 - deficit  # 0.0 - x, not -x: no negative zeros in the output
    # An uncovered deficit is served late from the earliest later ATP: cumulative ATP floored at zero.
    cumulative = np.maximum(np.cumsum(atp, axis=1) - oversold[:, None], 0.0)
    atp = np.diff(cumulative, axis=1, prepend=0.0)
    return Atp(atp, cumulative, receipt_weeks, oversold)


def _discrete(on_hand: FloatArray, receipts: FloatArray, committed: FloatArray, receipt_weeks: BoolArray) -> FloatArray:
    """Discrete ATP without look-ahead, placed in each receipt week (0 elsewhere, negative allowed)."""
    rows, weeks = receipts.shape
    net = receipts - committed
    net[:, 0] += on_hand
    positions = np.where(receipt_weeks, np.arange(weeks), 0)
    # Every week belongs to the last receipt week at or before it; sum each such span into that week.
    owner = np.maximum.accumulate(positions, axis=1)
    flat_owner = (np.arange(rows)[:, None] * weeks + owner).ravel()
    totals = np.bincount(flat_owner, weights=net.ravel(), minlength=rows * weeks)
    return totals.astype(np.float64).reshape(rows, weeks)


def available_to_promise_one(on_hand: float, receipts: FloatArray, committed: FloatArray) -> Atp:
    """available_to_promise for a single SKU given as 1-D week arrays (results still shaped (1, weeks))."""
    return available_to_promise(
        np.array([on_hand], dtype=np.float64),
        np.asarray(receipts, dtype=np.float64)[None, :],
        np.asarray(committed, dtype=np.float64)[None, :],
    )
