"""`salesops backtest`: the track record of a running system's forecast, replayed on planning's stored history
with a rolling origin (the planning core as production runs it: fit on the weeks before each origin, then
plan), against seasonal naive and ETS computed in the same run. wMAPE and bias per SKU, per forecastability
class (demand class) and per week kind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.planning_service.domain.track_record import SkuTrack, Tally
    from services.planning_service.store import FittingInputs

CHUNK_SKUS = 200


@dataclass(frozen=True)
class Settings:
    horizon_start: date
    origins: int
    step_weeks: int
    lead_weeks: int


def _track_chunk(loaded: FittingInputs, settings: Settings) -> list[SkuTrack]:
    from services.planning_service.domain.track_record import backtest

    return backtest(
        loaded.inputs,
        settings.horizon_start,
        loaded.promotions,
        origins=settings.origins,
        step_weeks=settings.step_weeks,
        lead_weeks=settings.lead_weeks,
    )


async def replay(url: str, settings: Settings, skus: Sequence[str] | None, workers: int) -> list[SkuTrack]:
    """Backtest every SKU with an item (or the ones named), a chunk at a time across `workers` processes."""
    from sqlalchemy import pool
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from services.planning_service.store import SqlStore

    engine = create_async_engine(url, poolclass=pool.NullPool)
    tracks: list[SkuTrack] = []
    try:
        sessions = async_sessionmaker(engine)
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(max(workers, 1)) as executor:
            pending: list[asyncio.Future[list[SkuTrack]]] = []
            after: str | None = None
            while True:
                async with sessions() as session:
                    store = SqlStore(session)
                    if skus is not None:
                        chunk = list(skus) if after is None else []
                    else:
                        chunk = [row["sku"] for row in await store.items_page(limit=CHUNK_SKUS, after=after)]
                    if not chunk:
                        break
                    loaded = await store.fitting_inputs(chunk, settings.horizon_start)
                after = chunk[-1]
                pending.append(loop.run_in_executor(executor, _track_chunk, loaded, settings))
                if len(pending) > workers:  # memory stays flat: a few chunks in flight
                    tracks.extend(await pending.pop(0))
            for future in pending:
                tracks.extend(await future)
    finally:
        await engine.dispose()
    return tracks


def backtest_command(
    as_of: Annotated[
        str | None, typer.Option(help="today's date (ISO); default SALESOPS_CLOCK_TODAY or the UTC date")
    ] = None,
    origins: Annotated[int, typer.Option(min=1, max=52, help="rolling origins before the current week")] = 6,
    step: Annotated[int, typer.Option(min=1, max=52, help="weeks between origins")] = 2,
    lead: Annotated[int, typer.Option(min=1, max=26, help="weeks forecast from each origin")] = 4,
    sku: Annotated[list[str] | None, typer.Option(help="only these SKUs (repeatable)")] = None,
    per_sku: Annotated[int, typer.Option(min=0, help="SKUs listed (worst salesops wMAPE first); 0: none")] = 20,
    workers: Annotated[int, typer.Option(min=1, max=8, help="processes")] = 2,
    data_dir: Annotated[
        Path, typer.Option(help="the `salesops up` data dir whose PostgreSQL to use (unless SALESOPS_DATABASE_URL)")
    ] = Path(".salesops"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of tables")] = False,
) -> None:
    """Replay planning's stored history with a rolling origin: wMAPE and bias of salesops's forecast per SKU,
    forecastability class and week kind, against seasonal naive and ETS computed in the same run."""
    from salesops.outbox_admin import OperatorError, database_url
    from services.planning_service.settings import PlanningSettings

    console = Console()
    try:
        url = database_url(data_dir)
    except OperatorError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    today = date.fromisoformat(as_of) if as_of else PlanningSettings().today()
    horizon_start = today - timedelta(days=today.weekday())
    settings = Settings(horizon_start, origins, step, lead)
    tracks = asyncio.run(replay(url, settings, sku, workers))
    report = build_report(tracks, settings)
    if as_json:
        typer.echo(json.dumps(report))
        return
    print_report(console, report, per_sku)


def _figures(tally: Tally) -> dict[str, Any]:
    return {"weeks": tally.weeks, "wmape": tally.wmape, "bias": tally.bias, "mae": tally.mae}


def build_report(tracks: Sequence[SkuTrack], settings: Settings) -> dict[str, Any]:
    from services.planning_service.domain.track_record import ALL, METHODS, WEEK_KINDS, summary

    classes = {t.sku: t.demand_class for t in tracks}
    overall = summary(tracks)
    by_class = summary(tracks, classes)
    return {
        "horizon_start": settings.horizon_start.isoformat(),
        "origins": settings.origins,
        "step_weeks": settings.step_weeks,
        "lead_weeks": settings.lead_weeks,
        "skus": len(tracks),
        "skus_scored": sum(1 for t in tracks if t.origins),
        "methods": list(METHODS),
        "by_week_kind": {
            kind: {m: _figures(overall[(ALL, m, kind)]) for m in METHODS if (ALL, m, kind) in overall}
            for kind in (ALL, *WEEK_KINDS)
        },
        "by_demand_class": {
            group: {m: _figures(by_class[(group, m, ALL)]) for m in METHODS if (group, m, ALL) in by_class}
            for group in sorted(set(classes.values()))
        },
        "per_sku": [
            {
                "sku": t.sku,
                "demand_class": t.demand_class,
                "origins": t.origins,
                **{m: _figures(t.tally(m)) for m in METHODS},
            }
            for t in tracks
        ],
    }


def _cell(figures: dict[str, Any] | None) -> str:
    if not figures or figures["wmape"] is None:
        return "-"
    return f"{100 * figures['wmape']:.1f} ({100 * (figures['bias'] or 0):+.1f})"


def print_report(console: Console, report: dict[str, Any], per_sku: int) -> None:
    methods: list[str] = report["methods"]
    console.print(
        f"{report['skus_scored']} of {report['skus']} SKUs scored: {report['origins']} origins "
        f"{report['step_weeks']} weeks apart before the week of {report['horizon_start']}, "
        f"{report['lead_weeks']} weeks ahead from each"
    )
    for title, rows in (("week kind", report["by_week_kind"]), ("demand class", report["by_demand_class"])):
        table = Table(title=f"wMAPE % (bias %) by {title}")
        table.add_column(title)
        table.add_column("weeks", justify="right")
        for method in methods:
            table.add_column(method, justify="right")
        for name, figures in rows.items():
            if not figures:
                continue
            weeks = next(iter(figures.values()))["weeks"]
            table.add_row(name, str(weeks), *(_cell(figures.get(m)) for m in methods))
        console.print(table)
    if per_sku:
        scored = [s for s in report["per_sku"] if s["origins"] and s[methods[0]]["wmape"] is not None]
        scored.sort(key=lambda s: -s[methods[0]]["wmape"])
        table = Table(title=f"per SKU, worst first ({min(per_sku, len(scored))} of {len(scored)})")
        for column in ("sku", "class", "weeks", *methods):
            table.add_column(column, justify="left" if column in ("sku", "class") else "right")
        for s in scored[:per_sku]:
            table.add_row(s["sku"], s["demand_class"], str(s[methods[0]]["weeks"]), *(_cell(s[m]) for m in methods))
        console.print(table)
