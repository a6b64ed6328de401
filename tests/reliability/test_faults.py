"""Faults under a steady mixed load through the four services: every process SIGKILLed and SIGTERMed in
turn, PostgreSQL stopped and restarted, the broker stopped and restarted. Afterwards every accepted request is
reflected exactly once downstream, and no request ever got a 500."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from salesops.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from shared.events import ALL_TOPICS
from shared.settings import Settings
from tests.reliability.harness import (
    REPORT,
    SERVICES,
    Load,
    ServiceProcess,
    asyncpg_dsn,
    describe,
    live_system,
    record_ledger,
    scaled,
    service_env,
    service_processes,
    settle,
)
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# A graceful stop must finish well within the 8 s grace the services are given, plus process exit.
SIGTERM_EXIT_BOUND_S = 20.0


async def accepted_more(load: Load, count: int, *, timeout: float = 60.0, message: str = "") -> None:
    """Wait until the load got `count` more requests accepted."""
    target = load.ledger.total_accepted() + count

    async def reached() -> bool:
        return load.ledger.total_accepted() >= target

    await eventually(reached, timeout=timeout, interval=0.1, message=message or f"the load stalled below {target}")


async def answered_unavailable(load: Load, count: int, *, timeout: float = 60.0) -> None:
    """Wait until the load saw `count` more answers of an unavailable service (503, 500 or no connection)."""
    ledger = load.ledger

    def failures() -> int:
        return ledger.statuses[503] + ledger.statuses[500] + ledger.connection_errors

    target = failures() + count

    async def reached() -> bool:
        return failures() >= target

    await eventually(reached, timeout=timeout, interval=0.1, message="the outage was never noticed by a client")


async def restart(process: ServiceProcess) -> None:
    process.start()
    await process.wait_ready(timeout=90)


async def test_nothing_accepted_is_lost_through_kills_sigterms_and_a_database_outage(
    private_postgres: tuple[EmbeddedPostgres, str], api_keys: dict[str, Any], tmp_path: Path
) -> None:
    postgres, database_url = private_postgres
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log", topics=ALL_TOPICS, partitions=3)
    broker.start()
    run = f"F{uuid.uuid4().hex[:6].upper()}"
    step = scaled(15, 120)
    cycles = scaled(1, 3)
    drain_times: dict[str, float] = {}
    env = service_env(database_url, broker.bootstrap_servers, api_keys["path"])
    try:
        async with (
            service_processes(env, tmp_path) as processes,
            Load({n: p.url for n, p in processes.items()}, api_keys["admin"], run=run) as load,
        ):
            await accepted_more(load, step, message="the load never got going")
            for _cycle in range(cycles):
                for name in SERVICES:
                    processes[name].kill()
                    REPORT.faults[f"SIGKILL {name}"] += 1
                    await asyncio.sleep(0)  # let requests hit the dead port
                    await restart(processes[name])
                    await accepted_more(load, step, message=f"no progress after restarting {name}")
                for name in SERVICES:
                    drain_times[name] = round(await processes[name].terminate(), 2)
                    REPORT.faults[f"SIGTERM {name}"] += 1
                    assert processes[name].process is not None
                    assert processes[name].process.returncode in (0, -15), f"{name} exited badly on SIGTERM"
                    await restart(processes[name])
                    await accepted_more(load, step, message=f"no progress after the graceful restart of {name}")

                await asyncio.to_thread(postgres.stop, "fast")
                REPORT.faults["postgres stop+start"] += 1
                await answered_unavailable(load, 5)
                url_again = await asyncio.to_thread(postgres.start)
                assert url_again == database_url
                await accepted_more(load, step, timeout=120, message="no progress after PostgreSQL came back")
            await load.stop()

            conn = await _connect(database_url)
            try:
                result = await settle(conn, load.ledger, run, timeout=scaled(120, 300))
            finally:
                await conn.close()
    finally:
        broker.stop(grace_s=0.1)

    ledger = load.ledger
    record_ledger(ledger, result, scenario="faults")
    REPORT.measurements["SIGTERM drain seconds"] = drain_times
    assert not ledger.unexpected, ledger.unexpected[:5]
    assert ledger.statuses[500] == 0, f"the API answered 500 {ledger.statuses[500]} times where 503 was due"
    assert result.ok(), describe(result)
    assert all(t < SIGTERM_EXIT_BOUND_S for t in drain_times.values()), drain_times


async def _connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(database_url))


async def test_events_accepted_around_a_broker_restart_all_arrive(
    settings: Settings, broker: EmbeddedBroker, db: asyncpg.Connection, api_keys: dict[str, Any]
) -> None:
    run = f"B{uuid.uuid4().hex[:6].upper()}"
    step = scaled(20, 150)
    # As `salesops up` runs the embedded broker: it forgets everything it holds when it stops, in the middle of
    # the load here, and the outboxes are published to it again when it comes back.
    settings.relay_republish_on_new_broker = True
    async with live_system(settings) as urls, Load(urls, api_keys["admin"], run=run) as load:
        await accepted_more(load, step, message="the load never got going")
        broker.stop(grace_s=0.1)
        REPORT.faults["broker stop+start (comes back empty)"] += 1
        await accepted_more(load, step, message="the API stopped accepting while only the broker was down")
        broker.start()
        await accepted_more(load, 2 * step, message="no progress after the broker came back")
        await load.stop()
        result = await settle(db, load.ledger, run, timeout=scaled(30, 120))
    record_ledger(load.ledger, result, scenario="broker restart")
    assert load.ledger.statuses[500] == 0
    assert result.ok(), describe(result)
