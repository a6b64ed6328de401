"""Runs the benchmark suite, prints the figures beside their raw baselines and writes them as JSON.

python -m salesops.bench [--quick] [--only MEASURE ...] [--out .salesops/bench/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from salesops.bench.harness import Harness, dumps, machine
from salesops.bench.model import MeasureResult

Measure = Callable[[Harness, bool], Awaitable[MeasureResult]]

# Run order: memory last, so it can report the peaks every service reached during the others. Each measure is
# (title, module in salesops.bench with its `run`): only the modules of the measures chosen are imported, so a run
# of a few measures does not wait for the libraries of the others (the forecast fit's statistics libraries take
# seconds to import).
MEASURES: dict[str, tuple[str, str]] = {
    "http_small": ("HTTP ingest, small (POST /v1/returns)", "http_ingest"),
    "http_bulk": ("HTTP ingest, bulk (POST /v1/order-volumes)", "order_volumes"),
    "relay": ("Outbox relay", "outbox_relay"),
    "consumers": ("Consumers (planning)", "consumers"),
    "latency": ("End-to-end latency", "latency"),
    "planning_core": ("Planning core", "planning_core"),
    "promising": ("Promising (promise checks, booked orders)", "promising"),
    "full_replan": ("Full replan through the database", "full_replan"),
    "forecast_fit": ("Baseline models (fit at rollover, apply per event)", "forecast_fit"),
    "memory": ("Memory (RSS per service)", "memory"),
}
# Beside the data of `salesops up`, in the directory it runs from (ignored by git).
DEFAULT_OUT = Path(".salesops") / "bench" / "latest.json"


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


async def run_suite(names: list[str], quick: bool, console: Console, profile_dir: Path | None = None) -> dict[str, Any]:
    measures: dict[str, Measure] = {
        name: importlib.import_module(f"salesops.bench.{MEASURES[name][1]}").run for name in names
    }
    document: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "load_average_start": _load(),
        "measures": {},
    }
    with tempfile.TemporaryDirectory(prefix="salesops-bench-") as workdir:
        harness = Harness(Path(workdir), profile_dir)
        try:
            with console.status("starting the embedded PostgreSQL and migrating the template database ..."):
                await harness.start()
            document["statement_statistics"] = (
                "pg_stat_statements" if harness.statements_available else "unavailable: statements are not counted"
            )
            for name in names:
                title, _ = MEASURES[name]
                measure = measures[name]
                started = time.perf_counter()
                load_before = _load()
                with console.status(f"{title} ..."):
                    try:
                        result = await measure(harness, quick)
                    except Exception as exc:
                        # One broken measure must not cost the figures of the others.
                        console.print(f"[red]{title} failed:[/] {exc!r}")
                        document["measures"][name] = {"title": title, "error": traceback.format_exc()}
                        harness.stop_all()
                        continue
                document["measures"][name] = {
                    "title": title,
                    **result.as_json(),
                    "seconds": round(time.perf_counter() - started, 1),
                    "load_average_before": load_before,
                    "load_average_after": _load(),
                }
                console.print(f"[green]done[/] {title} ({time.perf_counter() - started:.0f}s)")
        finally:
            await harness.close()
    document["load_average_end"] = _load()
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return document


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"


def render(document: dict[str, Any], console: Console) -> None:
    m = document["machine"]
    table = Table(
        title="salesops benchmarks" + (" (quick)" if document["quick"] else ""),
        caption=f"{m['cpu_model']}, {m['logical_cores']} cores, {m['memory_gib']} GiB, Python {m['python']};"
        f" load average {document['load_average_start']} -> {document['load_average_end']}",
    )
    for column in ("measure", "figure", "value", "baseline", "ratio", "goal", "met", "note"):
        table.add_column(column, justify="right" if column in {"value", "baseline", "ratio"} else "left")
    for measure in document["measures"].values():
        if "error" in measure:
            table.add_row(measure["title"], "[red]failed[/]", "", "", "", "", "", "see the JSON")
            continue
        for i, fig in enumerate(measure["figures"]):
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[fig["met"]]
            baseline = f"{_fmt(fig['baseline'])} ({fig['baseline_name']})" if fig["baseline"] is not None else ""
            table.add_row(
                measure["title"] if i == 0 else "",
                fig["name"],
                f"{_fmt(fig['value'])} {fig['unit']}",
                baseline,
                _fmt(fig["ratio"]),
                fig["goal"],
                met,
                fig["note"],
            )
    console.print(table)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m salesops.bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="small counts and short runs (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=list(MEASURES), metavar="MEASURE", help=", ".join(MEASURES))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the loaded service with py-spy during HTTP and latency measures; stacks go to DIR",
    )
    args = parser.parse_args(argv)
    # Wide enough for the whole table when the output is a file or a pipe (make, CI logs).
    console = Console() if sys.stdout.isatty() else Console(width=200)
    names = [n for n in MEASURES if not args.only or n in args.only]
    # SIGTERM (a timeout, CI cancelling) unwinds like Ctrl-C, so the embedded PostgreSQL, which outlives its
    # parent once started, is stopped by the harness instead of being left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    profile_dir = args.profile.resolve() if args.profile else None
    document = asyncio.run(run_suite(names, args.quick, console, profile_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(document) + "\n")
    render(document, console)
    console.print(f"written to {args.out}")
    return 1 if any("error" in m for m in document["measures"].values()) else 0
