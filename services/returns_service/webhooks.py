"""Webhooks per the Standard Webhooks spec: endpoint registration with an SSRF guard, deliveries
persisted with the alert change, and the dispatcher that signs, sends, retries and disables."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import random
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import Row, any_, case, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from standardwebhooks import Webhook

from services.returns_service import tables
from services.returns_service.settings import ReturnsSettings
from services.returns_service.stream import feed_of
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.webhooks")

E = tables.webhook_endpoints
D = tables.webhook_deliveries
T = tables.webhook_attempts

ENABLED = "enabled"
DISABLED = "disabled"
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

Resolver = Callable[[str, int], Awaitable[list[str]]]


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ---------------------------------------------------------------- SSRF guard


class TargetRefused(Exception):
    """A webhook URL the service will not call."""


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global  # shared address space (100.64/10), documentation ranges, ...
    )


async def check_target(url: str, *, allow_private: bool, resolve: Resolver = _resolve) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to any non-public address.
    Every resolved address is checked: one private record is enough for a rebinding attack."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise TargetRefused(f"the scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not accepted; authenticate with the signature")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused("the port is invalid") from exc
    if allow_private:
        return
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else await resolve(host, port)
    except OSError as exc:
        raise TargetRefused(f"the host {host!r} does not resolve") from exc
    if not addresses:
        raise TargetRefused(f"the host {host!r} does not resolve")
    for raw in addresses:
        if _forbidden(ipaddress.ip_address(raw.split("%", 1)[0])):
            raise TargetRefused(f"the host {host!r} resolves to a non-public address ({raw})")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- deliveries


def webhook_type(alert_type: str) -> str:
    return f"sales-alert.{alert_type}"


async def enqueue_deliveries(session: AsyncSession, *, alert: dict[str, Any], change_seq: int) -> int:
    """One pending delivery per enabled endpoint subscribed to this alert type (caller's transaction)."""
    event_type = webhook_type(alert["type"])
    body = json.dumps(
        {"type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": alert}, separators=(",", ":")
    )
    # One message id per alert change, the same for every endpoint and every retry: the receiver's
    # idempotency key.
    message_id = f"msg_{uuid.uuid4().hex}"
    subscribed = select(
        E.c.endpoint_id,
        literal(message_id),
        literal(alert["alert_id"]),
        literal(change_seq),
        literal(event_type),
        literal(body),
        literal(PENDING),
    ).where(
        E.c.status == ENABLED,
        or_(func.cardinality(E.c.event_types) == 0, any_(E.c.event_types) == event_type),
    )
    columns = ["endpoint_id", "message_id", "alert_id", "change_seq", "event_type", "body", "status"]
    result = await session.execute(insert(D).from_select(columns, subscribed))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def backoff_s(settings: ReturnsSettings, attempts: int) -> float:
    """Exponential in the attempts made so far, capped, with +/-20 % jitter so retries spread out."""
    base = min(settings.webhook_backoff_max_s, settings.webhook_backoff_initial_s * 2 ** (attempts - 1))
    return float(base * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def send(
    client: httpx.AsyncClient, row: Row[Any], settings: ReturnsSettings, *, resolve: Resolver = _resolve
) -> AttemptResult:
    """One signed attempt. The SSRF guard runs again here: DNS may have changed since registration."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    try:
        await check_target(row.url, allow_private=settings.webhook_allow_private_targets, resolve=resolve)
    except TargetRefused as exc:
        return AttemptResult(None, f"refused: {exc}", elapsed())
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "salesops-webhooks/1",
        "webhook-id": row.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(row.secret).sign(row.message_id, now, row.body),
    }
    try:
        response = await client.post(
            row.url, content=row.body.encode(), headers=headers, timeout=settings.webhook_timeout_s
        )
    except httpx.TimeoutException:
        return AttemptResult(None, f"timeout after {settings.webhook_timeout_s}s", elapsed())
    except httpx.HTTPError as exc:
        return AttemptResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return AttemptResult(response.status_code, error, elapsed())


async def dispatch_due(
    runtime: Runtime, settings: ReturnsSettings, client: httpx.AsyncClient, *, resolve: Resolver = _resolve
) -> int:
    """Send one batch of due deliveries; returns how many were attempted.

    The rows stay locked (FOR UPDATE SKIP LOCKED) while they are sent, so replicas never send the same
    delivery twice at once, and a crash releases them at once for the next dispatcher."""
    async with runtime.engine.connect() as conn, conn.begin():
        rows = (
            await conn.execute(
                select(D, E.c.url, E.c.secret)
                .join(E, E.c.endpoint_id == D.c.endpoint_id)
                .where(D.c.status == PENDING, D.c.next_attempt_at <= func.now(), E.c.status == ENABLED)
                .order_by(D.c.next_attempt_at, D.c.delivery_id)
                .limit(settings.webhook_batch_size)
                .with_for_update(of=D, skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        limit = asyncio.Semaphore(settings.webhook_concurrency)

        async def attempt(row: Row[Any]) -> AttemptResult:
            async with limit:
                return await send(client, row, settings, resolve=resolve)

        results = await asyncio.gather(*(attempt(row) for row in rows))
        for row, result in zip(rows, results, strict=True):
            await _record(conn, settings, row, result)
    return len(rows)


async def _record(conn: AsyncConnection, settings: ReturnsSettings, row: Row[Any], result: AttemptResult) -> None:
    now = datetime.now(UTC)
    number = row.attempts + 1
    await conn.execute(
        insert(T).values(
            delivery_id=row.delivery_id,
            attempt=number,
            attempted_at=now,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
    )
    if result.ok:
        await conn.execute(
            update(D)
            .where(D.c.delivery_id == row.delivery_id)
            .values(status=DELIVERED, attempts=number, last_attempt_at=now, delivered_at=now)
        )
        await conn.execute(
            update(E).where(E.c.endpoint_id == row.endpoint_id).values(consecutive_failures=0, failing_since=None)
        )
        return
    exhausted = number >= settings.webhook_max_attempts
    await conn.execute(
        update(D)
        .where(D.c.delivery_id == row.delivery_id)
        .values(
            status=FAILED if exhausted else PENDING,
            attempts=number,
            last_attempt_at=now,
            next_attempt_at=now + timedelta(seconds=backoff_s(settings, number)),
        )
    )
    # Disabled only when failures are both many and lasting, so a short outage never disables a CRM.
    failing_since = func.coalesce(E.c.failing_since, now)
    persistent = (E.c.consecutive_failures + 1 >= settings.webhook_disable_after_failures) & (
        failing_since <= now - timedelta(seconds=settings.webhook_disable_after_s)
    )
    await conn.execute(
        update(E)
        .where(E.c.endpoint_id == row.endpoint_id)
        .values(
            consecutive_failures=E.c.consecutive_failures + 1,
            failing_since=failing_since,
            status=case((persistent, DISABLED), else_=E.c.status),
            disabled_at=case((persistent, now), else_=E.c.disabled_at),
            disabled_reason=case(
                (persistent, f"disabled after persistent failure; last error: {result.error}"),
                else_=E.c.disabled_reason,
            ),
        )
    )


async def run_dispatcher(runtime: Runtime) -> None:
    """Background task: deliver due webhooks, woken by committed alert changes or the poll timer."""
    settings = runtime.settings
    assert isinstance(settings, ReturnsSettings)
    feed = feed_of(runtime)
    backoff = 0.5
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while True:
            try:
                sent = await dispatch_due(runtime, settings, client)
                backoff = 0.5
                if sent:
                    continue
                await feed.wait(settings.webhook_poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook dispatch failed; will retry", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


# ---------------------------------------------------------------- endpoint management


async def create_endpoint(
    session: AsyncSession, *, url: str, event_types: list[str], created_by: str
) -> tuple[Row[Any], str]:
    """Register an endpoint (the caller has checked the URL); returns the row and its secret."""
    secret = generate_secret()
    row = (
        await session.execute(
            insert(E)
            .values(
                endpoint_id=f"ep_{uuid.uuid4().hex}",
                url=url,
                event_types=sorted(set(event_types)),
                secret=secret,
                status=ENABLED,
                created_by=created_by,
            )
            .returning(*E.c)
        )
    ).one()
    return row, secret


async def list_endpoints(session: AsyncSession) -> list[Row[Any]]:
    return list((await session.execute(select(E).order_by(E.c.created_at, E.c.endpoint_id))).all())


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> Row[Any] | None:
    return (await session.execute(select(E).where(E.c.endpoint_id == endpoint_id))).first()


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> bool:
    """Delete the endpoint with its deliveries and their attempt log."""
    result = await session.execute(E.delete().where(E.c.endpoint_id == endpoint_id).returning(E.c.endpoint_id))
    return result.first() is not None


async def enable_endpoint(session: AsyncSession, endpoint_id: str) -> Row[Any] | None:
    """Re-enable a disabled endpoint: its pending deliveries resume at once."""
    row = (
        await session.execute(
            update(E)
            .where(E.c.endpoint_id == endpoint_id)
            .values(
                status=ENABLED,
                consecutive_failures=0,
                failing_since=None,
                disabled_at=None,
                disabled_reason=None,
            )
            .returning(*E.c)
        )
    ).first()
    if row is not None:
        await session.execute(
            update(D).where(D.c.endpoint_id == endpoint_id, D.c.status == PENDING).values(next_attempt_at=func.now())
        )
    return row


async def list_deliveries(
    session: AsyncSession, endpoint_id: str, *, status: str | None, limit: int, before: int | None
) -> list[tuple[Row[Any], list[Row[Any]]]]:
    """Newest deliveries first, each with its attempt log."""
    query = select(D).where(D.c.endpoint_id == endpoint_id).order_by(D.c.delivery_id.desc()).limit(limit)
    if status is not None:
        query = query.where(D.c.status == status)
    if before is not None:
        query = query.where(D.c.delivery_id < before)
    deliveries = (await session.execute(query)).all()
    if not deliveries:
        return []
    attempts = (
        await session.execute(
            select(T)
            .where(T.c.delivery_id.in_([d.delivery_id for d in deliveries]))
            .order_by(T.c.delivery_id, T.c.attempt)
        )
    ).all()
    by_delivery: dict[int, list[Row[Any]]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(a)
    return [(d, by_delivery.get(d.delivery_id, [])) for d in deliveries]
