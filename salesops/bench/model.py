"""What a measure reports: figures, each with its unit, its raw baseline from the same run and its goal."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured value. With a baseline, `ratio` is value / baseline (for rates: higher is better) and the
    goal is a minimum ratio; without one, the goal is a bound on the value itself (`goal_max`)."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    goal_ratio: float | None = None
    goal_max: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal_ratio is not None:
            ratio = self.ratio
            return None if ratio is None else ratio >= self.goal_ratio
        if self.goal_max is not None:
            return self.value <= self.goal_max
        return None

    @property
    def goal(self) -> str:
        if self.goal_ratio is not None:
            return f"ratio >= {self.goal_ratio:g}"
        if self.goal_max is not None:
            return f"<= {self.goal_max:g} {self.unit}"
        return ""

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        ratio = self.ratio
        document.update(ratio=None if ratio is None else round(ratio, 4), met=self.met, goal=self.goal)
        return document


@dataclass
class MeasureResult:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"figures": [f.as_json() for f in self.figures], "details": self.details}
