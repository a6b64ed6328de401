"""Two replicas of every service on one database and broker (4 partitions per topic), as the Kubernetes base runs
them, under a mixed load through both: one replica of each service SIGKILLed and restarted in turn, so every
consumer group loses a member and takes it back (two rebalances each). Afterwards every accepted request is
reflected exactly once downstream; every webhook reached each endpoint once; two SSE clients, each starting on
its own replica and resuming with `Last-Event-ID` on the other whenever its connection ends, saw every alert change
once and in order; each SKU's plan versions go 1, 2, 3 ... with no event applied twice; and both replicas of every
service consumed."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from salesops.infra import EmbeddedBroker, free_port
from services.returns_service.webhooks.dispatcher import LEASE_MARGIN_S
from shared.events import ALL_TOPICS
from tests.reliability.harness import (
    ALL_KINDS,
    REPORT,
    SERVICES,
    Load,
    describe,
    record_ledger,
    scaled,
    settle,
)
from tests.reliability.replica_support import (
    PARTITIONS,
    REPLICAS,
    WEBHOOK_TIMEOUT_S,
    StreamFollower,
    accepted_more,
    alert_revision_problems,
    check_plans,
    consumed_since_start,
    events_on_broker,
    in_flight_deliveries,
    lease_ends,
    receivers,
    replica_env,
    replica_processes,
    settled_webhooks,
    urls_of,
)
from tests.support import bearer, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Returns first: a webhook it had in flight when killed waits out its lease meanwhile.
KILL_ORDER = ("returns", "promotion", "fulfillment", "planning")
LEASE_S = WEBHOOK_TIMEOUT_S + LEASE_MARGIN_S


def item(sku: str) -> dict[str, Any]:
    """A capacity a promotion's uplift overruns, so conflicts are raised, revised and resolved as promotions come."""
    return {
        "name": f"item {sku}",
        "on_hand": 0,
        "safety_stock": 0,
        "weekly_capacity": 110,
        "baseline_weekly_demand": 100,
    }


async def put_items(client: httpx.AsyncClient, urls: list[str], key: str, skus: list[str]) -> None:
    for index, sku in enumerate(skus):
        answer = await client.put(f"{urls[index % len(urls)]}/v1/items/{sku}", json=item(sku), headers=bearer(key))
        assert answer.status_code == 201, answer.text


async def all_numbered(db: asyncpg.Connection) -> bool:
    """Every committed alert change has its stream number (they are numbered just after their commit)."""
    return not await db.fetchval("select count(*) from returns.alert_changes where seq is null")


async def register(client: httpx.AsyncClient, base: str, key: str, url: str) -> str:
    answer = await client.post(f"{base}/v1/webhooks", json={"url": url}, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_two_replicas_of_every_service_lose_nothing_and_do_nothing_twice_through_kills_and_rebalances(
    database_url: str, db: asyncpg.Connection, api_keys: dict[str, Any], tmp_path: Path
) -> None:
    started = time.monotonic()
    run = f"X{uuid.uuid4().hex[:6].upper()}"
    step = scaled(12, 100)
    cycles = scaled(1, 2)
    admin = api_keys["admin"]
    skus = [f"{run}-PS-{i}" for i in range(13)] + [f"{run}-RS-{i}" for i in range(11)]
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log", topics=ALL_TOPICS, partitions=PARTITIONS)
    await asyncio.to_thread(broker.start)
    env = replica_env(database_url, broker.bootstrap_servers, api_keys["path"], sse_max_connection_s=scaled(6, 10))
    killed: list[str] = []
    seconds: dict[str, float] = {}

    def lap(phase: str) -> None:
        seconds[phase] = round(time.monotonic() - started - sum(seconds.values()), 1)

    in_flight_at_kill: set[tuple[str, str]] = set()
    lease_wait = 0.0
    followers: list[StreamFollower] = []
    try:
        async with (
            replica_processes(env, tmp_path) as replicas,
            receivers(2) as crms,
            httpx.AsyncClient(timeout=10.0) as client,
        ):
            lap("eight processes ready")
            urls = urls_of(replicas)
            await put_items(client, urls["planning"], admin, skus)
            endpoints = {
                await register(client, urls["returns"][i % REPLICAS], admin, url): receiver
                for i, (url, receiver) in enumerate(crms)
            }
            followers = [
                StreamFollower(f"stream starting on returns-{k + 1}", urls["returns"][k:] + urls["returns"][:k], admin)
                for k in range(REPLICAS)
            ]
            streams = [asyncio.create_task(f.run()) for f in followers]
            try:
                async with Load(urls, admin, run=run, kinds=ALL_KINDS) as load:
                    await accepted_more(load, step, message="the load never got going")
                    lap("items, endpoints, streams and the load going")
                    for cycle in range(cycles):
                        for position, service in enumerate(KILL_ORDER):
                            victim = replicas[service][(cycle + position) % REPLICAS]
                            killed_at = await db.fetchval("select now()")
                            victim.kill()
                            if service == "returns":
                                leased = await in_flight_deliveries(db, killed_at, LEASE_S)
                                in_flight_at_kill |= leased
                                lease_wait = max(lease_wait, await lease_ends(db, leased))
                            killed.append(victim.name)
                            REPORT.faults[f"SIGKILL one of {REPLICAS} {service} replicas"] += 1
                            await accepted_more(load, step, message=f"no progress with {victim.name} dead")
                            victim.start()
                            await victim.wait_ready(timeout=90)
                            await accepted_more(load, step, message=f"no progress after restarting {victim.name}")

                    # Every replica rejoined its group and was given partitions: it consumed since its restart.
                    async def all_consumed() -> dict[str, float] | None:
                        counts = {p.name: await consumed_since_start(client, p) for ps in replicas.values() for p in ps}
                        return counts if all(counts.values()) else None

                    lap("kills and restarts")
                    consumed: dict[str, float] = await eventually(
                        all_consumed, timeout=60, interval=0.5, message="a replica consumed nothing since it started"
                    )
                    await load.stop()
                    result = await settle(db, load.ledger, run, timeout=scaled(90, 240))
                    lap("load stopped, everything reflected")

                webhooks = await settled_webhooks(db, endpoints, in_flight_at_kill, timeout=lease_wait + scaled(30, 60))
                await eventually(
                    lambda: all_numbered(db), timeout=30, interval=0.2, message="alert changes left unnumbered"
                )
                committed = [r["seq"] for r in await db.fetch("select seq from returns.alert_changes order by seq")]
                for follower in followers:
                    follower.goal = committed[-1] if committed else 0
                await asyncio.wait_for(asyncio.gather(*streams), timeout=60)
                lap("webhooks delivered, streams caught up")
            finally:
                for task in streams:
                    task.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
            plans = await check_plans(client, urls["planning"], admin, skus)
            alert_problems = await alert_revision_problems(db)
        lap("plans checked, processes stopped")
        on_broker = await events_on_broker(broker.bootstrap_servers)
        lap("broker read")
    finally:
        broker.stop(grace_s=0.1)

    ledger = load.ledger
    record_ledger(ledger, result, scenario="replicas")
    streams_seen = {f.name: f.compare(committed) for f in followers}
    REPORT.measurements[f"replicas ({REPLICAS} of every service, {PARTITIONS} partitions per topic)"] = {
        "SIGKILLed and restarted": killed,
        "accepted requests": ledger.total_accepted(),
        "accepted by kind": {kind: len(ids) for kind, ids in ledger.accepted.items()},
        "lost": result.lost,
        "applied twice": result.duplicated,
        "events consumed per replica since its last start": consumed,
        "broker": on_broker,
        "alert stream": streams_seen,
        "webhooks": webhooks,
        "webhooks in flight at the returns kill": len(in_flight_at_kill),
        "plans": plans,
        "alert revisions out of order": len(alert_problems),
        "seconds": seconds,
    }

    assert not ledger.unexpected, ledger.unexpected[:5]
    assert ledger.statuses[500] == 0, f"the API answered 500 {ledger.statuses[500]} times"
    assert result.ok(), describe(result)
    assert all(consumed.values()), consumed
    assert on_broker["dead letters"] == 0, on_broker
    assert not webhooks["problems"], webhooks["problems"]
    assert committed, "the load raised no alert: nothing for the streams and webhooks to carry"
    for name, seen in streams_seen.items():
        assert (seen["missed"], seen["twice"], seen["unknown"], seen["out of order"]) == (0, 0, 0, 0), (name, seen)
        assert seen["resumed on the other replica"] >= 1, (name, seen)
        assert len(seen["connections"]) == REPLICAS, (name, seen)
    assert not plans["problems"], plans["problems"][:5]
    assert plans["highest version"] > 1, plans
    assert not alert_problems, alert_problems[:5]
    assert set(SERVICES) == {name.rsplit("-", 1)[0] for name in killed}
