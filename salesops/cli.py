"""The `salesops` command."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from salesops import events
from salesops.evaluation.command import forecast_eval
from salesops.evaluation.stored import backtest_command
from salesops.replicas import MAX_REPLICAS

app = typer.Typer(help="salesops: event-driven sales and operations planning.", no_args_is_help=True)
app.command("forecast-eval")(forecast_eval)
app.command("backtest")(backtest_command)
topics_app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(events.app, name="events")
outbox_app = typer.Typer(
    help="Outbox events a service's relay parked because the broker refuses them.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")
console = Console()
T = TypeVar("T")


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
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_REPLICAS,
            help="processes of each service; replica k listens on port-base+10*(k-1)+1 .. +4 (the console and "
            "`salesops demo` use replica 1)",
        ),
    ] = 1,
) -> None:
    """Run the whole system on this machine (embedded PostgreSQL and broker unless configured otherwise)."""
    from salesops.launcher import Launcher

    raise typer.Exit(Launcher(port_base=port_base, data_dir=data_dir, console=console, replicas=replicas).run())


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
    """Run the planner's console: exceptions, the MPS grid and chart, what-ifs, item editing, promise checks,
    promotions, drivers, accuracy and live alerts in a browser.

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
    out: Annotated[Path | None, typer.Option(help="the JSON report (default .salesops/bench/latest.json)")] = None,
) -> None:
    """Benchmark the system against raw baselines measured in the same run (what `make bench` runs)."""
    from salesops.bench.run import main

    argv = ["--quick"] if quick else []
    argv += ["--only", *only] if only else []
    argv += ["--out", str(out)] if out else []
    raise typer.Exit(main(argv))


@app.command()
def migrate(
    service: Annotated[ServiceName | None, typer.Option(help="only this service")] = None,
    down_to: Annotated[
        str | None,
        typer.Option(
            "--down-to",
            metavar="REVISION",
            help="take --service's schema back down to this migration (e.g. to roll back to an earlier version)",
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--status", help="show each service's current migration and head; change nothing")
    ] = False,
) -> None:
    """Run the database migrations of every service (or one) against SALESOPS_DATABASE_URL."""
    from shared import migrations
    from shared.settings import Settings

    if down_to is not None and service is None:
        raise typer.BadParameter("--down-to needs --service: a revision belongs to one service", param_hint="--down-to")
    if down_to is not None and show:
        raise typer.BadParameter("--status changes nothing; run it before or after --down-to", param_hint="--status")
    url = Settings().database_url
    names = [service.value] if service else list(migrations.SERVICES)
    if show:
        for name in names:
            revision = migrations.status(name, url)
            state = "at head" if revision.at_head else f"head is {revision.head}"
            console.print(f"{name}: {revision.current or 'not migrated'} ({state})")
        return
    if down_to is not None:
        try:
            migrations.downgrade(names[0], url, down_to)
        except migrations.MigrationError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from error
        console.print(f"migrated {names[0]} down to {down_to}")
        return
    for name in names:
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


OutboxService = Annotated[ServiceName, typer.Option("--service", help="whose outbox")]
OutboxDataDir = Annotated[
    Path, typer.Option(help="the `salesops up` data dir whose PostgreSQL to use (unless SALESOPS_DATABASE_URL is set)")
]


@outbox_app.command("list-parked")
def outbox_list_parked(
    service: OutboxService,
    data_dir: OutboxDataDir = Path(".salesops"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of a table")] = False,
) -> None:
    """List the parked events: what each is, how large, and why the broker refused it."""
    from salesops import outbox_admin

    parked = _operate(lambda url: outbox_admin.list_parked(url, service.value), data_dir)
    if as_json:
        import dataclasses
        import json

        typer.echo(json.dumps([dataclasses.asdict(p) for p in parked], default=str))
        return
    if not parked:
        console.print(f"no parked events in the {service.value} outbox")
        return
    from rich.table import Table

    table = Table(title=f"parked events of the {service.value} service")
    for column in ("id", "event type", "key", "bytes", "parked at", "reason"):
        table.add_column(column)
    for p in parked:
        table.add_row(str(p.id), p.event_type, p.key, f"{p.payload_bytes:,}", p.parked_at.isoformat(), p.reason)
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(
    service: OutboxService,
    ids: Annotated[list[int] | None, typer.Option("--id", help="a parked row (repeatable)")] = None,
    every: Annotated[bool, typer.Option("--all", help="every parked row of the service")] = False,
    data_dir: OutboxDataDir = Path(".salesops"),
) -> None:
    """Put parked events back in line: published on the relay's next pass (after the events of the same key
    published meanwhile), or parked again if the broker still refuses them."""
    from salesops import outbox_admin

    if bool(ids) == every:
        console.print("[red]name the rows with --id, or pass --all[/]")
        raise typer.Exit(2)
    done = _operate(lambda url: outbox_admin.retry_parked(url, service.value, None if every else ids), data_dir)
    console.print(f"{len(done)} event(s) back in line: {done}")
    _report_missing(ids, done)


@outbox_app.command("drop")
def outbox_drop(
    service: OutboxService,
    ids: Annotated[list[int], typer.Option("--id", help="a parked row (repeatable)")],
    data_dir: OutboxDataDir = Path(".salesops"),
) -> None:
    """Delete parked events for good: consumers will never see them."""
    from salesops import outbox_admin

    done = _operate(lambda url: outbox_admin.drop_parked(url, service.value, ids), data_dir)
    console.print(f"{len(done)} event(s) dropped: {done}")
    _report_missing(ids, done)


def _operate(action: Callable[[str], Coroutine[Any, Any, T]], data_dir: Path) -> T:
    from salesops.outbox_admin import OperatorError, database_url

    try:
        return asyncio.run(action(database_url(data_dir)))
    except OperatorError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _report_missing(asked: list[int] | None, done: list[int]) -> None:
    missing = sorted(set(asked or ()) - set(done))
    if missing:
        console.print(f"[yellow]not parked (or no such row): {missing}[/]")
        raise typer.Exit(1)
