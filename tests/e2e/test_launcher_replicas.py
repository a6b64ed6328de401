"""`salesops up --replicas 2` as a person runs it in a terminal: eight service processes and the console, all
ready, a killed replica restarted, one shared database and broker behind them, and Ctrl-C stops every process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from salesops.replicas import CONSOLE_PORT_OFFSET, replica_port, replicas_of, stack_ports
from tests.support import bearer, eventually, free_port_base

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def serving(processes: list[psutil.Process]) -> dict[tuple[str, ...], int]:
    """(`salesops` arguments up to the port) -> pid, for every `salesops serve|console` among `processes`."""
    found: dict[tuple[str, ...], int] = {}
    for process in processes:
        try:
            argv = process.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if "salesops" in argv and ("serve" in argv or "console" in argv):
            rest = argv[argv.index("salesops") + 1 :]
            found[(*rest[: rest.index("--host")], rest[-1])] = process.pid
    return found


def launch(port_base: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
    command = ["salesops", "up", "--replicas", "2", "--port-base", str(port_base), "--data-dir", str(data_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


async def ready(client: httpx.AsyncClient, port: int) -> bool:
    try:
        return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_replicas_of_every_service_run_supervised_share_their_data_and_stop_on_ctrl_c(tmp_path: Path):
    port_base = free_port_base((*stack_ports(0, 2).values(),))
    data_dir = tmp_path / "data"
    log = tmp_path / "up.log"
    up = launch(port_base, data_dir, log)
    replicas = replicas_of(port_base, 2)
    ports = [r.port for r in replicas] + [port_base + CONSOLE_PORT_OFFSET]
    descendants: list[psutil.Process] = []
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def all_ready() -> bool:
                assert up.poll() is None, f"salesops up exited:\n{log.read_text()[-3000:]}"
                return all([await ready(client, port) for port in ports])

            await eventually(all_ready, timeout=240, interval=0.5, message=f"not all ready; see {log}")

            async def summary_printed() -> str | None:
                text = log.read_text()
                return text if "Press Ctrl-C to stop." in text else None

            descendants = psutil.Process(up.pid).children(recursive=True)
            processes = serving(descendants)
            expected = {("serve", r.service, str(r.port)) for r in replicas} | {
                ("console", str(port_base + CONSOLE_PORT_OFFSET))
            }
            assert set(processes) == expected, processes
            # The launcher prints its summary once its own readiness poll saw them all.
            text = await eventually(summary_printed, timeout=30, interval=0.2, message=f"no summary in {log}")
            assert "2 replicas of each service" in text
            assert "promotion-2" in text and f"127.0.0.1:{port_base + 14}" in text

            # Supervision covers every replica: a killed second replica is started again on its port.
            victim = ("serve", "returns", str(replica_port(port_base, "returns", 2)))
            os.kill(processes[victim], signal.SIGKILL)

            async def restarted() -> bool:
                again = serving(psutil.Process(up.pid).children(recursive=True)).get(victim)
                return again is not None and again != processes[victim] and await ready(client, int(victim[2]))

            await eventually(restarted, timeout=90, interval=0.5, message=f"returns-2 was not restarted; see {log}")
            assert "returns-2 exited (-9); restarting" in " ".join(log.read_text().split())

            # One database and broker behind the replicas: written through replica 2, read through replica 1.
            keys = json.loads((data_dir / "api-keys.json").read_text())["keys"]
            admin = bearer(next(k["key"] for k in keys if k["name"] == "admin"))
            body = {
                "promotion_id": "VIA-REPLICA-2",
                "name": "through the second promotion replica",
                "starts_on": "2026-12-01",
                "ends_on": "2026-12-02",
                "items": [{"sku": "SKU-R", "uplift_pct": 20}],
            }
            promotion_2 = f"http://127.0.0.1:{replica_port(port_base, 'promotion', 2)}"
            created = await client.post(f"{promotion_2}/v1/promotions", json=body, headers=admin)
            assert created.status_code == 201, created.text
            planning_1 = f"http://127.0.0.1:{replica_port(port_base, 'planning', 1)}"

            async def planned() -> bool:
                answer = await client.get(f"{planning_1}/v1/inputs/promotions/VIA-REPLICA-2", headers=admin)
                return answer.status_code == 200

            await eventually(planned, timeout=60, interval=0.3, message="the promotion never reached planning")
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants += psutil.Process(up.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        await asyncio.to_thread(up.wait, 90)

    assert up.returncode == 0, log.read_text()[-3000:]
    assert len(descendants) >= 9

    async def none_left() -> bool:
        return not [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    await eventually(none_left, timeout=30, interval=0.2, message="processes outlived Ctrl-C")
    async with httpx.AsyncClient(timeout=1.0) as client:
        assert not [port for port in ports if await ready(client, port)]
