"""Simulated daily order demand with a known truth: level, trend, annual season, noise, promotions with
lift, post-promotion dip and cannibalization, one-off bulk orders, intermittent SKUs and warehouses that
report only the days with orders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from services.planning_service.domain import Cannibalization, Promotion, PromotionItem
from services.planning_service.domain.baseline import SEASON_WEEKS, week_number

FloatArray = npt.NDArray[np.float64]
# Orders are heavier early in the week: the spike detector has to cope with a weekday pattern.
WEEKDAY_SHARE = np.array([1.2, 1.1, 1.1, 1.0, 1.1, 0.8, 0.7]) / 7.0
DISPERSION = 15.0  # negative-binomial size of daily orders: weekly noise of roughly 10-15 %


class SkuKind(StrEnum):
    SMOOTH = "smooth"
    TRENDING = "trending"
    SEASONAL = "seasonal"
    INTERMITTENT = "intermittent"


@dataclass
class SimulatedSku:
    sku: str
    kind: SkuKind
    expected: FloatArray  # daily expected orders: the truth, promotion effects included
    orders: FloatArray  # realised daily orders
    order_days_only: bool  # its warehouses send no line for a day without orders


@dataclass
class Simulation:
    start: date  # a Monday: day 0
    skus: list[SimulatedSku]
    promotions: list[Promotion] = field(default_factory=list)
    # what really happened per promotion id: uplift, dip and cannibalization factors of the truth
    realised_effects: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return self.skus[0].orders.size if self.skus else 0

    @property
    def weeks(self) -> int:
        return self.days // 7

    def monday(self, week: int) -> date:
        return self.start + timedelta(weeks=week)

    def weekly_orders(self, row: int) -> FloatArray:
        result: FloatArray = self.skus[row].orders[: self.weeks * 7].reshape(-1, 7).sum(axis=1)
        return result

    def weekly_expected(self, row: int) -> FloatArray:
        result: FloatArray = self.skus[row].expected[: self.weeks * 7].reshape(-1, 7).sum(axis=1)
        return result

    def reported_history(self, row: int, until_week: int) -> dict[date, float]:
        """Weekly units as planning stores them: keyed by Monday, only weeks some report arrived for."""
        weekly = self.weekly_orders(row)[:until_week]
        sku = self.skus[row]
        return {self.monday(w): float(units) for w, units in enumerate(weekly) if units > 0 or not sku.order_days_only}

    def reported_days(self, row: int, first_day: int, until_day: int) -> dict[date, float]:
        orders = self.skus[row].orders
        only = self.skus[row].order_days_only
        return {
            self.start + timedelta(days=d): float(orders[d])
            for d in range(max(first_day, 0), until_day)
            if orders[d] > 0 or not only
        }


def simulate(count: int, weeks: int, seed: int, start: date = date(2022, 1, 3)) -> Simulation:
    """`count` SKUs over `weeks` weeks, a quarter of each kind; half of the non-intermittent SKUs are
    promoted every 10 to 20 weeks, some promotions cannibalizing a neighbour."""
    if start.weekday() != 0:
        raise ValueError("start must be a Monday")
    rng = np.random.default_rng(seed)
    days = weeks * 7
    kinds = [list(SkuKind)[n % 4] for n in range(count)]
    base = np.array([_base_curve(rng, kind, weeks, start) for kind in kinds])  # (count, weeks) weekly mean
    daily = np.repeat(base, 7, axis=1) * np.tile(WEEKDAY_SHARE, weeks)[None, :]
    simulation = Simulation(start, [])
    multiplier = np.ones((count, days))
    extra = np.zeros((count, days))
    regular = [n for n, kind in enumerate(kinds) if kind is not SkuKind.INTERMITTENT]
    for n in regular[::2]:
        _promote(rng, simulation, n, regular, kinds, daily, multiplier, extra, days)
    expected = daily * multiplier + extra
    for n, kind in enumerate(kinds):
        if kind is SkuKind.INTERMITTENT:
            orders = _intermittent_orders(rng, expected[n])
        else:
            mean = np.maximum(expected[n], 1e-9)
            orders = rng.negative_binomial(DISPERSION, DISPERSION / (DISPERSION + mean)).astype(np.float64)
            _bulk_orders(rng, orders, expected[n], weeks)
        order_days_only = kind is SkuKind.INTERMITTENT or rng.random() < 0.25
        simulation.skus.append(SimulatedSku(f"SIM-{n:05d}", kind, expected[n], orders, order_days_only))
    return simulation


def _base_curve(rng: np.random.Generator, kind: SkuKind, weeks: int, start: date) -> FloatArray:
    t = np.arange(weeks)
    if kind is SkuKind.INTERMITTENT:
        return np.full(weeks, rng.uniform(0.4, 3.0))
    level = rng.uniform(40, 600)
    drift = np.exp(np.cumsum(rng.normal(0.0, 0.015, weeks)))  # the level wanders a little
    curve = level * drift
    if kind is SkuKind.TRENDING:
        growth = rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.45)  # per year
        curve *= np.maximum(1.0 + growth * t / 52.0, 0.2)
    if kind is SkuKind.SEASONAL:
        amplitude, phase = rng.uniform(0.15, 0.45), rng.uniform(0, 2 * math.pi)
        angle = 2 * math.pi * (week_number(start) + t) / SEASON_WEEKS + phase
        season = 1.0 + amplitude * np.sin(angle)
        if rng.random() < 0.5:  # a sharper peak on top of the annual wave
            season += 0.5 * amplitude * np.sin(2 * angle + rng.uniform(0, 2 * math.pi))
        curve *= np.maximum(season, 0.1)
    return curve


def _promote(
    rng: np.random.Generator,
    simulation: Simulation,
    row: int,
    regular: list[int],
    kinds: list[SkuKind],
    daily: FloatArray,
    multiplier: FloatArray,
    extra: FloatArray,
    days: int,
) -> None:
    day = int(rng.integers(20, 120))
    while day < days - 14:
        length = int(rng.integers(3, 11))
        uplift = float(rng.uniform(30, 120))
        dip_pct = float(rng.choice([0.0, 20.0, 40.0]))
        dip_weeks = int(rng.integers(1, 3)) if dip_pct else 0
        neighbour = int(rng.choice(regular)) if rng.random() < 0.5 else None
        if neighbour == row:
            neighbour = None
        cannibal_pct = float(rng.uniform(5, 25)) if neighbour is not None else 0.0
        # what happens differs from the plan: planners' uplift estimates are good, not exact
        real_uplift, real_dip, real_cannibal = (uplift * _noise(rng), dip_pct * _noise(rng), cannibal_pct * _noise(rng))
        end = min(day + length, days)
        multiplier[row, day:end] *= 1.0 + real_uplift / 100.0
        incremental = float(daily[row, day:end].sum()) * real_uplift / 100.0
        if dip_weeks:
            dip_end = min(end + 7 * dip_weeks, days)
            extra[row, end:dip_end] -= incremental * real_dip / 100.0 / (7 * dip_weeks)
        if neighbour is not None:
            multiplier[neighbour, day:end] *= 1.0 - real_cannibal / 100.0
        promotion_id = f"P-{row}-{day}"
        simulation.promotions.append(
            Promotion(
                promotion_id,
                simulation.start + timedelta(days=day),
                simulation.start + timedelta(days=end - 1),
                (PromotionItem(f"SIM-{row:05d}", uplift),),
                post_promo_dip_pct=dip_pct,
                post_promo_dip_weeks=dip_weeks,
                cannibalized=(Cannibalization(f"SIM-{neighbour:05d}", cannibal_pct),) if neighbour is not None else (),
            )
        )
        simulation.realised_effects[promotion_id] = (real_uplift, real_dip, real_cannibal)
        day = end + 7 * int(rng.integers(10, 21))


def _noise(rng: np.random.Generator) -> float:
    return float(np.exp(rng.normal(0.0, 0.15)))


def _intermittent_orders(rng: np.random.Generator, expected: FloatArray) -> FloatArray:
    """Few orders, each of a few units: the expected daily units split into order count times order size."""
    size = 1.0 + rng.uniform(0.0, 4.0)
    counts = rng.poisson(expected / size)
    sizes = np.where(counts > 0, counts + rng.poisson((size - 1.0) * counts), 0)
    return sizes.astype(np.float64)


def _bulk_orders(rng: np.random.Generator, orders: FloatArray, expected: FloatArray, weeks: int) -> None:
    """About one unforeseeable bulk order a year: a day at four to eight times its usual units."""
    for _ in range(rng.poisson(weeks / 52)):
        day = int(rng.integers(0, orders.size))
        orders[day] += round(float(expected[day]) * rng.uniform(3.0, 7.0))
