"""`salesops up`: the whole system on one machine, each service a supervised process of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console
from rich.table import Table

from salesops.console.settings import env_for_port_base as console_env_for_port_base
from salesops.infra import (
    DataDirLock,
    EmbeddedBroker,
    EmbeddedPostgres,
    InUse,
    die_with_parent,
    free_port,
    postgres_holder,
    refuse_busy_ports,
)
from salesops.replicas import BROKER_PORT_OFFSET, CONSOLE_PORT_OFFSET, connection_pool, replicas_of
from salesops.replicas import SERVICE_PORT_OFFSETS as SERVICE_PORT_OFFSETS
from shared import migrations
from shared.auth import generate_keys_file
from shared.events import ALL_TOPICS
from shared.kafka import ensure_topics
from shared.retry import Backoff, retrying_sync
from shared.settings import Settings

# Readiness is asked every 0.2 s at first, then less often while services take their time.
READY_POLL = Backoff(initial_s=0.2, max_s=1.0)


class _NotReady(Exception):
    """Some services are not ready yet (named in the message)."""


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    # `salesops` arguments: `serve <service>` for a replica of a service, `console` for the console
    command: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_service(self) -> bool:
        return self.command[0] == "serve"

    def start(self, env: dict[str, str]) -> None:
        if self._log is not None:
            self._log.close()  # the previous run's, on a restart
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "salesops",
                *self.command,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()


class Launcher:
    def __init__(self, *, port_base: int, data_dir: Path, console: Console, replicas: int = 1) -> None:
        self.port_base = port_base
        self.replicas = replicas
        self.data_dir = data_dir.resolve()
        self.console = console
        self.logs_dir = self.data_dir / "logs"
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.services = [
            ServiceProcess(r.name, r.port, self.logs_dir / r.log_name, command=("serve", r.service))
            for r in replicas_of(port_base, replicas)
        ]
        self.services.append(
            ServiceProcess(
                "console", port_base + CONSOLE_PORT_OFFSET, self.logs_dir / "console.log", command=("console",)
            )
        )
        self.lock = DataDirLock(self.data_dir)
        self.broker_port = port_base + BROKER_PORT_OFFSET
        self._stop = False

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._claim()
        except InUse as exc:
            # Nothing was started, so nothing is stopped: whatever holds the data dir or the ports runs on.
            self.lock.release()
            self.console.print(
                f"salesops up refused: {exc}", style="bold red", markup=False, highlight=False, soft_wrap=True
            )
            return 1
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request_stop)
        try:
            env = self._prepare()
            if self._stop:
                return 0
            for service in self.services:
                service.start(env)
            self._wait_ready()
            self._print_summary(env)
            self._supervise(env)
            return 0
        finally:
            self._shutdown()
            self.lock.release()

    def _claim(self) -> None:
        """Takes the data dir and checks every port before anything starts; raises `InUse` naming the holder.

        Two stacks on one data dir would share (and stop) one PostgreSQL; a service whose port is taken would
        crash-loop while the other stack's service answered its readiness checks."""
        self.lock.acquire(port_base=self.port_base, replicas=self.replicas)
        refuse_busy_ports({f"{s.name} service" if s.is_service else s.name: s.port for s in self.services})
        if not os.environ.get("SALESOPS_KAFKA_BOOTSTRAP_SERVERS"):
            # The broker's port is the stack's own business: any free one does when the usual one is taken.
            self.broker_port = free_port(self.broker_port)
        if not os.environ.get("SALESOPS_DATABASE_URL"):
            pgdata = self.data_dir / "postgres"
            left_behind = self.lock.previous.get("postgres_pid")
            holder = postgres_holder(pgdata, adoptable=[left_behind] if isinstance(left_behind, int) else [])
            if holder is not None:
                raise InUse(
                    f"the PostgreSQL of {pgdata} is already running as {holder}, and no earlier salesops up of "
                    "this data dir started it; stop it first (kill -INT on its pid shuts it down cleanly)"
                )

    def _request_stop(self, signum: int, _frame: object) -> None:
        if not self._stop:
            self.console.print(f"\n[bold]{signal.Signals(signum).name}[/]: stopping salesops ...")
        self._stop = True

    def _prepare(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("SALESOPS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        env.update(console_env_for_port_base(self.port_base))
        keys_file = env.get("SALESOPS_API_KEYS_FILE")
        if not keys_file:
            path = self.data_dir / "api-keys.json"
            if not path.exists():
                generate_keys_file(path)
            env["SALESOPS_API_KEYS_FILE"] = str(path)

        if not env.get("SALESOPS_DATABASE_URL"):
            with self.console.status("starting the embedded PostgreSQL ..."):
                self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
                env["SALESOPS_DATABASE_URL"] = self.postgres.start()
                # Should this launcher be killed, the server outlives it: the next one may take it over.
                self.lock.note(postgres_pid=self.postgres.pid)
            # Every replica's pool must fit the embedded server's connections together.
            pool, overflow = connection_pool(self.replicas)
            env.setdefault("SALESOPS_DB_POOL_SIZE", str(pool))
            env.setdefault("SALESOPS_DB_MAX_OVERFLOW", str(overflow))
        partitions = self._partitions(env)
        if not env.get("SALESOPS_KAFKA_BOOTSTRAP_SERVERS"):
            with self.console.status("starting the embedded broker ..."):
                self.broker = EmbeddedBroker(
                    self.broker_port,
                    log_path=self.logs_dir / "broker.log",
                    topics=ALL_TOPICS,
                    partitions=partitions,
                )
                env["SALESOPS_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.start()
                # The embedded broker has no transactions or idempotent producers; correctness comes from
                # the outbox and the inbox.
                env["SALESOPS_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
                # The broker forgets its log when it stops; the outboxes are the durable log on one machine.
                env.setdefault("SALESOPS_RELAY_REPUBLISH_ON_NEW_BROKER", "true")
                env.setdefault("SALESOPS_CONSUMER_SESSION_TIMEOUT_MS", "6000")
                env.setdefault("SALESOPS_CONSUMER_HEARTBEAT_INTERVAL_MS", "1000")
        with self.console.status("creating topics and running migrations ..."):
            asyncio.run(ensure_topics(env["SALESOPS_KAFKA_BOOTSTRAP_SERVERS"], ALL_TOPICS, partitions))
            for service in migrations.SERVICES:
                migrations.upgrade(service, env["SALESOPS_DATABASE_URL"])
        return env

    def _partitions(self, env: dict[str, str]) -> int:
        """Partitions per topic, passed on to every process: a relay or consumer that creates a topic again (after
        the embedded broker lost its state) must create it as the launcher did."""
        default = Settings.model_fields["topic_partitions"].default
        partitions = int(env.get("SALESOPS_TOPIC_PARTITIONS") or default)
        env["SALESOPS_TOPIC_PARTITIONS"] = str(partitions)
        if partitions < self.replicas:
            self.console.print(
                f"[yellow]{partitions} partition(s) per topic for {self.replicas} replicas: "
                f"{self.replicas - partitions} replica(s) of each service will consume nothing[/]"
            )
        return partitions

    def _wait_ready(self, timeout_s: float = 90.0) -> None:
        pending = {s.name: s for s in self.services}

        def check(client: httpx.Client) -> None:
            for name, service in list(pending.items()):
                if not service.alive():
                    raise RuntimeError(f"the {name} service exited at startup; see {service.log_path}")
                try:
                    if client.get(f"{service.url}/readyz").status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if pending and not self._stop:
                raise _NotReady(", ".join(pending))

        with (
            self.console.status("waiting for the services to be ready ..."),
            httpx.Client(timeout=2.0) as client,
        ):
            try:
                for attempt in retrying_sync(
                    READY_POLL, retry_on=lambda e: isinstance(e, _NotReady), deadline_s=timeout_s
                ):
                    with attempt:
                        check(client)
            except _NotReady as exc:
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {exc} (logs in {self.logs_dir})") from exc

    def _print_summary(self, env: dict[str, str]) -> None:
        title = "salesops is running" + (f" ({self.replicas} replicas of each service)" if self.replicas > 1 else "")
        table = Table(title=title, show_lines=False)
        table.add_column("service")
        table.add_column("API")
        table.add_column("docs")
        for service in self.services:
            if service.is_service:
                table.add_row(service.name, service.url, f"{service.url}/docs")
        self.console.print(table)
        console_url = f"http://127.0.0.1:{self.port_base + CONSOLE_PORT_OFFSET}/"
        replica_one = "; it calls replica 1 of each service" if self.replicas > 1 else ""
        self.console.print(f"console:    {console_url} (sign in with the planner key{replica_one})")
        self.console.print(f"API keys:   {env['SALESOPS_API_KEYS_FILE']}")
        self.console.print(
            f"database:   {'embedded, ' + str(self.data_dir / 'postgres') if self.postgres else 'external'}"
        )
        self.console.print(
            f"broker:     {env['SALESOPS_KAFKA_BOOTSTRAP_SERVERS']}{' (embedded)' if self.broker else ''}"
        )
        self.console.print(f"logs:       {self.logs_dir}")
        self.console.print("Press Ctrl-C to stop.")

    def _supervise(self, env: dict[str, str]) -> None:
        while not self._stop:
            if self.broker is not None and not self.broker.running():
                self.console.print("[yellow]the embedded broker stopped; restarting it[/]")
                self.broker.start()  # creates the topics again before the services can reach it
            for service in self.services:
                if not service.alive() and not self._stop:
                    code = service.process.returncode if service.process else None
                    # Back off when a service keeps crashing at startup.
                    if time.monotonic() - service.started_at < 5 and service.restarts > 2:
                        time.sleep(2)
                    service.restarts += 1
                    self.console.print(f"[yellow]{service.name} exited ({code}); restarting[/]")
                    service.start(env)
            time.sleep(0.5)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + 20
        for service in self.services:
            service.terminate()
        for service in self.services:
            service.wait_or_kill(deadline)
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.console.print("salesops stopped.")
