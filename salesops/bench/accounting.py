"""What a measured stretch of work cost: CPU seconds of the processes that served it and of the database
server, statements the database executed (pg_stat_statements) and the backends that waited on locks
(pg_stat_activity sampled every 100 ms), each divided by the requests or events completed in the stretch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil

# Statements that only open or close a transaction: reported apart from the work itself.
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(begin|commit|rollback|start\s+transaction|savepoint|release|end)\b", re.IGNORECASE
)
_COMMIT = re.compile(r"^\s*(commit|end)\b", re.IGNORECASE)
# Wait event types a backend blocked on a lock reports (heavyweight locks, advisory ones included, and LWLocks).
LOCK_WAIT_TYPES = frozenset({"Lock", "LWLock"})


def cpu_by_process(pid: int, *, descendants: bool = True) -> dict[int, float]:
    """User + system CPU seconds per process of a tree (or of one process): each live descendant's own, and
    for each process also what its reaped children used (psutil's children_*), so a worker that exits
    between two readings is still counted, then in its parent's entry."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)] if descendants else [root]
    except psutil.NoSuchProcess:
        return {}
    found: dict[int, float] = {}
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            found[process.pid] = times.user + times.system
            if descendants:
                found[process.pid] += times.children_user + times.children_system
    return found


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float], exclude: Collection[int] = ()) -> float:
    """CPU seconds a tree spent between two readings of `cpu_by_process`, less the processes in `exclude`
    (those of the measuring itself, or a database server's backends serving other databases)."""
    spent = sum(v for pid, v in after.items() if pid not in exclude)
    spent -= sum(v for pid, v in before.items() if pid not in exclude)
    return max(0.0, spent)


def is_transaction_control(query: str) -> bool:
    return bool(_TRANSACTION_CONTROL.match(query))


@dataclass(frozen=True)
class StatementCounts:
    """Statements executed between two readings of pg_stat_statements for one database."""

    total: int
    transaction_control: int
    commits: int
    top: list[tuple[str, int]]

    @property
    def work(self) -> int:
        return self.total - self.transaction_control

    def per(self, count: int, top: int = 12) -> dict[str, Any]:
        if count <= 0:
            return {}
        return {
            "statements": round(self.work / count, 2),
            "transaction_control": round(self.transaction_control / count, 2),
            "commits": round(self.commits / count, 2),
            "top": [{"query": q[:160], "per_unit": round(c / count, 3)} for q, c in self.top[:top]],
        }


def statement_delta(before: Mapping[int, tuple[str, int]], after: Mapping[int, tuple[str, int]]) -> StatementCounts:
    """Calls per statement between two readings ({queryid: (query, calls)}); a statement first seen in the
    second reading counts all its calls (an entry evicted meanwhile cannot be told apart and counts zero)."""
    calls: dict[str, int] = {}
    for queryid, (query, count) in after.items():
        delta = count - before.get(queryid, (query, 0))[1]
        if delta > 0:
            calls[query] = calls.get(query, 0) + delta
    total = sum(calls.values())
    control = sum(c for q, c in calls.items() if is_transaction_control(q))
    commits = sum(c for q, c in calls.items() if _COMMIT.match(q))
    top = sorted(calls.items(), key=lambda qc: -qc[1])
    return StatementCounts(total, control, commits, top)


@dataclass
class LockWaits:
    """Backends of one database seen waiting on a lock, per sample, summarised by wait event."""

    samples: int = 0
    active_total: int = 0
    active_max: int = 0
    waiting_total: dict[str, int] = field(default_factory=dict)
    waiting_max: dict[str, int] = field(default_factory=dict)

    def add(self, backends: Iterable[tuple[str | None, str | None, str | None]]) -> None:
        """One sample: (state, wait_event_type, wait_event) of every backend of the database."""
        active = 0
        waiting: dict[str, int] = {}
        for state, wait_type, wait_event in backends:
            if state == "active":
                active += 1
            if wait_type in LOCK_WAIT_TYPES:
                key = f"{wait_type}:{wait_event}"
                waiting[key] = waiting.get(key, 0) + 1
        self.samples += 1
        self.active_total += active
        self.active_max = max(self.active_max, active)
        for key in self.waiting_total.keys() | waiting.keys():
            count = waiting.get(key, 0)
            self.waiting_total[key] = self.waiting_total.get(key, 0) + count
            self.waiting_max[key] = max(self.waiting_max.get(key, 0), count)

    @property
    def waiting_mean(self) -> float:
        return sum(self.waiting_total.values()) / self.samples if self.samples else 0.0

    def summary(self) -> dict[str, Any]:
        events = sorted(self.waiting_total, key=lambda k: -self.waiting_total[k])
        return {
            "samples": self.samples,
            "active_backends_mean": round(self.active_total / self.samples, 2) if self.samples else 0.0,
            "active_backends_max": self.active_max,
            "waiting_backends_mean": round(self.waiting_mean, 2),
            "waiting_by_event": {
                key: {"mean": round(self.waiting_total[key] / self.samples, 2), "max": self.waiting_max[key]}
                for key in events
            },
        }

    def brief(self) -> str:
        top = sorted(self.waiting_total, key=lambda k: -self.waiting_total[k])[:2]
        if not top or not self.samples:
            return "no lock waits seen"
        return ", ".join(
            f"{key} mean {self.waiting_total[key] / self.samples:.1f} max {self.waiting_max[key]}" for key in top
        )


@dataclass
class Usage:
    """What a metered stretch cost: CPU seconds per process label, statements, lock waits, wall time."""

    seconds: float
    cpu_s: dict[str, float]
    statements: StatementCounts | None
    locks: LockWaits

    def cpu_ms_per(self, label: str, count: int) -> float:
        return round(self.cpu_s.get(label, 0.0) * 1000 / count, 3) if count > 0 else 0.0

    def statements_per(self, count: int) -> float | None:
        if self.statements is None or count <= 0:
            return None
        return round(self.statements.work / count, 3)

    def per(self, count: int) -> dict[str, Any]:
        """The whole usage divided by the requests or events completed."""
        return {
            "units": count,
            "seconds": round(self.seconds, 3),
            "cpu_ms_per_unit": {label: self.cpu_ms_per(label, count) for label in self.cpu_s},
            "cpu_utilisation": {
                label: round(cpu / self.seconds, 2) if self.seconds else 0.0 for label, cpu in self.cpu_s.items()
            },
            "statements_per_unit": self.statements.per(count) if self.statements is not None else None,
            "lock_waits": self.locks.summary(),
        }


async def _statements(conn: asyncpg.Connection, database: str) -> dict[int, tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT s.queryid, s.query, s.calls FROM pg_stat_statements s"
        " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 AND s.queryid IS NOT NULL",
        database,
    )
    found: dict[int, tuple[str, int]] = {}
    for row in rows:
        query, calls = found.get(row["queryid"], (row["query"], 0))
        found[row["queryid"]] = (query, calls + int(row["calls"]))
    return found


class Meter:
    """Meters one stretch of work: `async with Meter(...) as meter:` ... `meter.usage`. CPU of the processes
    given by label -> pid, each with its descendants (the database server's tree under the label `postgres`,
    less the backends of other databases, the meter's own included; this process alone, without the
    children it started), pg_stat_statements of the database and lock waits sampled every `interval_s`."""

    def __init__(
        self,
        monitor_dsn: str,
        database: str,
        processes: Mapping[str, int],
        *,
        statements: bool,
        interval_s: float = 0.1,
    ) -> None:
        self._dsn = monitor_dsn
        self._database = database
        self._processes = dict(processes)
        self._statements = statements
        self._interval_s = interval_s
        self.usage: Usage | None = None

    async def _sample_locks(self, conn: asyncpg.Connection, locks: LockWaits) -> None:
        while True:
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                " WHERE datname = $1 AND backend_type = 'client backend'",
                self._database,
            )
            locks.add((r["state"], r["wait_event_type"], r["wait_event"]) for r in rows)
            await asyncio.sleep(self._interval_s)

    async def _excluded_backends(self, conn: asyncpg.Connection) -> set[int]:
        """Backends serving other databases (another process's pool, idle or not): not this measure's cost."""
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname IS NOT NULL AND datname <> $1", self._database
        )
        return {int(r["pid"]) for r in rows}

    def _cpu(self) -> dict[str, dict[int, float]]:
        # This process alone: its children are the services, brokers and generators measured on their own.
        return {label: cpu_by_process(pid, descendants=pid != os.getpid()) for label, pid in self._processes.items()}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Meter]:
        stats = await asyncpg.connect(self._dsn)
        sampler_conn = await asyncpg.connect(self._dsn)
        try:
            excluded = await self._excluded_backends(stats)
            statements_before = await _statements(stats, self._database) if self._statements else {}
            locks = LockWaits()
            cpu_before = self._cpu()
            started = time.perf_counter()
            sampler = asyncio.create_task(self._sample_locks(sampler_conn, locks))
            try:
                yield self
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            seconds = time.perf_counter() - started
            cpu_after = self._cpu()
            excluded |= await self._excluded_backends(stats)
            counts = None
            if self._statements:
                counts = statement_delta(statements_before, await _statements(stats, self._database))
            self.usage = Usage(
                seconds,
                {label: cpu_delta(cpu_before[label], cpu_after[label], excluded) for label in cpu_after},
                counts,
                locks,
            )
        finally:
            await sampler_conn.close()
            await stats.close()

    def result(self) -> Usage:
        if self.usage is None:
            raise RuntimeError("the meter has not finished")
        return self.usage
