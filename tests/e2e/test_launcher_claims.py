"""Two `salesops up` on one machine: the second is refused, names who holds what, and leaves the first alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import bearer, free_port_base

pytestmark = pytest.mark.e2e

OFFSETS = {"promotion": 1, "fulfillment": 2, "returns": 3, "planning": 4, "console": 5}


def up_command(port_base: int, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "salesops", "up", "--port-base", str(port_base), "--data-dir", str(data_dir)]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}


def launch(port_base: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        up_command(port_base, data_dir), env=clean_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def run_to_completion(port_base: int, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        up_command(port_base, data_dir),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def all_ready(port_base: int) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        for offset in OFFSETS.values():
            try:
                if (await client.get(f"http://127.0.0.1:{port_base + offset}/readyz")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


def running(pid: int) -> bool:
    """Alive and not merely exited: a stopped PostgreSQL was detached to init, which may reap it a moment later."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_all_ready(process: subprocess.Popen[bytes], port_base: int, log: Path) -> None:
    for _ in range(600):  # two minutes at most
        assert process.poll() is None, f"salesops up exited:\n{tail(log)}"
        if await all_ready(port_base):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"salesops up never became ready:\n{tail(log)}")


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


async def test_a_second_salesops_up_on_a_busy_data_dir_or_port_is_refused_and_the_first_runs_on(tmp_path):
    port_base = free_port_base()
    data_dir = tmp_path / "data"
    log = tmp_path / "first.log"
    first = launch(port_base, data_dir, log)
    try:
        await wait_all_ready(first, port_base, log)
        postgres = postmaster_pid(data_dir)
        admin = next(
            k["key"] for k in json.loads((data_dir / "api-keys.json").read_text())["keys"] if k["name"] == "admin"
        )

        other_base = free_port_base()
        same_dir = await asyncio.to_thread(run_to_completion, other_base, data_dir)
        assert same_dir.returncode != 0, same_dir.stdout
        refusal = " ".join(same_dir.stdout.split())
        assert f"the data dir {data_dir.resolve()} is in use by pid {first.pid} (" in refusal, refusal
        assert "salesops up" in refusal
        assert not await all_ready(other_base), "the second stack must not have started"

        other_dir = tmp_path / "other"
        same_ports = await asyncio.to_thread(run_to_completion, port_base, other_dir)
        assert same_ports.returncode != 0, same_ports.stdout
        refusal = " ".join(same_ports.stdout.split())
        assert f"port {port_base + 1} (promotion service) is in use by pid " in refusal, refusal
        assert "salesops serve promotion" in refusal, "the holder of the port is named"
        assert f"port {port_base + 5} (console) is in use" in refusal
        assert not (other_dir / "postgres").exists(), "nothing may start before the ports are checked"

        # The first stack never noticed: same database server, every service ready, and it takes writes.
        assert postmaster_pid(data_dir) == postgres
        assert psutil.pid_exists(postgres)
        assert await all_ready(port_base)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_base + 1}") as promotion:
            body = {
                "promotion_id": "STILL-HERE",
                "name": "after two refused launchers",
                "starts_on": "2026-12-01",
                "ends_on": "2026-12-02",
                "items": [{"sku": "SKU-S", "uplift_pct": 10}],
            }
            created = await promotion.post("/v1/promotions", json=body, headers=bearer(admin))
            assert created.status_code == 201, created.text
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.to_thread(first.wait, 60)
    assert first.returncode == 0, tail(log)
    assert not running(postgres), "the first stack stops its own PostgreSQL"
