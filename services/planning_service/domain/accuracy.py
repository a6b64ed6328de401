"""Forecast accuracy: each week's forecast as it stood when the week began against what was ordered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from .model import Accuracy


def accuracy(snapshots: Mapping[date, float], actuals: Mapping[date, float]) -> Accuracy:
    """wMAPE, bias and MAE over the weeks present in both mappings (keyed by week_start)."""
    weeks = sorted(snapshots.keys() & actuals.keys())
    if not weeks:
        return Accuracy(0, None, None, None)
    ordered = sum(actuals[w] for w in weeks)
    absolute_error = sum(abs(actuals[w] - snapshots[w]) for w in weeks)
    signed_error = sum(snapshots[w] - actuals[w] for w in weeks)
    if ordered == 0:
        return Accuracy(len(weeks), None, None, absolute_error / len(weeks))
    return Accuracy(len(weeks), absolute_error / ordered, signed_error / ordered, absolute_error / len(weeks))
