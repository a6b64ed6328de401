"""`salesops up --replicas N`: where each replica listens, what it is called, what the launcher checks and passes on."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from rich.console import Console

from salesops.infra import InUse
from salesops.launcher import Launcher
from salesops.replicas import (
    BROKER_PORT_OFFSET,
    CONSOLE_PORT_OFFSET,
    MAX_REPLICAS,
    SERVICE_PORT_OFFSETS,
    check_replicas,
    connection_pool,
    replica_port,
    replicas_of,
    stack_ports,
)
from shared.settings import Settings
from tests.support import free_port_base


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_a_single_stack_keeps_its_ports_and_names():
    replicas = replicas_of(8000, 1)
    assert [(r.name, r.port) for r in replicas] == [
        ("promotion", 8001),
        ("fulfillment", 8002),
        ("returns", 8003),
        ("planning", 8004),
    ]
    assert [r.log_name for r in replicas] == ["promotion.log", "fulfillment.log", "returns.log", "planning.log"]


def test_two_replicas_keep_replica_one_on_the_usual_ports_and_put_replica_two_ten_above():
    replicas = replicas_of(9000, 2)
    assert [(r.name, r.service, r.index, r.port) for r in replicas] == [
        ("promotion-1", "promotion", 1, 9001),
        ("fulfillment-1", "fulfillment", 1, 9002),
        ("returns-1", "returns", 1, 9003),
        ("planning-1", "planning", 1, 9004),
        ("promotion-2", "promotion", 2, 9011),
        ("fulfillment-2", "fulfillment", 2, 9012),
        ("returns-2", "returns", 2, 9013),
        ("planning-2", "planning", 2, 9014),
    ]
    assert replica_port(9000, "planning", 3) == 9024


@pytest.mark.parametrize("count", range(1, MAX_REPLICAS + 1))
def test_no_two_processes_of_a_stack_share_a_port_and_none_leaves_the_stack_s_hundred(count: int):
    port_base = 20_000
    ports = stack_ports(port_base, count)
    assert len(ports) == 4 * count + 2
    assert len(set(ports.values())) == len(ports), ports
    assert ports["console"] == port_base + CONSOLE_PORT_OFFSET
    assert ports["broker"] == port_base + BROKER_PORT_OFFSET
    # Stacks on port bases 100 apart (as the tests pick them) never overlap.
    assert all(port_base < port < port_base + 100 for port in ports.values())
    assert len({r.name for r in replicas_of(port_base, count)}) == 4 * count


@pytest.mark.parametrize("count", [0, -1, MAX_REPLICAS + 1])
def test_a_replica_count_out_of_range_is_refused(count: int):
    with pytest.raises(ValueError, match=f"from 1 to {MAX_REPLICAS}"):
        check_replicas(count)
    with pytest.raises(ValueError):
        replicas_of(8000, count)


def test_every_replica_fits_the_embedded_postgresql_and_a_single_stack_keeps_the_default_pool():
    defaults = Settings.model_fields
    assert connection_pool(1) == (defaults["db_pool_size"].default, defaults["db_max_overflow"].default)
    previous = None
    for count in range(1, MAX_REPLICAS + 1):
        pool, overflow = connection_pool(count)
        assert pool >= 3 and overflow == 0
        assert len(SERVICE_PORT_OFFSETS) * count * (pool + overflow) <= 80, count
        if previous is not None:
            assert pool + overflow <= previous
        previous = pool + overflow


def test_the_launcher_runs_every_replica_of_every_service_and_one_console(tmp_path: Path):
    launcher = Launcher(port_base=8000, data_dir=tmp_path, console=quiet(), replicas=2)
    services = [s for s in launcher.services if s.is_service]
    assert [(s.name, s.port, s.command) for s in services] == [
        (r.name, r.port, ("serve", r.service)) for r in replicas_of(8000, 2)
    ]
    assert len({s.log_path for s in launcher.services}) == 9
    consoles = [s for s in launcher.services if not s.is_service]
    assert [(c.name, c.port, c.command) for c in consoles] == [("console", 8005, ("console",))]


def test_a_busy_port_of_replica_two_is_refused_by_name_before_anything_starts(tmp_path: Path):
    port_base = free_port_base((*stack_ports(0, 2).values(),))
    launcher = Launcher(port_base=port_base, data_dir=tmp_path, console=quiet(), replicas=2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", replica_port(port_base, "returns", 2)))
        listener.listen()
        try:
            with pytest.raises(InUse) as refused:
                launcher._claim()
        finally:
            launcher.lock.release()
    message = str(refused.value)
    assert f"port {port_base + 13} (returns-2 service) is in use" in message
    assert "returns-1" not in message
    assert not (tmp_path / "postgres").exists()


def test_the_partition_count_is_passed_on_to_every_process_and_too_few_are_named(tmp_path: Path):
    console = quiet()
    launcher = Launcher(port_base=8000, data_dir=tmp_path, console=console, replicas=2)
    env: dict[str, str] = {}
    assert launcher._partitions(env) == Settings.model_fields["topic_partitions"].default
    assert env["SALESOPS_TOPIC_PARTITIONS"] == str(Settings.model_fields["topic_partitions"].default)
    assert "consume nothing" not in console.file.getvalue()  # type: ignore[attr-defined]

    env = {"SALESOPS_TOPIC_PARTITIONS": "1"}
    assert launcher._partitions(env) == 1
    assert "1 partition(s) per topic for 2 replicas: 1 replica(s)" in console.file.getvalue()  # type: ignore[attr-defined]
