"""Fitted baselines: applying plain parameters (hand-computed), advancing them through new weeks the way the
library would have fitted them, and what the fit chooses on series whose shape is known."""

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from statsforecast.models import CrostonSBA

from services.planning_service.domain import BaselineModel, Item, Method, SkuInputs, plan_sku
from services.planning_service.domain.baseline import SEASON_WEEKS, project, week_number
from services.planning_service.domain.fitting import MIN_FIT_WEEKS, fit_baselines

H = date(2026, 11, 23)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def sku(history: dict[date, float], model: BaselineModel | None = None) -> SkuInputs:
    return SkuInputs(Item("A", "A", on_hand=0, safety_stock=0), history, baseline_model=model)


ETS = BaselineModel(Method.ETS, H, level=100, trend=2, damping=0.9, alpha=0.5, beta=0.1)


def test_a_model_fitted_for_this_horizon_projects_its_damped_trend() -> None:
    baseline = project([ETS], np.zeros((1, 4)), np.ones((1, 4), dtype=bool), H, 3)
    # 100 + 2 * (0.9), + 2 * (0.9 + 0.81), + 2 * (0.9 + 0.81 + 0.729)
    assert baseline[0] == pytest.approx([101.8, 103.42, 104.878])


def test_a_week_completed_after_the_fit_updates_the_state_with_the_fitted_weights() -> None:
    fitted_last_week = replace(ETS, origin=week(-1))
    units = np.array([[0.0, 0.0, 120.0]])
    baseline = project([fitted_last_week], units, np.ones((1, 3), dtype=bool), H, 2)
    # expected 101.8, error 18.2: level 101.8 + 0.5 * 18.2 = 110.9, trend 1.8 + 0.1 * 18.2 = 3.62
    assert baseline[0] == pytest.approx([110.9 + 0.9 * 3.62, 110.9 + 1.71 * 3.62])
    skipped = project([fitted_last_week], units, np.zeros((1, 3), dtype=bool), H, 1)
    assert skipped[0] == pytest.approx([101.8 + 0.9 * 1.8])  # a promotion week: the model follows itself


def test_croston_advanced_through_new_weeks_equals_the_library_refitted_on_them() -> None:
    rng = np.random.default_rng(4)
    demand = np.where(rng.random(60) < 0.3, rng.integers(1, 9, 60), 0).astype(float)
    demand[0] = 3.0
    old = {week(-60 + n): float(v) for n, v in enumerate(demand[:55])}
    (model,) = fit_baselines([sku(old)], week(-5))
    assert model is not None and model.method is Method.CROSTON_SBA
    units = np.zeros((1, 60))
    units[0] = demand
    advanced = project([model], units, np.ones((1, 60), dtype=bool), H, 2)
    refitted = CrostonSBA().fit(demand).predict(2)["mean"]
    assert advanced[0] == pytest.approx(refitted)


def test_the_annual_season_is_read_off_the_calendar() -> None:
    model = BaselineModel(Method.ETS, H, level=100, season=(0.2, 0.0))
    baseline = project([model], np.zeros((1, 1)), np.ones((1, 1), dtype=bool), H, 52)
    expected = 100 * (1 + 0.2 * np.sin(2 * np.pi * (week_number(H) + np.arange(52)) / SEASON_WEEKS))
    assert baseline[0] == pytest.approx(expected)


def seasonal_history(
    amplitude: float, growth: float, noise: float, seed: int = 1
) -> tuple[dict[date, float], list[float]]:
    rng = np.random.default_rng(seed)

    def mean(n: int) -> float:
        season = 1 + amplitude * np.sin(2 * np.pi * week_number(week(n)) / SEASON_WEEKS + 1.0)
        return float(200 * (1 + growth * (n + 156)) * season)

    history = {week(n): mean(n) * (1 + rng.normal(0, noise)) for n in range(-156, 0)}
    return history, [mean(n) for n in range(26)]


def test_a_seasonal_trending_series_gets_season_and_trend() -> None:
    history, truth = seasonal_history(amplitude=0.3, growth=0.002, noise=0.03)
    (model,) = fit_baselines([sku(history)], H)
    assert model is not None and model.season and model.trend > 0
    plan = plan_sku(sku(history, model), H, 26)
    baseline = np.array([w.baseline for w in plan.weeks])
    assert np.abs(baseline - truth).sum() / sum(truth) < 0.04
    flat = np.array([w.baseline for w in plan_sku(sku(history), H, 26).weeks])  # the smoothing fallback
    assert np.abs(flat - truth).sum() / sum(truth) > 0.15


def test_a_flat_noisy_series_gets_neither_season_nor_a_steep_trend() -> None:
    history, _ = seasonal_history(amplitude=0.0, growth=0.0, noise=0.12, seed=2)
    (model,) = fit_baselines([sku(history)], H)
    assert model is not None and model.season == ()
    plan = plan_sku(sku(history, model), H, 26)
    assert all(180 < w.baseline < 220 for w in plan.weeks)


def test_short_histories_keep_the_smoothing_fallback_and_sporadic_ones_get_croston() -> None:
    short = {week(-n): 50.0 for n in range(1, MIN_FIT_WEEKS)}
    sporadic = {week(-n): 4.0 for n in range(1, 60, 3)}
    models = fit_baselines([sku(short), replace(sku(sporadic), item=Item("B", "B", 0, 0))], H)
    assert models[0] is None
    assert models[1] is not None and models[1].method is Method.CROSTON_SBA
    assert models[1].demand_class == "intermittent"
    # the week before the horizon was the last demand: sizes 4, intervals 3 (the first one 1)
    assert models[1].level == pytest.approx(4.0)
    assert models[1].since_demand == 0


def test_models_store_as_json_and_come_back_equal() -> None:
    history, _ = seasonal_history(amplitude=0.3, growth=0.0, noise=0.05)
    (model,) = fit_baselines([sku(history)], H)
    assert model is not None
    assert BaselineModel.from_json(model.to_json()) == model
