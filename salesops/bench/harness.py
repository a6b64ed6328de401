"""Shared benchmark harness: one embedded PostgreSQL for the run, a fresh database and broker per measure,
services as `python -m salesops serve <name>` processes, bounded load generators and an RSS sampler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from salesops.bench.accounting import Meter
from salesops.bench.profile import Profiler
from salesops.infra import EmbeddedBroker, EmbeddedPostgres, die_with_parent, free_port
from shared import migrations
from shared.auth import CLIENT_ROLES, generate_keys_file
from shared.events import ALL_TOPICS
from shared.kafka import ensure_topics

# The folder holding the salesops, services and shared packages (a source checkout or site-packages):
# processes the harness starts import them from there.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DB = "bench_template"
PARTITIONS = 6
MIB = 1024 * 1024


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(sqlalchemy_url: str, database: str) -> str:
    head, _, query = sqlalchemy_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{database}?{query}"


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), model)
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass
class Environment:
    """What one measure runs against: its own database on the shared server and its own broker."""

    database_url: str
    broker: EmbeddedBroker
    keys_file: Path
    keys: dict[str, str]
    database: str

    @property
    def dsn(self) -> str:
        return asyncpg_dsn(self.database_url)

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    def service_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
        env.update(
            {
                "SALESOPS_DATABASE_URL": self.database_url,
                "SALESOPS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "SALESOPS_KAFKA_ENABLE_IDEMPOTENCE": "false",
                "SALESOPS_API_KEYS_FILE": str(self.keys_file),
                "SALESOPS_TOPIC_PARTITIONS": str(PARTITIONS),
                # The same shortened group timings as `salesops up` uses with the embedded broker.
                "SALESOPS_CONSUMER_SESSION_TIMEOUT_MS": "6000",
                "SALESOPS_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
                "PYTHONPATH": str(SOURCE_ROOT),
            }
        )
        env.update(extra)
        return env

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Process:
    """A child process on a loopback port (a service, a raw baseline server or the webhook receiver)."""

    label: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_bytes(self, children: bool = True) -> int:
        """RSS of the process, with its child processes (e.g. the planning fitter's workers) unless `children`
        is false."""
        try:
            proc = psutil.Process(self.popen.pid)
            own = int(proc.memory_info().rss)
            return own + sum(c.memory_info().rss for c in proc.children(recursive=True)) if children else own
        except psutil.Error:
            return 0


def own_label(label: str) -> str:
    """The sampler's key for a process's RSS without its child processes."""
    return f"{label} (own)"


class RssSampler:
    """Samples the RSS of registered processes in a thread, keeping each one's latest and peak value, with its
    child processes (under its label) and without them (under `own_label(label)`)."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self._interval_s = interval_s
        self._processes: dict[str, Process] = {}
        self.peak: dict[str, int] = {}
        self.latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def watch(self, process: Process) -> None:
        with self._lock:
            self._processes[process.label] = process

    def forget(self, label: str) -> None:
        with self._lock:
            self._processes.pop(label, None)

    def reset_peak(self, label: str) -> None:
        with self._lock:
            for key in (label, own_label(label)):
                self.peak[key] = self.latest.get(key, 0)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            with self._lock:
                processes = list(self._processes.values())
            for process in processes:
                for key, rss in (
                    (process.label, process.rss_bytes()),
                    (own_label(process.label), process.rss_bytes(children=False)),
                ):
                    if rss:
                        with self._lock:
                            self.latest[key] = rss
                            self.peak[key] = max(self.peak.get(key, 0), rss)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class Harness:
    """Starts the embedded PostgreSQL once (with a migrated template database) and hands each measure a fresh
    database and a fresh in-memory broker, so no measure sees another's rows, backlog or consumer offsets."""

    def __init__(self, workdir: Path, profile_dir: Path | None = None) -> None:
        self.workdir = workdir
        # Where py-spy profiles of the loaded services go (`--profile`); None: no profiling.
        self.profile_dir = profile_dir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(workdir / "pg")
        self.server_url = ""
        self.keys_file = workdir / "api-keys.json"
        self.keys: dict[str, str] = {}
        self.sampler = RssSampler()
        # Peak RSS per service over every measure (the memory measure reports it beside its own run).
        self.service_peaks: dict[str, int] = {}
        self._processes: list[Process] = []
        self._brokers: list[EmbeddedBroker] = []
        # Whether pg_stat_statements is loaded: statements per request are reported only then.
        self.statements_available = False

    @property
    def monitor_dsn(self) -> str:
        """The server's `postgres` database: monitoring connections there never show in a measure's figures."""
        return asyncpg_dsn(with_database(self.server_url, "postgres"))

    @property
    def postgres_pid(self) -> int:
        if self.postgres.pid is None:
            raise RuntimeError("the embedded PostgreSQL has not been started")
        return self.postgres.pid

    async def _enable_statement_statistics(self) -> None:
        """Load pg_stat_statements, which only a restart can do (shared_preload_libraries). Without it every
        other figure stands and statements per request are left out."""
        conn = await asyncpg.connect(self.monitor_dsn)
        try:
            preloaded = str(await conn.fetchval("SHOW shared_preload_libraries"))
            if "pg_stat_statements" not in preloaded:
                await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        finally:
            await conn.close()
        if "pg_stat_statements" not in preloaded:
            await asyncio.to_thread(self.postgres.stop, "fast")
            try:
                self.server_url = await asyncio.to_thread(self.postgres.start)
            except Exception:
                # The library is missing from this build: undo the setting so the server starts without it.
                (self.postgres.data_dir / "postgresql.auto.conf").write_text("")
                self.server_url = await asyncio.to_thread(self.postgres.start)
                return
        conn = await asyncpg.connect(self.monitor_dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.statements_available = True
        except asyncpg.PostgresError:
            self.statements_available = False
        finally:
            await conn.close()

    async def start(self) -> None:
        self.server_url = await asyncio.to_thread(self.postgres.start)
        await self._enable_statement_statistics()
        conn = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        template_url = with_database(self.server_url, TEMPLATE_DB)
        for service in migrations.SERVICES:
            await asyncio.to_thread(migrations.upgrade, service, template_url)
        keys = generate_keys_file(self.keys_file, roles=CLIENT_ROLES)
        self.keys = {k.name: k.key for k in keys.keys}

    def profiler(self, measure: str) -> Profiler | None:
        return Profiler(self.profile_dir, measure) if self.profile_dir is not None else None

    @contextlib.asynccontextmanager
    async def metered(self, env: Environment, processes: Mapping[str, int]) -> AsyncIterator[Meter]:
        """Meters a stretch of work: CPU of the given processes (label -> pid) and of the database server
        (`postgres`), the statements of the measure's database and its lock waits."""
        meter = Meter(
            self.monitor_dsn,
            env.database,
            {**processes, "postgres": self.postgres_pid},
            statements=self.statements_available,
        )
        async with meter.running():
            yield meter

    async def _database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        return name

    async def sibling(self, env: Environment) -> Environment:
        """Another fresh database beside `env`, on the same broker: a raw baseline measured there counts
        none of the statements the system's background loops run in theirs."""
        name = await self._database()
        return Environment(with_database(self.server_url, name), env.broker, self.keys_file, self.keys, name)

    async def drop(self, env: Environment) -> None:
        """Drop `env`'s database once a measure is done with it (no connection may be left on it): its tables
        neither take room nor draw autovacuum while later figures are taken."""
        conn = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            # FORCE: a backend of a service just stopped may not have gone yet.
            await conn.execute(f'DROP DATABASE IF EXISTS "{env.database}" WITH (FORCE)')
        except asyncpg.PostgresError as exc:
            # Left for the bench's PostgreSQL to take with it when it stops: no figure depends on the drop.
            print(f"bench: database {env.database} was not dropped: {exc}", file=sys.stderr)
        finally:
            await conn.close()

    async def environment(self) -> Environment:
        for broker in self._brokers:
            broker.stop(grace_s=0.2)
        self._brokers.clear()
        name = await self._database()
        broker = EmbeddedBroker(free_port(), log_path=self.logs / "broker.log")
        broker.start()
        self._brokers.append(broker)
        await ensure_topics(broker.bootstrap_servers, ALL_TOPICS, partitions=PARTITIONS)
        return Environment(with_database(self.server_url, name), broker, self.keys_file, self.keys, name)

    def spawn(self, label: str, argv: list[str], env: dict[str, str]) -> Process:
        port = free_port()
        log_path = self.logs / f"{label}.log"
        popen = subprocess.Popen(
            [sys.executable, *argv, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=SOURCE_ROOT,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        process = Process(label, port, popen, log_path)
        self._processes.append(process)
        self.sampler.watch(process)
        return process

    async def service(self, name: str, env: Environment, **extra_env: str) -> Process:
        """`python -m salesops serve <name>` as `salesops up` runs it, ready (database and broker reachable)."""
        process = self.spawn(name, ["-m", "salesops", "serve", name], env.service_env(**extra_env))
        await wait_http(process, "/readyz")
        return process

    async def uvicorn_app(self, label: str, app: str, env: dict[str, str]) -> Process:
        """A bench ASGI app under uvicorn with the same loop and HTTP parser as the services."""
        argv = ["-m", "uvicorn", app, "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        process = self.spawn(label, [*argv, "--log-level", "warning"], {**env, "PYTHONPATH": str(SOURCE_ROOT)})
        await wait_http(process, "/healthz")
        return process

    def stop(self, process: Process) -> None:
        peak = self.sampler.peak.get(process.label, 0)
        self.service_peaks[process.label] = max(self.service_peaks.get(process.label, 0), peak)
        self.sampler.forget(process.label)
        if process.popen.poll() is None:
            process.popen.terminate()
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        with contextlib.suppress(ValueError):
            self._processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self._processes):
            self.stop(process)

    async def close(self) -> None:
        self.stop_all()
        for broker in self._brokers:
            broker.stop(grace_s=0.2)
        self.sampler.close()
        await asyncio.to_thread(self.postgres.stop, "immediate")

    @contextlib.contextmanager
    def running(self, *processes: Process) -> Iterator[None]:
        try:
            yield
        finally:
            for process in processes:
                self.stop(process)


async def wait_http(process: Process, path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.label} exited at startup; see {process.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{process.url}{path}")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.label} not ready after {timeout_s:.0f}s; see {process.log_path}")


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(interval_s)
    return False


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
