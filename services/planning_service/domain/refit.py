"""When a SKU's fitted baseline model must be fitted again: a new week began since its fit, or the history it
was fitted on changed materially (a correction of old weeks, history loaded after the fit).

A model is fitted on the complete weeks before its origin. What it saw is kept as a digest: the week its
history starts and the units ordered per block of `DIGEST_BLOCK_WEEKS` weeks. A later report that moves any
block by more than `MATERIAL_SHARE` of it (and by more than one unit), or that moves the first reported
week, is material; a late report of a few units is not, and the fitted weights and state stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from .history import MAX_HISTORY_WEEKS, weekly_history

MIN_FIT_WEEKS = 13  # a quarter: below it a trend cannot be told from noise; the smoothing serves
DIGEST_BLOCK_WEEKS = 13
MATERIAL_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class HistoryDigest:
    """What a fit saw: the first observed week (weeks before the origin; 0 = none) and units per block,
    oldest block first."""

    observed_weeks: int
    blocks: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"observed_weeks": self.observed_weeks, "blocks": list(self.blocks)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> HistoryDigest:
        weeks = data.get("observed_weeks", 0)
        blocks = data.get("blocks", ())
        assert isinstance(weeks, int) and isinstance(blocks, list | tuple)
        return cls(weeks, tuple(float(b) for b in blocks))


def history_digests(histories: Sequence[Mapping[date, float]], origin: date) -> list[HistoryDigest]:
    """The digest of each weekly history (ISO-week Monday -> units) as a fit at `origin` sees it."""
    units, observed = weekly_history(histories, origin)
    blocks = units.reshape(len(histories), MAX_HISTORY_WEEKS // DIGEST_BLOCK_WEEKS, DIGEST_BLOCK_WEEKS).sum(axis=2)
    weeks = observed.sum(axis=1)
    return [
        HistoryDigest(int(w), tuple(round(float(b), 6) for b in row))
        for w, row in zip(weeks.tolist(), blocks, strict=True)
    ]


def observed_weeks(histories: Sequence[Mapping[date, float]], origin: date) -> list[int]:
    """Weeks from each SKU's first report to the last complete week before `origin`."""
    _, observed = weekly_history(histories, origin)
    counts: list[int] = observed.sum(axis=1).tolist()
    return counts


def changed_materially(fitted_on: HistoryDigest, now: HistoryDigest) -> bool:
    """Whether the history moved enough since the fit for the model to be fitted again."""
    if fitted_on.observed_weeks != now.observed_weeks or len(fitted_on.blocks) != len(now.blocks):
        return True
    old, new = np.asarray(fitted_on.blocks), np.asarray(now.blocks)
    moved = np.abs(new - old)
    return bool(np.any((moved > 1.0) & (moved > MATERIAL_SHARE * np.maximum(old, new))))
