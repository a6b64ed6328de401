"""A reduced rolling-origin backtest on the seeded simulator: salesops's forecast against seasonal naive and
the standard models on every slice, and the sensing scenarios' verdicts."""

import pytest

from salesops.evaluation.backtest import SALESOPS, SKU_KINDS, WEEK_KINDS, Scoreboard, backtest
from salesops.evaluation.sensing import run_sensing
from salesops.evaluation.simulator import SkuKind, simulate

STANDARD = ("Holt-Winters", "AutoETS", "MSTL")
# Slices of a few dozen SKU-weeks carry sampling noise: "not worse" allows this much relative difference.
NOISE = 0.03


@pytest.fixture(scope="module")
def board() -> Scoreboard:
    simulation = simulate(48, 208, seed=21)
    return backtest(simulation, [184, 192], 8, standard=("seasonal naive", *STANDARD))


def wmape(board: Scoreboard, method: str, name: str) -> float:
    value = board.get(method, name).wmape
    assert value is not None
    return value


@pytest.mark.parametrize("name", ["all", *WEEK_KINDS, *SKU_KINDS])
def test_salesops_beats_seasonal_naive_on_every_slice(board: Scoreboard, name: str) -> None:
    assert wmape(board, SALESOPS, name) < wmape(board, "seasonal naive", name)


@pytest.mark.parametrize("name", ["all", *WEEK_KINDS, *SKU_KINDS])
def test_salesops_is_not_worse_than_the_best_standard_model_on_any_slice(board: Scoreboard, name: str) -> None:
    best = min(wmape(board, model, name) for model in STANDARD)
    assert wmape(board, SALESOPS, name) <= best * (1 + NOISE)


@pytest.mark.parametrize("name", ["promotion", "post-promotion", "cannibalized"])
def test_promotion_weeks_are_as_accurate_as_normal_ones_and_unbiased(board: Scoreboard, name: str) -> None:
    assert wmape(board, SALESOPS, name) < 1.5 * wmape(board, SALESOPS, "normal")
    bias = board.get(SALESOPS, name).bias
    assert bias is not None and abs(bias) < 0.1


def test_order_day_only_intermittent_skus_are_not_over_forecast(board: Scoreboard) -> None:
    bias = board.get(SALESOPS, SkuKind.INTERMITTENT.value).bias
    assert bias is not None and abs(bias) < 0.25


def test_sensing_ignores_one_off_days_and_adopts_a_confirmed_step() -> None:
    report = run_sensing(count=10, seed=5)
    assert report.false_alarm_days < 0.05
    assert 0.9 < report.bulk_week_ratio < 1.1  # its own week: what was really ordered, not the day x 7
    assert 0.9 < report.bulk_next_ratio < 1.1  # the next week: back to the truth
    assert report.step_ratio[1] < 0.5  # one day is not a shift ...
    assert all(0.85 < report.step_ratio[d] < 1.15 for d in (7, 14, 21))  # ... a week of it is
