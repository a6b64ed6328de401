"""`salesops forecast-eval`: salesops's forecast against the standard models, slice by slice, on simulated
demand with a known truth and on real weekly series, plus the sensing scenarios."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from salesops.evaluation.backtest import Scoreboard


def forecast_eval(
    skus: Annotated[
        int, typer.Option(help="simulated SKUs (a quarter each smooth, trending, seasonal, intermittent)")
    ] = 240,
    origins: Annotated[int, typer.Option(help="rolling origins, 8 weeks apart, over the last year")] = 6,
    horizon: Annotated[int, typer.Option(help="weeks forecast from each origin")] = 8,
    seed: Annotated[int, typer.Option(help="the simulator's seed: same seed, same figures")] = 3,
    workers: Annotated[int, typer.Option(help="processes for the backtest")] = 2,
    quick: Annotated[bool, typer.Option(help="a small run (a smoke test)")] = False,
) -> None:
    """Backtest the forecast with a rolling origin: wMAPE and bias per week kind and SKU kind."""
    from salesops.evaluation.backtest import SALESOPS, SKU_KINDS, WEEK_KINDS, backtest
    from salesops.evaluation.real import backtest_series, real_series
    from salesops.evaluation.sensing import run_sensing
    from salesops.evaluation.simulator import simulate
    from salesops.evaluation.standard import STANDARD_MODELS

    console = Console()
    if quick:
        skus, origins, horizon = 24, 2, 8
    weeks = 208
    started = time.perf_counter()
    simulation = simulate(skus, weeks, seed)
    origin_weeks = [weeks - horizon - 8 * n for n in range(origins)][::-1]
    board = backtest(simulation, origin_weeks, horizon, workers=workers)
    title = f"Simulated demand: {skus} SKUs, origins at weeks {origin_weeks}, {horizon} weeks ahead"
    console.print(_slices(board, f"{title}: by week kind", ("all", *WEEK_KINDS)))
    console.print(_slices(board, f"{title}: by SKU kind", SKU_KINDS))
    console.print(f"SKU-weeks scored: {board.get(SALESOPS, 'all').weeks}")

    real = Table(title="Real weekly series (13 weeks ahead, 12 origins 13 weeks apart, 156 weeks of history)")
    real.add_column("series")
    for method in (SALESOPS, *STANDARD_MODELS):
        real.add_column(method, justify="right")
    for name, (start, values) in real_series().items():
        scores = backtest_series(start, values, origins=4 if quick else 12, step=13, horizon=13)
        real.add_row(name, *(f"{100 * (scores.get(m, 'all').wmape or 0):.2f}" for m in (SALESOPS, *STANDARD_MODELS)))
    console.print(real)

    report = run_sensing(count=12 if quick else 40, seed=seed)
    console.print(f"Sensing on {report.skus} SKUs per scenario, replayed day by day for four weeks:")
    console.print(
        f"  no change: a shift adopted for {100 * report.false_alarm_skus:.1f} % of SKUs "
        f"({100 * report.false_alarm_days:.2f} % of SKU-days); next week forecast / truth {report.steady_ratio:.3f}"
    )
    console.print(
        f"  one-off bulk order day: its week {report.bulk_week_ratio:.3f} of what was ordered, "
        f"the next week {report.bulk_next_ratio:.3f} of the truth"
    )
    steps = ", ".join(f"day {d}: {r:.2f}" for d, r in report.step_ratio.items())
    console.print(f"  threefold step, next week forecast / truth after: {steps}")
    console.print(f"[dim]{time.perf_counter() - started:.0f} s[/]")


def _slices(board: Scoreboard, title: str, slices: Sequence[str]) -> Table:
    from salesops.evaluation.backtest import SALESOPS
    from salesops.evaluation.standard import STANDARD_MODELS

    table = Table(title=title)
    table.add_column("wMAPE % (bias %)")
    for name in slices:
        table.add_column(name, justify="right")
    for method in board.methods():
        cells = []
        for name in slices:
            tally = board.get(method, name)
            cells.append("-" if tally.wmape is None else f"{100 * tally.wmape:.1f} ({100 * (tally.bias or 0):+.1f})")
        table.add_row(method, *cells, style="bold" if method == SALESOPS else None)
    best = []
    for name in slices:
        score, method = min((board.get(m, name).wmape or float("inf"), m) for m in STANDARD_MODELS)
        best.append(f"{100 * score:.1f} {method}")
    table.add_row("best standard model", *best, style="dim")
    return table
