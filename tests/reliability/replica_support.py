"""What the replica scenario watches: every service run twice on one database and broker, alert streams that
resume on the other replica, webhook receivers that count each delivery, plan histories, and the events on the
broker themselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from salesops.infra import free_port
from shared.events import ALL_TOPICS
from tests.reliability.harness import SERVICES, Load, ServiceProcess, service_env
from tests.support import bearer, eventually
from tests.webhook_support import Receiver, serving

REPLICAS = 2
PARTITIONS = 4
WEBHOOK_TIMEOUT_S = 5.0  # the service's default


def replica_env(database_url: str, bootstrap: str, keys_file: Path, *, sse_max_connection_s: float) -> dict[str, str]:
    return service_env(
        database_url,
        bootstrap,
        keys_file,
        SALESOPS_TOPIC_PARTITIONS=str(PARTITIONS),
        # Eight processes share the test's PostgreSQL with the rest of the session.
        SALESOPS_DB_MAX_OVERFLOW="2",
        SALESOPS_WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        SALESOPS_WEBHOOK_TIMEOUT_S=str(WEBHOOK_TIMEOUT_S),
        SALESOPS_WEBHOOK_POLL_INTERVAL_S="0.2",
        SALESOPS_WEBHOOK_BACKOFF_INITIAL_S="0.2",
        SALESOPS_WEBHOOK_BACKOFF_MAX_S="1",
        SALESOPS_SSE_POLL_INTERVAL_S="0.5",
        SALESOPS_SSE_HEARTBEAT_S="1",
        # Short connections: every stream is cut and resumed on the other replica many times.
        SALESOPS_SSE_MAX_CONNECTION_S=str(sse_max_connection_s),
    )


# ---------------------------------------------------------------- the processes


Replicas = dict[str, list[ServiceProcess]]


def urls_of(replicas: Replicas) -> dict[str, list[str]]:
    return {service: [p.url for p in processes] for service, processes in replicas.items()}


@contextlib.asynccontextmanager
async def replica_processes(env: dict[str, str], logs: Path) -> AsyncIterator[Replicas]:
    """`REPLICAS` processes of every service, all ready; stopped together (SIGTERM, then SIGKILL) at the end."""
    replicas = {
        service: [
            ServiceProcess(f"{service}-{k}", free_port(), logs / f"{service}-{k}.log", env, service=service)
            for k in range(1, REPLICAS + 1)
        ]
        for service in SERVICES
    }
    everyone = [p for processes in replicas.values() for p in processes]
    try:
        for process in everyone:
            process.start()
        await asyncio.gather(*(p.wait_ready(timeout=120) for p in everyone))
        yield replicas
    finally:
        running = [p.process for p in everyone if p.process is not None and p.process.poll() is None]
        for popen in running:
            popen.send_signal(signal.SIGTERM)
        for popen in running:
            try:
                await asyncio.to_thread(popen.wait, 30)
            except subprocess.TimeoutExpired:
                popen.kill()
                await asyncio.to_thread(popen.wait)


async def accepted_more(load: Load, count: int, *, timeout: float = 60.0, message: str = "") -> None:
    target = load.ledger.total_accepted() + count

    async def reached() -> bool:
        return load.ledger.total_accepted() >= target

    await eventually(reached, timeout=timeout, interval=0.1, message=message or f"the load stalled below {target}")


async def consumed_since_start(client: httpx.AsyncClient, process: ServiceProcess) -> float:
    """Events this process's consumers finished with since it last started (any outcome): it had partitions."""
    text = (await client.get(f"{process.url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("salesops_events_consumed_total{")
    )


# ---------------------------------------------------------------- alert streams


@dataclass
class StreamFollower:
    """An SSE client of the alert stream that, whenever its connection ends (the stream's own time limit, or its
    replica killed), resumes with `Last-Event-ID` on the next replica."""

    name: str
    urls: list[str]
    key: str
    cursor: int = 0
    goal: int | None = None
    received: list[int] = field(default_factory=list)
    revisions: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    connections: Counter[str] = field(default_factory=Counter)
    resumed_elsewhere: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    broken: int = 0

    def done(self) -> bool:
        return self.goal is not None and self.cursor >= self.goal

    async def run(self) -> None:
        replica = 0
        previous: int | None = None
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
            while not self.done():
                headers = {**bearer(self.key), "Last-Event-ID": str(self.cursor)}
                try:
                    async with client.stream("GET", f"{self.urls[replica]}/v1/alerts/stream", headers=headers) as r:
                        if r.status_code != 200:
                            self.refused[r.status_code] += 1
                        else:
                            self.connections[f"replica {replica + 1}"] += 1
                            if self.cursor > 0 and previous is not None and previous != replica:
                                self.resumed_elsewhere += 1
                            previous = replica
                            await self._read(r)
                except httpx.HTTPError:
                    self.broken += 1
                replica = (replica + 1) % len(self.urls)
                if not self.done():
                    await asyncio.sleep(0.05)

    async def _read(self, response: httpx.Response) -> None:
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in event:
                    self._take(event)
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
            if self.done():
                return

    def _take(self, event: dict[str, str]) -> None:
        seq = int(event["id"])
        self.received.append(seq)
        self.cursor = max(self.cursor, seq)
        alert = json.loads(event["data"])["data"]
        self.revisions[alert["id"]].append(int(alert["revision"]))

    def compare(self, committed: list[int]) -> dict[str, Any]:
        seen = Counter(self.received)
        return {
            "received": len(self.received),
            "missed": len(set(committed) - set(seen)),
            "twice": sum(1 for n in seen.values() if n > 1),
            "unknown": len(set(seen) - set(committed)),
            "out of order": sum(1 for a, b in zip(self.received, self.received[1:], strict=False) if b <= a),
            "connections": dict(self.connections),
            "resumed on the other replica": self.resumed_elsewhere,
            "broken connections": self.broken,
            "refused": dict(self.refused),
        }


# ---------------------------------------------------------------- webhooks


class TimedReceiver(Receiver):
    """A receiver that also notes when each request arrived (as `received-at`, epoch seconds)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        before = len(self.requests)
        await super().__call__(scope, receive, send)
        if len(self.requests) > before:
            self.requests[before]["received-at"] = f"{time.time():.3f}"


@contextlib.asynccontextmanager
async def receivers(count: int) -> AsyncIterator[list[tuple[str, Receiver]]]:
    """`count` CRM stand-ins on loopback: (URL, receiver) each."""
    async with contextlib.AsyncExitStack() as stack:
        found: list[tuple[str, Receiver]] = []
        for _ in range(count):
            port = free_port()
            receiver = TimedReceiver()
            await stack.enter_async_context(serving(receiver, "127.0.0.1", port))
            found.append((f"http://127.0.0.1:{port}/hooks", receiver))
        yield found


async def in_flight_deliveries(db: asyncpg.Connection, killed_at: datetime, lease_s: float) -> set[tuple[str, str]]:
    """(endpoint, message id) of the deliveries leased before `killed_at` and not recorded since: those the killed
    dispatcher may have sent without recording it, so that they are sent again once their lease lapses. A lease
    taken later (by a live dispatcher) ends after `killed_at` + `lease_s` and is not one of them."""
    rows = await db.fetch(
        "select endpoint_id, message_id from returns.webhook_deliveries where status = 'pending'"
        " and next_attempt_at > now() and next_attempt_at <= $1::timestamptz + make_interval(secs => $2::float8)",
        killed_at,
        lease_s,
    )
    return {(r["endpoint_id"], r["message_id"]) for r in rows}


async def lease_ends(db: asyncpg.Connection, leased: set[tuple[str, str]]) -> float:
    """Seconds until the last of `leased` is due again (0 when none is)."""
    if not leased:
        return 0.0
    wait = await db.fetchval(
        "select extract(epoch from max(next_attempt_at) - now()) from returns.webhook_deliveries"
        " where message_id = any($1::text[])",
        [message for _, message in leased],
    )
    return max(0.0, float(wait or 0))


async def webhooks_delivered(db: asyncpg.Connection, endpoints: dict[str, Receiver], *, timeout: float) -> None:
    """Wait until every delivery is delivered and every receiver holds what its endpoint was sent."""

    async def done() -> bool:
        if await db.fetchval("select count(*) from returns.webhook_deliveries where status <> 'delivered'"):
            return False
        for endpoint_id, receiver in endpoints.items():
            sent = {
                r["message_id"]
                for r in await db.fetch(
                    "select message_id from returns.webhook_deliveries where endpoint_id = $1", endpoint_id
                )
            }
            if not sent <= {h.get("webhook-id") for h in receiver.requests}:
                return False
        return True

    with contextlib.suppress(AssertionError):
        await eventually(done, timeout=timeout, interval=0.3)


async def settled_webhooks(
    db: asyncpg.Connection, endpoints: dict[str, Receiver], allowed_twice: set[tuple[str, str]], *, timeout: float
) -> dict[str, Any]:
    """`tally_webhooks` once every delivery is made and no alert change came meanwhile. Alert changes can still come
    after the load stopped (a planning replica that lags announces capacity conflicts late): a tally taken as one
    arrives finds its deliveries pending, so it is taken again until the count of changes holds still around it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        before = await db.fetchval("select count(*) from returns.alert_changes")
        await webhooks_delivered(db, endpoints, timeout=max(1.0, deadline - loop.time()))
        figures = await tally_webhooks(db, endpoints, allowed_twice)
        after = await db.fetchval("select count(*) from returns.alert_changes")
        if (before == after == figures["alert changes"]) or loop.time() >= deadline:
            return figures
        await asyncio.sleep(1.0)


async def tally_webhooks(
    db: asyncpg.Connection, endpoints: dict[str, Receiver], allowed_twice: set[tuple[str, str]]
) -> dict[str, Any]:
    """Per endpoint: one delivery per alert change, each received once. Twice only as the delivery policy says:
    after an attempt recorded as failed (the receiver got it, but too late for the attempt's deadline), or when a
    killed dispatcher had it in flight; never because two dispatchers held it at once."""
    changes = {r["change_id"] for r in await db.fetch("select change_id from returns.alert_changes")}
    figures: dict[str, Any] = {"alert changes": len(changes)}
    problems: list[str] = []
    for number, (endpoint_id, receiver) in enumerate(endpoints.items(), 1):
        rows = await db.fetch(
            "select d.change_id, d.message_id, d.status, count(a.attempt_id) as attempts,"
            " coalesce(array_agg(array[a.attempt::text, a.attempted_at::text, coalesce(a.status_code::text, '-'),"
            " coalesce(a.error, '-')] order by a.attempt) filter (where a.attempt_id is not null), '{}') as log"
            " from returns.webhook_deliveries d left join returns.webhook_attempts a using (delivery_id)"
            " where d.endpoint_id = $1 group by d.delivery_id",
            endpoint_id,
        )
        per_change = Counter(r["change_id"] for r in rows)
        got = Counter(h.get("webhook-id", "") for h in receiver.requests)
        sent = {r["message_id"] for r in rows}
        twice = {m for m, n in got.items() if n > 1}
        log = {r["message_id"]: [list(a) for a in r["log"]] for r in rows}
        retried = {m for m in twice if any(a[2] == "-" or not a[2].startswith("2") for a in log.get(m, []))}
        killed = {m for m in twice if (endpoint_id, m) in allowed_twice}
        unexplained = twice - retried - killed
        arrivals: defaultdict[str, list[str]] = defaultdict(list)
        for h in receiver.requests:
            arrivals[h.get("webhook-id", "")].append(h.get("received-at", "?"))
        endpoint = {
            "deliveries": len(rows),
            "received": sum(got.values()),
            "changes without a delivery": len(changes - set(per_change)),
            "changes with two deliveries": sum(1 for n in per_change.values() if n > 1),
            "not delivered": sum(1 for r in rows if r["status"] != "delivered"),
            "never received": len(sent - set(got)),
            "received twice": len(twice),
            "received twice after a failed attempt": len(retried),
            "received twice, in flight at a kill": len(killed),
            "received twice otherwise": len(unexplained),
            "attempts beyond the first": sum(r["attempts"] - 1 for r in rows if r["attempts"] > 1),
        }
        figures[f"endpoint {number}"] = endpoint
        for what in (
            "changes without a delivery",
            "changes with two deliveries",
            "not delivered",
            "never received",
            "received twice otherwise",
        ):
            if endpoint[what]:
                problems.append(f"endpoint {number} ({endpoint_id}): {what}: {endpoint[what]}")
        for message in sorted(twice)[:5]:
            endpoint.setdefault("twice", []).append(
                {"webhook-id": message, "attempts": log.get(message), "received at": arrivals[message]}
            )
    figures["problems"] = problems
    return figures


# ---------------------------------------------------------------- plans and alerts


async def check_plans(client: httpx.AsyncClient, urls: list[str], key: str, skus: list[str]) -> dict[str, Any]:
    """Every SKU's plan history read from the planning replicas in turn: versions 1, 2, 3 ... without a gap or a
    repeat, the current plan at the newest, and no event driving two revisions of one SKU."""
    headers = bearer(key)
    revisions = 0
    highest = 0
    problems: list[str] = []
    for index, sku in enumerate(skus):
        base = urls[index % len(urls)]
        history = await client.get(f"{base}/v1/mps/{sku}/history", params={"limit": 500}, headers=headers)
        current = await client.get(f"{base}/v1/mps/{sku}", headers=headers)
        if history.status_code != 200 or current.status_code != 200:
            problems.append(f"{sku}: history {history.status_code}, plan {current.status_code}")
            continue
        versions = [r["plan_version"] for r in reversed(history.json()["data"])]
        revisions += len(versions)
        highest = max(highest, *versions, 0)
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{sku}: versions {versions[:20]} are not 1, 2, 3 ...")
        if len(versions) == 500:
            problems.append(f"{sku}: more than 500 revisions; the check saw only the newest")
        if versions and current.json()["plan_version"] != versions[-1]:
            problems.append(f"{sku}: the plan is at {current.json()['plan_version']}, its history at {versions[-1]}")
        drivers = Counter(d["event_id"] for r in history.json()["data"] for d in r["drivers"])
        doubled = [event for event, n in drivers.items() if n > 1]
        if doubled:
            problems.append(f"{sku}: events driving two revisions: {doubled[:3]}")
    return {"SKUs": len(skus), "revisions": revisions, "highest version": highest, "problems": problems}


async def alert_revision_problems(db: asyncpg.Connection) -> list[str]:
    """Each alert's changes, in the order of the change log, are revisions 1, 2, 3 ... (every change numbered)."""
    rows = await db.fetch(
        "select alert_id, array_agg(revision order by seq) as revisions from returns.alert_changes group by alert_id"
    )
    unnumbered = await db.fetchval("select count(*) from returns.alert_changes where seq is null")
    return [f"{unnumbered} changes never numbered"] * bool(unnumbered) + [
        f"{r['alert_id']}: {list(r['revisions'])[:10]}"
        for r in rows
        if list(r["revisions"]) != list(range(1, len(r["revisions"]) + 1))
    ]


# ---------------------------------------------------------------- the broker


async def events_on_broker(bootstrap: str, *, timeout: float = 60.0) -> dict[str, int]:
    """Every contract topic and dead-letter topic read from the beginning (no group): how many events, how many
    event ids more than once (an outbox row published again, absorbed by the inboxes), how many dead letters."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(t, p) for t in ALL_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: Counter[str] = Counter()
        dead = 0
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError("the topics could not be read to their end")
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if tp.topic.endswith(".dlq"):
                        dead += 1
                    else:
                        ids[json.loads(record.value or b"{}").get("id", "")] += 1
    finally:
        await consumer.stop()
    return {
        "events": sum(ids.values()),
        "event ids on the broker more than once": sum(1 for n in ids.values() if n > 1),
        "dead letters": dead,
    }
