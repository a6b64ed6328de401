"""What the reliability scenarios share: scaled counts, the run report, services as processes or live
in-process servers, a steady mixed load that records every answer, and the downstream accounting."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from salesops.infra import free_port
from tests.support import bearer, eventually

FULL = os.environ.get("SALESOPS_RELIABILITY_FULL", "") not in ("", "0", "false")
SERVICES = ("promotion", "fulfillment", "returns", "planning")


def scaled(reduced: int, full: int) -> int:
    """The reduced count for `make test`, the full one for `make test-reliability`."""
    return full if FULL else reduced


# ---------------------------------------------------------------- the run report


@dataclass
class ReliabilityReport:
    """What the suite tried and what it found, printed at the end of the run and written as JSON."""

    faults: Counter[str] = field(default_factory=Counter)
    messages_sent: Counter[str] = field(default_factory=Counter)
    bad_inputs: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    # Outbox rows neither published nor parked once a scenario settled: events held back from everyone.
    stuck: int = 0
    notes: list[str] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def add(self, other: dict[str, Any]) -> None:
        """Add what another process's report (its `state`) counted: the report of a run across test workers."""
        for name in ("faults", "messages_sent", "bad_inputs", "statuses"):
            getattr(self, name).update(other[name])
        for name in ("accepted", "lost", "duplicated", "stuck"):
            setattr(self, name, getattr(self, name) + other[name])
        self.notes.extend(other["notes"])
        for name, value in other["measurements"].items():
            mine = self.measurements.get(name)
            # A measurement that tests in both processes added to (a dict of figures) keeps the figures of both.
            self.measurements[name] = {**mine, **value} if isinstance(mine, dict) and isinstance(value, dict) else value

    def state(self) -> dict[str, Any]:
        """The counts as plain data, for `add` in another process."""
        return {
            "faults": dict(self.faults),
            "messages_sent": dict(self.messages_sent),
            "bad_inputs": dict(self.bad_inputs),
            "statuses": dict(self.statuses),
            "accepted": self.accepted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "stuck": self.stuck,
            "notes": list(self.notes),
            "measurements": dict(self.measurements),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "full" if FULL else "reduced",
            "faults_injected": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "messages_sent": dict(self.messages_sent),
            "messages_total": sum(self.messages_sent.values()),
            "bad_inputs": dict(self.bad_inputs),
            "bad_inputs_total": sum(self.bad_inputs.values()),
            "http_statuses": dict(sorted(self.statuses.items())),
            "accepted_requests": self.accepted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "stuck": self.stuck,
            "measurements": self.measurements,
            "notes": self.notes,
            "property_tests": "tests/unit/planning/test_planning_properties.py (hypothesis: MPS invariants)",
            "webhook_signatures": "tests/integration/test_webhooks_delivery.py (Standard Webhooks verification)",
        }


REPORT = ReliabilityReport()


# ---------------------------------------------------------------- services as processes


def service_env(database_url: str, bootstrap: str, keys_file: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SALESOPS_DATABASE_URL": database_url,
        "SALESOPS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SALESOPS_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "SALESOPS_KAFKA_REQUEST_TIMEOUT_MS": "3000",
        "SALESOPS_API_KEYS_FILE": str(keys_file),
        "SALESOPS_TOPIC_PARTITIONS": "3",
        "SALESOPS_RELAY_POLL_INTERVAL_S": "0.1",
        "SALESOPS_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESOPS_CONSUMER_HEARTBEAT_INTERVAL_MS": "300",
        "SALESOPS_CONSUMER_BACKOFF_INITIAL_S": "0.05",
        "SALESOPS_CONSUMER_BACKOFF_MAX_S": "1.0",
        "SALESOPS_CONSUMER_BATCH_SIZE": "50",
        "SALESOPS_DB_POOL_SIZE": "5",
        "SALESOPS_SHUTDOWN_GRACE_S": "8",
        **extra,
    }


@dataclass
class ServiceProcess:
    """One service run as `salesops serve`, as `salesops up` runs it."""

    name: str
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    # The service it serves, when `name` is a replica's (`returns-2`) rather than the service's own.
    service: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "salesops", "serve", self.service or self.name, "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited ({self.process.returncode}); see {self.log_path}")
                try:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, timeout=timeout, interval=0.2, message=f"{self.name} never became ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM and wait for the exit; returns how long the drain took (seconds)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM") from None
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.asynccontextmanager
async def service_processes(env: dict[str, str], logs: Path) -> AsyncIterator[dict[str, ServiceProcess]]:
    processes = {name: ServiceProcess(name, free_port(), logs / f"{name}.log", env) for name in SERVICES}
    try:
        for process in processes.values():
            process.start()
        await asyncio.gather(*(p.wait_ready(timeout=90) for p in processes.values()))
        yield processes
    finally:
        for process in processes.values():
            process.stop()


# ---------------------------------------------------------------- live in-process servers


@contextlib.asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app on a loopback port inside this event loop (lifespan included); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server, task), timeout=30, message="live server never started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise AssertionError("the live server stopped at startup")
    return server.started


# ---------------------------------------------------------------- the steady mixed load

KINDS = ("promotion", "volume", "return", "complaint", "account")
# Every kind of request the load knows; a Load sends KINDS unless told otherwise.
ALL_KINDS = (*KINDS, "order")
SERVICE_OF = {
    "promotion": "promotion",
    "volume": "fulfillment",
    "return": "returns",
    "complaint": "returns",
    "account": "returns",
    "order": "fulfillment",
}


def request_for(kind: str, run: str, index: int) -> tuple[str, str, str, dict[str, Any]]:
    """(method, path, id, body) of the `index`-th request of a kind; ids are unique per run."""
    today = date.today()
    ident = f"{run}-{kind[:3].upper()}-{index:05d}"
    if kind == "promotion":
        starts = today + timedelta(days=14 + index % 30)
        body = {
            "promotion_id": ident,
            "name": f"Promotion {index}",
            "starts_on": starts.isoformat(),
            "ends_on": (starts + timedelta(days=3)).isoformat(),
            "items": [{"sku": f"{run}-PS-{index % 13}", "uplift_pct": 10 + index % 40}],
        }
        return "POST", "/v1/promotions", ident, body
    if kind == "volume":
        # One (sku, day) per request, so every downstream copy holds exactly this request's figures.
        body = {
            "warehouse_id": "DC-REL",
            "lines": [
                {
                    "sku": ident,
                    "day": (today - timedelta(days=3)).isoformat(),
                    "units_ordered": 10 + index % 7,
                    "units_shipped": 9 + index % 7,
                    "units_backordered": 1,
                }
            ],
        }
        return "POST", "/v1/order-volumes", ident, body
    if kind == "return":
        body = {
            "return_id": ident,
            "sku": f"{run}-RS-{index % 11}",
            "quantity": 1 + index % 4,
            "account_id": f"{run}-ACC-{index % 5}",
            "reason": "no_longer_needed",
            "condition": "resellable",
            "returned_on": today.isoformat(),
            "resolution": "refund",
        }
        return "POST", "/v1/returns", ident, body
    if kind == "complaint":
        body = {
            "complaint_id": ident,
            "account_id": f"{run}-ACC-{index % 5}",
            "sku": f"{run}-RS-{index % 11}",
            "category": "quality",
            "severity": "critical" if index % 2 == 0 else "low",
            "description": "reliability load",
            "received_on": today.isoformat(),
        }
        return "POST", "/v1/complaints", ident, body
    if kind == "order":
        promised = (today + timedelta(days=14 + index % 21)).isoformat()
        line = {"line_id": "1", "sku": f"{run}-PS-{index % 13}", "quantity": 5 + index % 20, "requested_on": promised}
        order: dict[str, Any] = {"order_id": ident, "account_id": f"{run}-ACC-{index % 5}", "lines": [line]}
        return "POST", "/v1/sales-orders", ident, {**order, "ordered_on": today.isoformat()}
    body = {"name": f"Account {index}", "segment": ("strategic", "integrated", "emerging", "stable")[index % 4]}
    return "PUT", f"/v1/accounts/{ident}", ident, body


@dataclass
class Ledger:
    """Every answer the load received, and the ids the services accepted (2xx)."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    sent: int = 0
    accepted: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in ALL_KINDS})
    unexpected: list[str] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def critical_complaints(self) -> set[str]:
        return {i for i in self.accepted["complaint"] if self.bodies[i]["severity"] == "critical"}

    def total_accepted(self) -> int:
        return sum(len(ids) for ids in self.accepted.values())


class Load:
    """A bounded, steady mix of creates against the services; a request that fails for lack of a service
    is retried with the same id (as a client would) until it gets a definite answer.

    A service given several base URLs (its replicas) gets requests in turn, and a retry goes to the next one,
    as a load balancer would send it."""

    def __init__(
        self,
        urls: Mapping[str, str | Sequence[str]],
        key: str,
        *,
        run: str,
        workers: int = 4,
        pause_s: float = 0.05,
        kinds: Sequence[str] = KINDS,
    ) -> None:
        self._urls = {name: [url] if isinstance(url, str) else list(url) for name, url in urls.items()}
        self._kinds = tuple(kinds)
        self._headers = bearer(key)
        self._run = run
        self._workers = workers
        self._pause_s = pause_s
        self._counter = itertools.count()
        self._running = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self.ledger = Ledger()

    async def __aenter__(self) -> Load:
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0))
        self._running.set()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        await self._client.aclose()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def stop(self) -> None:
        self._stopping = True
        self._running.set()
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=120)
            self._tasks = []

    async def idle(self) -> None:
        """Wait until no request is in flight (used after pause())."""
        await eventually(lambda: _true(self._in_flight == 0), timeout=60, message="requests stuck in flight")

    async def _worker(self) -> None:
        while not self._stopping:
            await self._running.wait()
            if self._stopping:
                return
            index = next(self._counter)
            kind = self._kinds[index % len(self._kinds)]
            self._in_flight += 1
            try:
                await self._send(kind, index)
            finally:
                self._in_flight -= 1
            await asyncio.sleep(self._pause_s)

    async def _send(self, kind: str, index: int) -> None:
        method, path, ident, body = request_for(kind, self._run, index)
        self.ledger.bodies[ident] = body
        bases = self._urls[SERVICE_OF[kind]]
        delay = 0.1
        for attempt in range(600):
            self.ledger.sent += 1
            url = bases[(index + attempt) % len(bases)] + path
            try:
                response = await self._client.request(method, url, json=body, headers=self._headers)
            except httpx.HTTPError:
                self.ledger.connection_errors += 1
            else:
                self.ledger.statuses[response.status_code] += 1
                if response.status_code < 300:
                    self.ledger.accepted[kind].add(ident)
                    return
                if response.status_code < 500:
                    self.ledger.unexpected.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        self.ledger.unexpected.append(f"{method} {path}: never answered")


async def _true(value: bool) -> bool:
    return value


# ---------------------------------------------------------------- accounting


@dataclass
class Accounting:
    """Per accepted id, how many times each downstream copy holds it."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    doubled: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def duplicated(self) -> int:
        return sum(len(v) for v in self.doubled.values())

    def ok(self) -> bool:
        return not self.lost and not self.duplicated


# (copy name, kind, SQL returning (id, count) for the ids of one run)
DOWNSTREAM: list[tuple[str, str, str]] = [
    (
        "promotion.promotions",
        "promotion",
        "select promotion_id, 1 from promotion.promotions where promotion_id like $1",
    ),
    (
        "promotion.outbox planned events",
        "promotion",
        "select convert_from(payload, 'UTF8')::jsonb->>'subject', count(*) from promotion.outbox"
        " where event_type = 'salesops.promotion.planned.v1'"
        " and convert_from(payload, 'UTF8')::jsonb->>'subject' like $1 group by 1",
    ),
    ("planning.promotions", "promotion", "select promotion_id, 1 from planning.promotions where promotion_id like $1"),
    (
        "planning.drivers",
        "promotion",
        "select subject, count(*) from planning.drivers where subject like $1"
        " and event_type = 'salesops.promotion.planned.v1' group by subject",
    ),
    (
        "returns.promotions",
        "promotion",
        "select promotion_id, 1 from returns.promotions where promotion_id like $1",
    ),
    ("fulfillment.volumes", "volume", "select sku, count(*) from fulfillment.volumes where sku like $1 group by sku"),
    (
        "returns.daily_volumes",
        "volume",
        "select sku, count(*) from returns.daily_volumes where sku like $1 group by sku",
    ),
    (
        "planning.daily_volumes",
        "volume",
        "select sku, count(*) from planning.daily_volumes where sku like $1 group by sku",
    ),
    ("returns.returns", "return", "select return_id, 1 from returns.returns where return_id like $1"),
    ("planning.returns", "return", "select return_id, 1 from planning.returns where return_id like $1"),
    (
        "planning.drivers (returns)",
        "return",
        "select subject, count(*) from planning.drivers where subject like $1"
        " and event_type = 'salesops.return.recorded.v1' group by subject",
    ),
    ("returns.complaints", "complaint", "select complaint_id, 1 from returns.complaints where complaint_id like $1"),
    ("returns.accounts", "account", "select account_id, 1 from returns.accounts where account_id like $1"),
    ("planning.accounts", "account", "select account_id, 1 from planning.accounts where account_id like $1"),
    (
        "fulfillment.account_tiers",
        "account",
        "select account_id, 1 from fulfillment.account_tiers where account_id like $1",
    ),
    ("fulfillment.sales_orders", "order", "select order_id, 1 from fulfillment.sales_orders where order_id like $1"),
    ("planning.orders", "order", "select order_id, 1 from planning.orders where order_id like $1"),
    ("returns.cost_orders", "order", "select order_id, 1 from returns.cost_orders where order_id like $1"),
    (
        "fulfillment.outbox booked events",
        "order",
        "select convert_from(payload, 'UTF8')::jsonb->>'subject', count(*) from fulfillment.outbox"
        " where event_type = 'salesops.sales-order.booked.v1'"
        " and convert_from(payload, 'UTF8')::jsonb->>'subject' like $1 group by 1",
    ),
]


async def account(conn: asyncpg.Connection, ledger: Ledger, run: str) -> Accounting:
    """Compare what the services accepted with every downstream copy, by id."""
    result = Accounting()
    like = f"{run}-%"
    for name, kind, sql in DOWNSTREAM:
        found = {row[0]: row[1] for row in await conn.fetch(sql, like)}
        expected = ledger.accepted[kind]
        result.missing[name] = sorted(expected - found.keys())
        result.doubled[name] = sorted(k for k, n in found.items() if n > 1)
    alerts = {
        row[0]: row[1]
        for row in await conn.fetch(
            "select subject, count(*) from returns.alerts where type = 'critical-complaint' and subject like $1"
            " group by subject",
            like,
        )
    }
    critical = ledger.critical_complaints()
    result.missing["returns.alerts (critical-complaint)"] = sorted(critical - alerts.keys())
    result.doubled["returns.alerts (critical-complaint)"] = sorted(
        k for k, n in alerts.items() if n > 1 or k not in critical
    )
    return result


async def outbox_backlog(conn: asyncpg.Connection) -> int:
    """Outbox rows still waiting to be published (parked rows wait for an operator, not for the relay)."""
    total = 0
    for schema in SERVICES:
        total += await conn.fetchval(
            f"select count(*) from {schema}.outbox where published_at is null and parked_at is null"
        )
    return int(total)


async def settle(conn: asyncpg.Connection, ledger: Ledger, run: str, *, timeout: float) -> Accounting:
    """Wait until every accepted request is reflected everywhere (or the timeout), then account."""

    async def reflected() -> Accounting | None:
        result = await account(conn, ledger, run)
        return result if result.ok() and await outbox_backlog(conn) == 0 else None

    try:
        settled: Accounting = await eventually(reflected, timeout=timeout, interval=0.3)
        return settled
    except AssertionError:
        return await account(conn, ledger, run)


def describe(result: Accounting) -> str:
    parts = [f"{name}: {len(ids)} missing (e.g. {ids[:3]})" for name, ids in result.missing.items() if ids]
    parts += [f"{name}: {len(ids)} doubled (e.g. {ids[:3]})" for name, ids in result.doubled.items() if ids]
    return "; ".join(parts) or "all reflected exactly once"


def record_ledger(ledger: Ledger, result: Accounting, *, scenario: str) -> None:
    for code, count in ledger.statuses.items():
        REPORT.statuses[str(code)] += count
    REPORT.statuses["connection-error"] += ledger.connection_errors
    REPORT.messages_sent[f"http requests ({scenario})"] += ledger.sent
    REPORT.accepted += ledger.total_accepted()
    REPORT.lost += result.lost
    REPORT.duplicated += result.duplicated


def dump(data: Any) -> bytes:
    return json.dumps(data).encode()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """postgresql+asyncpg://postgres@/db?host=/dir -> postgresql://postgres@/db?host=/dir"""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def build_apps(settings: Any) -> dict[str, FastAPI]:
    """The four apps, each from its own composition root, on the given settings."""
    from services.fulfillment_service.app import build_app as fulfillment
    from services.planning_service.app import build_app as planning
    from services.promotion_service.app import build_app as promotion
    from services.returns_service.app import build_app as returns

    return {
        "promotion": promotion(settings),
        "fulfillment": fulfillment(settings),
        "returns": returns(settings),
        "planning": planning(settings),
    }


@contextlib.asynccontextmanager
async def live_system(settings: Any, apps: dict[str, FastAPI] | None = None) -> AsyncIterator[dict[str, str]]:
    """All four services served in-process on loopback ports; yields their base URLs by name."""
    apps = apps or build_apps(settings)
    async with contextlib.AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(live_server(app)) for name, app in apps.items()}
        yield urls
