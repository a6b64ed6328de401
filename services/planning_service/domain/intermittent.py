"""Demand classes after Syntetos and Boylan: average demand interval (ADI) and squared coefficient of
variation of the non-zero demand sizes (CV²) sort a SKU into smooth, erratic, intermittent or lumpy."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from .weeks import FloatArray

# The published cut-offs (Syntetos, Boylan and Croston 2005): beyond ADI 1.32 Croston-type methods beat
# smoothing the raw series; beyond CV² 0.49 demand sizes vary too much to be called regular.
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49


class DemandClass(StrEnum):
    SMOOTH = "smooth"
    ERRATIC = "erratic"
    INTERMITTENT = "intermittent"
    LUMPY = "lumpy"

    @property
    def sporadic(self) -> bool:
        """Demand too rare for a level-and-trend model: forecast by a method made for it (Croston SBA)."""
        return self in (DemandClass.INTERMITTENT, DemandClass.LUMPY)


def demand_profile(units: FloatArray, observed: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """(ADI, CV²) per row over its observed weeks.

    ADI = observed weeks / weeks with demand (inf without any demand); CV² = (std / mean)² of the non-zero
    weekly quantities (population std; 0 with fewer than two of them).
    """
    demand = (units > 0) & observed
    nonzero = demand.sum(axis=1)
    weeks = observed.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        adi = np.where(nonzero > 0, weeks / np.maximum(nonzero, 1), np.inf)
        sizes = np.where(demand, units, 0.0)
        mean = sizes.sum(axis=1) / np.maximum(nonzero, 1)
        variance = np.where(demand, (units - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(nonzero, 1)
        cv2 = np.where((nonzero > 1) & (mean > 0), variance / np.maximum(mean, 1e-300) ** 2, 0.0)
    return adi.astype(np.float64), cv2.astype(np.float64)


def classify(adi: float, cv2: float) -> DemandClass:
    if adi < ADI_CUTOFF:
        return DemandClass.ERRATIC if cv2 >= CV2_CUTOFF else DemandClass.SMOOTH
    return DemandClass.LUMPY if cv2 >= CV2_CUTOFF else DemandClass.INTERMITTENT


def croston_step(
    size: FloatArray, interval: FloatArray, since: FloatArray, alpha: FloatArray, demand: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One week of Croston's recursion for many SKUs: `since` counts weeks since the last demand; a week with
    demand smooths the size and the interval it closed, and restarts the count."""
    since = since + 1.0
    ordered = demand > 0
    size = np.where(ordered, size + alpha * (demand - size), size)
    interval = np.where(ordered, interval + alpha * (since - interval), interval)
    since = np.where(ordered, 0.0, since)
    return size, interval, since


def sba_forecast(size: FloatArray, interval: FloatArray, alpha: FloatArray) -> FloatArray:
    """Syntetos-Boylan approximation: Croston's size / interval, debiased by (1 - alpha / 2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(interval > 0, size / interval, size)
    result: FloatArray = (1.0 - alpha / 2.0) * rate
    return result
