"""The services as separate processes, as `salesops up` runs them: crash recovery and the launcher itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from shared.events import EventType, PromotionData, new_event
from tests.support import bearer, eventually, free_port_base, produce

pytestmark = pytest.mark.e2e


def service_env(settings: Any) -> dict[str, str]:
    return {
        **os.environ,
        "SALESOPS_DATABASE_URL": settings.database_url,
        "SALESOPS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SALESOPS_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "SALESOPS_API_KEYS_FILE": str(settings.api_keys_file),
        "SALESOPS_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESOPS_CONSUMER_HEARTBEAT_INTERVAL_MS": "300",
        "SALESOPS_CONSUMER_BATCH_SIZE": "20",
    }


def start_service(name: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "salesops", "serve", name, "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_ready(port: int, timeout: float = 30.0) -> None:
    async with httpx.AsyncClient() as client:

        async def ready() -> bool:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=timeout, interval=0.2, message=f"service on {port} never became ready")


def promotion_event(index: int) -> bytes:
    data = PromotionData.model_validate(
        {
            "promotion_id": f"P-{index:04d}",
            "name": f"Promotion {index}",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-07",
            "items": [{"sku": f"SKU-{index % 7}", "uplift_pct": 10 + index % 30}],
        }
    )
    return new_event(EventType.PROMOTION_PLANNED, source="test", subject=data.promotion_id, data=data).to_json()


async def test_planning_killed_mid_stream_loses_nothing_and_applies_nothing_twice(settings, broker, db, tmp_path):
    total = 300
    port = free_port_base() + 4
    env = service_env(settings)
    planning = start_service("planning", port, env, tmp_path / "planning.log")
    try:
        await wait_ready(port)
        for index in range(total):
            await produce(
                broker.bootstrap_servers,
                "salesops.promotions",
                promotion_event(index),
                key=f"SKU-{index % 7}".encode(),
            )

        async def some_processed() -> bool:
            return await db.fetchval("select count(*) from planning.inbox") >= 30

        await eventually(some_processed, message="planning processed nothing")
        planning.send_signal(signal.SIGKILL)
        planning.wait(timeout=10)
        processed_before_kill = await db.fetchval("select count(*) from planning.inbox")

        planning = start_service("planning", port, env, tmp_path / "planning.log")

        async def all_processed() -> bool:
            return await db.fetchval("select count(*) from planning.inbox") == total

        await eventually(all_processed, timeout=60, message="events were lost across the crash")
    finally:
        planning.send_signal(signal.SIGTERM)
        planning.wait(timeout=30)
    assert processed_before_kill < total, "the kill came too late to test anything"
    assert await db.fetchval("select count(*) from planning.promotions") == total
    assert await db.fetchval("select count(*) from planning.drivers") == total
    assert await db.fetchval("select count(distinct event_id) from planning.inbox") == total
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -SIGTERM is a clean exit too.
    assert planning.returncode in (0, -signal.SIGTERM)
    assert '"service stopped"' in (tmp_path / "planning.log").read_text(), "SIGTERM should drain the service"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def test_salesops_up_runs_the_system_stops_cleanly_and_finds_its_data_again(tmp_path):
    port_base = free_port_base()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}

    def launch() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "salesops",
                "up",
                "--port-base",
                str(port_base),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=(tmp_path / "up.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def stop(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
        children = _descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
        return children

    up = launch()
    try:
        for offset in (1, 2, 3, 4):
            await wait_ready(port_base + offset, timeout=120)
        keys = __import__("json").loads((data_dir / "api-keys.json").read_text())["keys"]
        admin = next(k["key"] for k in keys if k["name"] == "admin")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_base + 1}") as promotion:
            body = {
                "promotion_id": "KEEP",
                "name": "kept",
                "starts_on": "2026-12-01",
                "ends_on": "2026-12-02",
                "items": [{"sku": "SKU-K", "uplift_pct": 20}],
            }
            assert (await promotion.post("/v1/promotions", json=body, headers=bearer(admin))).status_code == 201
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_base + 4}") as planning:

            async def applied() -> bool:
                response = await planning.get("/v1/inputs/promotions/KEEP", headers=bearer(admin))
                return response.status_code == 200

            await eventually(applied, message="the promotion never reached planning")
    finally:
        started = time.monotonic()
        children = await stop(up)
    assert up.returncode == 0
    assert time.monotonic() - started < 45
    assert children, "salesops up should have started child processes"
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"orphans left behind: {survivors}"

    again = launch()
    try:
        await wait_ready(port_base + 1, timeout=120)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_base + 1}") as promotion:
            found = await promotion.get("/v1/promotions/KEEP", headers=bearer(admin))
        assert found.status_code == 200
        assert found.json()["items"] == [{"sku": "SKU-K", "uplift_pct": 20.0}]
    finally:
        await stop(again)
    assert again.returncode == 0
