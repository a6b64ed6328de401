"""The `salesops` command."""

from __future__ import annotations

import asyncio
import importlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from salesops.evaluation.command import forecast_eval

app = typer.Typer(help="salesops: event-driven sales and operations planning.", no_args_is_help=True)
app.command("forecast-eval")(forecast_eval)
topics_app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
console = Console()


class ServiceName(StrEnum):
    promotion = "promotion"
    fulfillment = "fulfillment"
    returns = "returns"
    planning = "planning"


@app.command()
def up(
    port_base: Annotated[int, typer.Option(help="services listen on port-base+1 .. +4")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="embedded database, broker logs and generated keys")] = Path(
        ".salesops"
    ),
) -> None:
    """Run the whole system on this machine (embedded PostgreSQL and broker unless configured otherwise)."""
    from salesops.launcher import Launcher

    raise typer.Exit(Launcher(port_base=port_base, data_dir=data_dir, console=console).run())


@app.command()
def serve(
    service: ServiceName,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run one service (HTTP API, outbox relay, consumers) in the foreground; SIGTERM drains it."""
    import uvicorn

    module = importlib.import_module(f"services.{service.value}_service.app")
    application = module.build_app()
    settings = application.state.settings
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        loop="uvloop" if os.name != "nt" else "asyncio",
        http="httptools",
    )


@app.command("console")
def console_command(
    host: Annotated[str, typer.Option(help="loopback by default: the console holds no auth of its own")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="the console's port")] = 8005,
) -> None:
    """Run the planner's console: the MPS grid, chart, promotions, drivers, accuracy and live alerts in a browser.

    The services are found at SALESOPS_CONSOLE_PROMOTION_URL, _FULFILLMENT_URL, _RETURNS_URL and _PLANNING_URL
    (defaults http://127.0.0.1:8001 .. 8004)."""
    import uvicorn

    from salesops.console import build_app

    # Short graceful shutdown: open alert streams would otherwise hold the process until they time out.
    uvicorn.run(build_app(), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="same seed and same day = the same requests; ids derive from it")] = 7,
    port_base: Annotated[int, typer.Option(help="the services of `salesops up --port-base N`")] = 8000,
    keys_file: Annotated[
        Path | None, typer.Option(help="API keys (default: SALESOPS_API_KEYS_FILE or .salesops/api-keys.json)")
    ] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the events to flow")] = 120.0,
) -> None:
    """Play a few months of a small company through a running system, then show what changed."""
    from salesops.demo import run_demo

    raise typer.Exit(run_demo(seed=seed, port_base=port_base, keys_file=keys_file, wait_s=wait, console=console))


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="small counts and short runs (a smoke test)")] = False,
    only: Annotated[list[str] | None, typer.Option(help="run only this measure (repeatable)")] = None,
    out: Annotated[Path | None, typer.Option(help="the JSON report (default bench/results/latest.json)")] = None,
) -> None:
    """Benchmark the system against raw baselines measured in the same run (what `make bench` runs)."""
    import sys

    # The suite lives in the source tree beside the packages, not in the installed distribution.
    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "run.py").is_file():
        console.print("[red]the benchmark suite (bench/) comes with a source checkout of salesops[/]")
        raise typer.Exit(2)
    sys.path.insert(0, str(root))
    from bench.run import main

    argv = ["--quick"] if quick else []
    argv += ["--only", *only] if only else []
    argv += ["--out", str(out)] if out else []
    raise typer.Exit(main(argv))


@app.command()
def migrate(
    service: Annotated[ServiceName | None, typer.Option(help="only this service")] = None,
) -> None:
    """Run the database migrations of every service (or one) against SALESOPS_DATABASE_URL."""
    from shared import migrations
    from shared.settings import Settings

    url = Settings().database_url
    for name in [service.value] if service else migrations.SERVICES:
        migrations.upgrade(name, url)
        console.print(f"migrated {name}")


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(help="partitions per topic")] = None,
) -> None:
    """Create every contract topic and its dead-letter topic (existing ones are left alone)."""
    from shared.events import ALL_TOPICS
    from shared.kafka import ensure_topics
    from shared.settings import Settings

    settings = Settings()
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            ALL_TOPICS,
            partitions or settings.topic_partitions,
            settings.topic_replication_factor,
        )
    )
    console.print(f"created {len(created)} topic(s); {len(ALL_TOPICS) - len(created)} already existed")
