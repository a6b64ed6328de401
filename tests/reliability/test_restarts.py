"""The whole system (`salesops up`) stopped right after a burst of promotions, by Ctrl-C (SIGINT to the process
group, as a terminal sends it) and by SIGKILL of the whole group, then started again on the same data dir: every
promotion that got its 201 reaches planning. The embedded broker keeps its log in memory, so this holds only
because the outboxes are published again to the broker that comes back empty."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from salesops.launcher import SERVICE_PORT_OFFSETS
from tests.reliability.harness import REPORT, scaled
from tests.support import bearer, eventually, free_port_base

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

STOPS = (signal.SIGINT, signal.SIGKILL)


class System:
    """`salesops up` as a subprocess leading its own process group, as a terminal would run it."""

    def __init__(self, tmp_path: Path) -> None:
        self.port_base = free_port_base()
        self.data_dir = tmp_path / "data"
        self.log = tmp_path / "up.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
        # A Ctrl-C stops the broker with everything else, so the services' drain can only wait for it: keep the
        # wait short (less is published before the stop, which only makes the case harder).
        self.env["SALESOPS_SHUTDOWN_GRACE_S"] = "3"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port_base + SERVICE_PORT_OFFSETS[service]}"

    def _spawn(self) -> None:
        command = ["salesops", "up", "--port-base", str(self.port_base), "--data-dir", str(self.data_dir)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    async def start(self) -> None:
        self._spawn()
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"salesops up exited ({self.process.returncode}); see {self.log}")
                for service in SERVICE_PORT_OFFSETS:
                    try:
                        if (await client.get(f"{self.url(service)}/readyz")).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
                return True

            await eventually(ready, timeout=180, interval=0.3, message=f"salesops up never got ready; see {self.log}")

    async def stop(self, sig: signal.Signals) -> None:
        """Signal the whole process group and wait until every process of it is gone."""
        assert self.process is not None
        group = self.process.pid
        os.killpg(group, sig)
        await asyncio.to_thread(self.process.wait, 60)

        async def group_gone() -> bool:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            return False

        await eventually(group_gone, timeout=60, interval=0.2, message=f"processes of the group outlived {sig.name}")

    def key(self) -> str:
        keys = json.loads((self.data_dir / "api-keys.json").read_text())["keys"]
        return str(next(k["key"] for k in keys if k["name"] == "admin"))

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(f"postgresql://postgres@/postgres?host={self.data_dir.resolve() / 'postgres'}")
        try:
            yield conn
        finally:
            await conn.close()


async def post_burst(system: System, prefix: str, count: int) -> list[str]:
    """Post `count` promotions at once (a few in flight at a time); returns the ids that got their 201."""
    headers = bearer(system.key())
    limit = asyncio.Semaphore(8)

    async def post(client: httpx.AsyncClient, index: int) -> str:
        promotion_id = f"{prefix}-{index:03d}"
        body = {
            "promotion_id": promotion_id,
            "name": f"burst {index}",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-07",
            "items": [{"sku": f"SKU-{index % 5}", "uplift_pct": 10 + index % 20}],
        }
        async with limit:
            response = await client.post("/v1/promotions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return promotion_id

    async with httpx.AsyncClient(base_url=system.url("promotion"), timeout=10.0) as client:
        return list(await asyncio.gather(*(post(client, i) for i in range(count))))


async def wait_planned(db: asyncpg.Connection, prefix: str, expected: int) -> set[str]:
    """The ids of the burst planning knows, once it knows them all or after a generous wait."""

    async def planned() -> set[str]:
        rows = await db.fetch("select promotion_id from planning.promotions where promotion_id like $1", f"{prefix}-%")
        return {r["promotion_id"] for r in rows}

    async def complete() -> bool:
        return len(await planned()) == expected

    with contextlib.suppress(AssertionError):
        await eventually(complete, timeout=90, interval=0.5)
    return await planned()


async def republished_total(system: System) -> float:
    async with httpx.AsyncClient(base_url=system.url("promotion"), timeout=5.0) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith('salesops_outbox_republished_total{service="promotion"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_stop_right_after_a_burst_loses_no_promotion(tmp_path: Path) -> None:
    system = System(tmp_path)
    burst = scaled(40, 150)
    rounds = scaled(1, 3)
    figures: dict[str, Any] = {}
    lost_total = 0
    await system.start()
    try:
        for round_index in range(rounds):
            for sig in STOPS:
                prefix = f"R{round_index}{sig.name[3:5]}"
                accepted = await post_burst(system, prefix, burst)
                stopped_at = time.monotonic()
                await system.stop(sig)
                REPORT.faults[f"salesops up {sig.name} to the whole group right after a burst"] += 1
                REPORT.messages_sent["http requests (restart after burst)"] += burst
                REPORT.accepted += len(accepted)
                await system.start()
                restart_s = time.monotonic() - stopped_at

                async with system.database() as db:
                    planned = await wait_planned(db, prefix, len(accepted))
                    stuck = await db.fetchval(
                        "select count(*) from promotion.outbox where published_at is null and parked_at is null"
                    )
                lost = sorted(set(accepted) - planned)
                lost_total += len(lost)
                REPORT.lost += len(lost)
                REPORT.stuck += int(stuck)
                figures[f"round {round_index + 1} {sig.name}"] = {
                    "accepted": len(accepted),
                    "lost": len(lost),
                    "stuck in outbox": int(stuck),
                    "republished after restart": await republished_total(system),
                    "stop to ready again (s)": round(restart_s, 1),
                }
                assert not lost, f"{len(lost)} promotions never reached planning after {sig.name}: {lost[:5]}"
                assert stuck == 0
    finally:
        REPORT.measurements["restart after burst"] = figures
        if system.process is not None and system.process.poll() is None:
            await system.stop(signal.SIGTERM)
    assert lost_total == 0
