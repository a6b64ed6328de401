"""Rolling-origin backtest on the simulator: at each origin every model sees only the weeks before it and
forecasts the next weeks; errors against realised orders are tallied per week kind and SKU kind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np

from salesops.evaluation.simulator import FloatArray, Simulation, SkuKind
from salesops.evaluation.standard import STANDARD_MODELS, holt_winters
from services.fulfillment_service.domain import SpikeRule, detect_spikes
from services.planning_service.domain import Item, PlanningParams, Promotion, SkuInputs, Spike, plan_many
from services.planning_service.domain.fitting import cleaned_history, fit_baselines
from services.planning_service.domain.forecast import ForecastComponents, apply_promotions

WEEK_KINDS = ("normal", "promotion", "post-promotion", "cannibalized")
SKU_KINDS = tuple(kind.value for kind in SkuKind)
SLICES = ("all", *WEEK_KINDS, *SKU_KINDS)
SALESOPS = "salesops"
SALESOPS_SMOOTHING = "salesops, smoothing only"
HW_PROMO = "Holt-Winters + promotion rules"
TRUTH = "true mean (floor)"
RECENT_DAYS = 28


@dataclass
class Tally:
    absolute: float = 0.0
    signed: float = 0.0
    actual: float = 0.0
    weeks: int = 0

    def add(self, forecast: FloatArray, actual: FloatArray) -> None:
        self.absolute += float(np.abs(forecast - actual).sum())
        self.signed += float((forecast - actual).sum())
        self.actual += float(actual.sum())
        self.weeks += int(actual.size)

    @property
    def wmape(self) -> float | None:
        return self.absolute / self.actual if self.actual > 0 else None

    @property
    def bias(self) -> float | None:
        return self.signed / self.actual if self.actual > 0 else None


@dataclass
class Scoreboard:
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)

    def add(self, method: str, slices: Iterable[str], forecast: FloatArray, actual: FloatArray) -> None:
        for name in slices:
            self.tallies.setdefault((method, name), Tally()).add(forecast, actual)

    def merge(self, other: Scoreboard) -> None:
        for key, tally in other.tallies.items():
            mine = self.tallies.setdefault(key, Tally())
            mine.absolute += tally.absolute
            mine.signed += tally.signed
            mine.actual += tally.actual
            mine.weeks += tally.weeks

    def methods(self) -> list[str]:
        return list(dict.fromkeys(method for method, _ in self.tallies))

    def get(self, method: str, name: str) -> Tally:
        return self.tallies.get((method, name), Tally())


def planning_spikes(simulation: Simulation, rule: SpikeRule = SpikeRule()) -> list[list[Spike]]:
    """What the fulfillment service's spike rule finds in each SKU's reported days, each spike marked
    explained when a promotion of the SKU covers its day (as planning receives them)."""
    result: list[list[Spike]] = []
    for row, sku in enumerate(simulation.skus):
        daily = simulation.reported_days(row, 0, simulation.days)
        promoted = [(p.starts_on, p.ends_on) for p in simulation.promotions if any(i.sku == sku.sku for i in p.items)]
        days = [simulation.start + timedelta(days=d) for d in range(simulation.days)]
        found = detect_spikes(daily, days, rule, sku=sku.sku)
        result.append(
            [
                Spike(sku.sku, s.day, s.units, s.baseline, any(a <= s.day <= b for a, b in promoted))
                for s in found.values()
                if s is not None
            ]
        )
    return result


def week_kinds(simulation: Simulation, sku: str, first_week: int, weeks: int) -> list[str]:
    """The kind of each week: promotion > cannibalized > post-promotion > normal."""
    kinds = ["normal"] * weeks
    rank = {"normal": 0, "post-promotion": 1, "cannibalized": 2, "promotion": 3}

    def mark(first: date, last: date, kind: str) -> None:
        for w in range(weeks):
            monday = simulation.monday(first_week + w)
            if first <= monday + timedelta(days=6) and last >= monday and rank[kind] > rank[kinds[w]]:
                kinds[w] = kind

    for promo in simulation.promotions:
        if any(i.sku == sku for i in promo.items):
            mark(promo.starts_on, promo.ends_on, "promotion")
            if promo.post_promo_dip_weeks:
                after = promo.ends_on + timedelta(days=1)
                mark(after, promo.ends_on + timedelta(weeks=promo.post_promo_dip_weeks), "post-promotion")
        if any(c.sku == sku for c in promo.cannibalized):
            mark(promo.starts_on, promo.ends_on, "cannibalized")
    return kinds


def salesops_forecasts(
    simulation: Simulation,
    spikes: Sequence[Sequence[Spike]],
    origin: int,
    horizon: int,
    *,
    fitted: bool = True,
    params: PlanningParams = PlanningParams(),
) -> FloatArray:
    """(n_skus, horizon) forecasts from the planning core as production runs it: fit, then plan."""
    inputs = sku_inputs(simulation, spikes, origin)
    start = simulation.monday(origin)
    if fitted:
        models = fit_baselines(inputs, start, simulation.promotions, params)
        inputs = [replace(inp, baseline_model=m) for inp, m in zip(inputs, models, strict=True)]
    plans = plan_many(
        inputs, start, horizon, promotions=simulation.promotions, params=params, today=start - timedelta(days=1)
    )
    return np.array([[w.forecast for w in plan.weeks] for plan in plans])


def sku_inputs(simulation: Simulation, spikes: Sequence[Sequence[Spike]], origin: int) -> list[SkuInputs]:
    start = simulation.monday(origin)
    return [
        SkuInputs(
            Item(sku.sku, sku.sku, on_hand=0, safety_stock=0),
            simulation.reported_history(row, origin),
            spikes=tuple(s for s in spikes[row] if s.day < start),
            recent_days=simulation.reported_days(row, 7 * origin - RECENT_DAYS, 7 * origin),
        )
        for row, sku in enumerate(simulation.skus)
    ]


def holt_winters_with_promotions(
    simulation: Simulation, spikes: Sequence[Sequence[Spike]], origin: int, horizon: int
) -> FloatArray:
    """Holt-Winters on the same cleaned history, plus salesops's promotion rules on top."""
    inputs = sku_inputs(simulation, spikes, origin)
    start = simulation.monday(origin)
    cleaned, observed = cleaned_history(inputs, start, simulation.promotions, PlanningParams())
    baseline = np.array([holt_winters(cleaned[r, observed[r]], horizon) for r in range(len(inputs))])
    components = ForecastComponents(baseline, np.zeros_like(baseline), np.zeros_like(baseline))
    rows = {inp.item.sku: r for r, inp in enumerate(inputs)}
    active: list[Promotion] = [p for p in simulation.promotions if not p.cancelled]
    apply_promotions(components, rows, active, start)
    result: FloatArray = np.maximum(components.baseline + components.promotion_uplift, 0.0)
    return result


def dense_history(simulation: Simulation, row: int, origin: int, window: int = 156) -> FloatArray:
    """The weekly series a standard tool is given: from the first reported week, missing weeks as 0."""
    reported = simulation.reported_history(row, origin)
    if not reported:
        return np.zeros(0)
    first = (min(reported) - simulation.start).days // 7
    weekly = simulation.weekly_orders(row)[first:origin]
    return weekly[-window:]


def backtest_origin(
    simulation: Simulation, spikes: Sequence[Sequence[Spike]], origin: int, horizon: int, standard: Sequence[str]
) -> Scoreboard:
    board = Scoreboard()
    forecasts = {
        SALESOPS: salesops_forecasts(simulation, spikes, origin, horizon),
        SALESOPS_SMOOTHING: salesops_forecasts(simulation, spikes, origin, horizon, fitted=False),
        HW_PROMO: holt_winters_with_promotions(simulation, spikes, origin, horizon),
    }
    for row, sku in enumerate(simulation.skus):
        actual = simulation.weekly_orders(row)[origin : origin + horizon]
        kinds = week_kinds(simulation, sku.sku, origin, horizon)
        history = dense_history(simulation, row, origin)
        per_method = {name: forecasts[name][row] for name in forecasts}
        per_method[TRUTH] = simulation.weekly_expected(row)[origin : origin + horizon]
        for name in standard:
            per_method[name] = STANDARD_MODELS[name](history, horizon)
        for method, forecast in per_method.items():
            for week, kind in enumerate(kinds):
                board.add(method, ("all", kind, sku.kind.value), forecast[week : week + 1], actual[week : week + 1])
    return board


def backtest(
    simulation: Simulation,
    origins: Sequence[int],
    horizon: int,
    standard: Sequence[str] = tuple(STANDARD_MODELS),
    workers: int = 1,
) -> Scoreboard:
    spikes = planning_spikes(simulation)
    board = Scoreboard()
    if workers <= 1:
        for origin in origins:
            board.merge(backtest_origin(simulation, spikes, origin, horizon, standard))
        return board
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(backtest_origin, simulation, spikes, o, horizon, standard) for o in origins]
        for future in futures:
            board.merge(future.result())
    return board
