"""What `salesops up` checks before it starts anything: the data dir lock, the ports, a PostgreSQL left running."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from salesops.infra import DataDirLock, InUse, free_port, postgres_holder, refuse_busy_ports

HOLD_LOCK = """
import sys
from pathlib import Path
from salesops.infra import DataDirLock
lock = DataDirLock(Path(sys.argv[1]))
lock.acquire(port_base=7000)
lock.note(postgres_pid=4242)
print("locked", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), "--marker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_held_data_dir_is_refused_naming_the_holder_and_free_again_when_it_exits(tmp_path, holder):
    with pytest.raises(InUse) as refused:
        DataDirLock(tmp_path).acquire()
    message = str(refused.value)
    assert str(tmp_path) in message
    assert f"pid {holder.pid} (" in message
    assert "--marker" in message, "the holder's command line names it"

    holder.kill()  # the kernel drops the lock of a killed holder too
    holder.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire(port_base=8000)
    try:
        assert lock.previous["pid"] == holder.pid
        assert lock.previous["postgres_pid"] == 4242
        with pytest.raises(InUse, match=f"pid {os.getpid()} "):
            DataDirLock(tmp_path).acquire()
    finally:
        lock.release()
    DataDirLock(tmp_path).acquire()


def test_busy_ports_are_named_with_their_holder_and_free_ones_pass():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        free = free_port()
        with pytest.raises(InUse) as refused:
            refuse_busy_ports({"promotion service": free, "console": busy})
    message = str(refused.value)
    assert f"port {busy} (console) is in use by pid {os.getpid()} (" in message
    assert str(free) not in message
    refuse_busy_ports({"promotion service": free, "console": busy})  # closed now


def test_a_running_postgres_is_refused_unless_an_earlier_launcher_left_it_behind(tmp_path):
    # A process named like the server, so that the check sees what it would see of a real one.
    fake_postgres = tmp_path / "postgres"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake_postgres)
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    assert postgres_holder(pgdata) is None, "no postmaster.pid: nothing runs"
    server = subprocess.Popen([str(fake_postgres), "60"])
    try:
        # Popen returns once the child forked; its name and command line are the program's only once it ran.
        for _ in range(250):
            with contextlib.suppress(psutil.Error):
                if psutil.Process(server.pid).cmdline() == [str(fake_postgres), "60"]:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the fake postgres never ran")
        (pgdata / "postmaster.pid").write_text(f"{server.pid}\n{pgdata}\n1700000000\n5432\n/tmp\n\n  1 2\nready\n")
        holder = postgres_holder(pgdata)
        assert holder is not None and f"pid {server.pid}" in holder and "postgres 60" in holder
        assert postgres_holder(pgdata, adoptable=[server.pid]) is None
        (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n")
        assert postgres_holder(pgdata) is None, "a stale file whose pid now belongs to another program"
    finally:
        server.kill()
        server.wait()
    (pgdata / "postmaster.pid").write_text(f"{server.pid}\n{pgdata}\n")
    assert postgres_holder(pgdata) is None, "a stale file of a server that is gone"
