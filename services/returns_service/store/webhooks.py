"""Webhook endpoints, deliveries and the attempt log in the service's schema: every query of the webhook
machinery lives here.

Endpoints belong to the API key that created them (`created_by` = the key's name). Every endpoint query takes
an `owner`: a key's name confines it to that key's endpoints, `None` (an administrator) reaches them all."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    Row,
    Select,
    Text,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import TextClause

from services.returns_service import tables
from services.returns_service.domain.delivery import (
    AttemptResult,
    DeliveryPolicy,
    DeliveryStatus,
    EndpointHealth,
    EndpointStatus,
)
from shared.db import DriverStatement, driver_connection

E = tables.webhook_endpoints
D = tables.webhook_deliveries
T = tables.webhook_attempts

PENDING = DeliveryStatus.PENDING.value
ENABLED = EndpointStatus.ENABLED.value


@dataclass(frozen=True)
class Claim:
    """A leased delivery with what its attempt needs: the exact body, the endpoint's URL and secret, and the
    attempt count it was leased at (its result counts only if that is still current)."""

    delivery_id: int
    endpoint_id: str
    message_id: str
    body: str
    attempts: int
    url: str
    secret: str
    traceparent: str | None = None


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ---------------------------------------------------------------- endpoints


def _owned(query: Any, owner: str | None) -> Any:
    return query if owner is None else query.where(E.c.created_by == owner)


async def create_endpoint(
    session: AsyncSession, *, url: str, event_types: list[str], owner: str
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
                created_by=owner,
            )
            .returning(*E.c)
        )
    ).one()
    return row, secret


async def list_endpoints(session: AsyncSession, *, owner: str | None) -> list[Row[Any]]:
    query: Select[Any] = select(E).order_by(E.c.created_at, E.c.endpoint_id)
    return list((await session.execute(_owned(query, owner))).all())


async def get_endpoint(session: AsyncSession, endpoint_id: str, *, owner: str | None) -> Row[Any] | None:
    query: Select[Any] = select(E).where(E.c.endpoint_id == endpoint_id)
    return (await session.execute(_owned(query, owner))).first()


async def delete_endpoint(session: AsyncSession, endpoint_id: str, *, owner: str | None) -> bool:
    """Delete the endpoint with its deliveries and their attempt log."""
    query = _owned(E.delete().where(E.c.endpoint_id == endpoint_id), owner)
    return (await session.execute(query.returning(E.c.endpoint_id))).first() is not None


async def enable_endpoint(session: AsyncSession, endpoint_id: str, *, owner: str | None) -> Row[Any] | None:
    """Re-enable a disabled endpoint: its pending deliveries resume at once."""
    query: Update = _owned(update(E).where(E.c.endpoint_id == endpoint_id), owner)
    row = (
        await session.execute(
            query.values(
                status=ENABLED, consecutive_failures=0, failing_since=None, disabled_at=None, disabled_reason=None
            ).returning(*E.c)
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
    """Newest deliveries first, each with its attempt log (the caller has checked the endpoint's owner)."""
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


# ---------------------------------------------------------------- deliveries


def deliveries_of(change: str) -> str:
    """The webhook deliveries of one alert change, as the text of a data-modifying CTE written in the same
    statement as the change: one pending delivery per enabled endpoint subscribed to the change's webhook type.
    `change` names the CTE that wrote the change (returning its `change_id` and `alert_id`); the parameters are
    `DELIVERY_PARAMS`, valued by `delivery_values`."""
    return f"""
        INSERT INTO {D.fullname} (endpoint_id, message_id, alert_id, change_id, event_type, body, status, traceparent)
        SELECT e.endpoint_id, :message_id, {change}.alert_id, {change}.change_id, :webhook_type, :body, '{PENDING}',
               :traceparent
        FROM {E.fullname} e CROSS JOIN {change}
        WHERE e.status = '{ENABLED}' AND (cardinality(e.event_types) = 0 OR :webhook_type = ANY(e.event_types))
        """


DELIVERY_PARAMS = (
    bindparam("message_id", type_=Text),
    bindparam("webhook_type", type_=Text),
    bindparam("body", type_=Text),
    bindparam("traceparent", type_=Text),
)


def delivery_values(message: Mapping[str, Any], traceparent: str | None) -> dict[str, Any]:
    """The parameters of `deliveries_of`: `message` is the body, `{"type": "sales-alert.<alert type>", ...,
    "data": <alert>}`; `traceparent` is the trace context of the work that changed the alert, which every attempt
    continues."""
    return {
        # One message id per alert change, the same for every endpoint and every retry: the receiver's
        # idempotency key.
        "message_id": f"msg_{uuid.uuid4().hex}",
        "webhook_type": str(message["type"]),
        "body": json.dumps(message, separators=(",", ":")),
        "traceparent": traceparent,
    }


# Takes due deliveries fairly: each enabled endpoint offers its oldest due deliveries up to the lanes it has
# free (the lanes it earned, one while failing, minus its attempts in flight), and the free slots go first to
# the endpoints with the fewest attempts in flight (max-min share), so a backlog or a hanging receiver of one
# endpoint never fills the slots another endpoint needs. The taken rows
# are leased by moving `next_attempt_at` past the attempt's deadline: the attempt runs without holding a
# transaction open, and a dispatcher that dies mid-attempt leaves them due again once the lease lapses.
_CLAIM = text(
    f"""
    WITH busy AS (
        SELECT * FROM unnest(:endpoint_ids, :in_flight, :lanes) AS b(endpoint_id, in_flight, lanes)
    ), picked AS (
        SELECT d.delivery_id, d.share, d.next_attempt_at
        FROM {E.fullname} e
        LEFT JOIN busy b ON b.endpoint_id = e.endpoint_id
        CROSS JOIN LATERAL (
            SELECT y.delivery_id, y.next_attempt_at,
                   coalesce(b.in_flight, 0) + row_number() OVER (ORDER BY y.next_attempt_at, y.delivery_id) AS share
            FROM (
                SELECT x.delivery_id, x.next_attempt_at
                FROM {D.fullname} x
                WHERE x.endpoint_id = e.endpoint_id AND x.status = '{PENDING}' AND x.next_attempt_at <= now()
                ORDER BY x.next_attempt_at, x.delivery_id
                LIMIT greatest(0, least(
                    coalesce(b.lanes, 1),
                    CASE WHEN e.consecutive_failures > 0 THEN :failing_lanes ELSE :healthy_lanes END
                ) - coalesce(b.in_flight, 0))
                FOR UPDATE OF x SKIP LOCKED
            ) y
        ) d
        WHERE e.status = '{ENABLED}'
        ORDER BY d.share, d.next_attempt_at, d.delivery_id
        LIMIT :limit
    )
    UPDATE {D.fullname} w
    SET next_attempt_at = now() + :lease_s * interval '1 second'
    FROM picked, {E.fullname} ep
    WHERE w.delivery_id = picked.delivery_id AND ep.endpoint_id = w.endpoint_id
    RETURNING w.delivery_id, w.endpoint_id, w.message_id, w.body, w.attempts, ep.url, ep.secret, w.traceparent
    """
).bindparams(
    bindparam("endpoint_ids", type_=ARRAY(Text)),
    bindparam("in_flight", type_=ARRAY(Integer)),
    bindparam("lanes", type_=ARRAY(Integer)),
    bindparam("failing_lanes", type_=Integer),
    bindparam("healthy_lanes", type_=Integer),
    bindparam("limit", type_=Integer),
    bindparam("lease_s", type_=Float),
)


async def claim_due(
    engine: AsyncEngine,
    policy: DeliveryPolicy,
    *,
    limit: int,
    in_flight: Mapping[str, int],
    lanes: Mapping[str, int],
    lease_s: float,
) -> list[Claim]:
    """Lease up to `limit` due deliveries. `in_flight` counts this dispatcher's running attempts per endpoint,
    `lanes` the lanes each endpoint earned (one for an endpoint in neither)."""
    endpoint_ids = sorted(set(in_flight) | set(lanes))
    values = {
        "endpoint_ids": endpoint_ids,
        "in_flight": [in_flight.get(e, 0) for e in endpoint_ids],
        "lanes": [lanes.get(e, 1) for e in endpoint_ids],
        "failing_lanes": policy.lanes(consecutive_failures=1),
        "healthy_lanes": policy.lanes(consecutive_failures=0),
        "limit": limit,
        "lease_s": lease_s,
    }
    # One statement, a transaction of its own: run on the driver, without BEGIN and COMMIT round trips.
    async with driver_connection(engine) as conn:
        rows = await conn.fetch(_CLAIM_DRIVER.sql, *_CLAIM_DRIVER.arguments(values))
    return [Claim(**dict(row)) for row in rows]


_CLAIM_DRIVER = DriverStatement.of(_CLAIM)
_BACKLOG = DriverStatement.of(
    select(D.c.endpoint_id, func.count()).where(D.c.status == PENDING).group_by(D.c.endpoint_id)
)


async def backlog(engine: AsyncEngine) -> dict[str, int]:
    """Deliveries not yet delivered (due, leased or waiting for a retry), per endpoint that has any."""
    async with driver_connection(engine) as conn:
        rows = await conn.fetch(_BACKLOG.sql, *_BACKLOG.arguments({}))
    return {row[0]: row[1] for row in rows}


async def release(engine: AsyncEngine, claims: Sequence[Claim]) -> None:
    """Make leased deliveries whose attempt was abandoned (shutdown) due again at once, at the head of their
    endpoint's queue where they were taken from."""
    if not claims:
        return
    async with engine.begin() as conn:
        for claim in claims:
            await conn.execute(
                update(D)
                .where(D.c.delivery_id == claim.delivery_id, D.c.attempts == claim.attempts, D.c.status == PENDING)
                .values(next_attempt_at=func.least(D.c.created_at, func.now()))
            )


def _health(row: Row[Any]) -> EndpointHealth:
    return EndpointHealth(
        status=EndpointStatus(row.status),
        consecutive_failures=row.consecutive_failures,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
    )


# The attempts of one batch, counted and logged in one statement: each delivery moves on only if it is still at the
# attempt number it was claimed with (a delivery deleted meanwhile, or attempted again after its lease lapsed, is
# left as it is), and only those get their attempt logged. Returns the ids of the deliveries that counted.
# `locked` and `cleared`, for a batch of successes only: the endpoints of the batch that have a failure streak are
# locked first, then those whose attempts counted end it (what `DeliveryPolicy.endpoint_after` makes of a
# success), in the same statement; rows already clear are neither written nor locked.
#
# Endpoints are locked before deliveries, as everywhere else (deleting or enabling an endpoint, recording failures):
# otherwise this statement could hold a delivery while waiting for its endpoint, and a transaction holding the
# endpoint wait for that delivery. `made` yields no row before `locked` has run (its filter is evaluated once,
# before its first row), and the deliveries are only locked as rows of `made` reach their update.
def _record_attempts(locked: str = "", cleared: str = "") -> TextClause:
    return text(
        f"""
    WITH {locked}made AS (
        SELECT * FROM unnest(:delivery_ids, :claimed, :statuses, :retry_at, :ok, :status_codes, :errors, :durations)
            AS m(delivery_id, claimed, status, retry_at, ok, status_code, error, duration_ms)
        {"WHERE (SELECT count(*) FROM locked) >= 0" if locked else ""}
    ), counted AS (
        UPDATE {D.fullname} d
        SET status = m.status, attempts = m.claimed + 1, last_attempt_at = :now,
            next_attempt_at = coalesce(m.retry_at, d.next_attempt_at),
            delivered_at = CASE WHEN m.ok THEN :now ELSE d.delivered_at END
        FROM made m
        WHERE d.delivery_id = m.delivery_id AND d.attempts = m.claimed AND d.status = '{PENDING}'
        RETURNING d.delivery_id, d.endpoint_id
    ){cleared}
    INSERT INTO {T.fullname} (delivery_id, attempt, attempted_at, status_code, error, duration_ms)
    SELECT m.delivery_id, m.claimed + 1, :now, m.status_code, m.error, m.duration_ms
    FROM made m JOIN counted c ON c.delivery_id = m.delivery_id
    RETURNING delivery_id
    """
    ).bindparams(
        bindparam("delivery_ids", type_=ARRAY(BigInteger)),
        bindparam("claimed", type_=ARRAY(Integer)),
        bindparam("statuses", type_=ARRAY(Text)),
        bindparam("retry_at", type_=ARRAY(DateTime(timezone=True))),
        bindparam("ok", type_=ARRAY(Boolean)),
        bindparam("status_codes", type_=ARRAY(Integer)),
        bindparam("errors", type_=ARRAY(Text)),
        bindparam("durations", type_=ARRAY(Float)),
        bindparam("now", type_=DateTime(timezone=True)),
        *([bindparam("endpoint_ids", type_=ARRAY(Text))] if locked else []),
    )


_RECORD_ATTEMPTS = _record_attempts()
_RECORD_SUCCESSES = _record_attempts(
    locked=f"""locked AS (
        SELECT e.endpoint_id FROM {E.fullname} e
        WHERE e.endpoint_id = ANY(:endpoint_ids) AND (e.consecutive_failures <> 0 OR e.failing_since IS NOT NULL)
        ORDER BY e.endpoint_id
        FOR NO KEY UPDATE
    ), """,
    cleared=f"""
    , cleared AS (
        UPDATE {E.fullname} e SET consecutive_failures = 0, failing_since = NULL
        FROM locked l WHERE e.endpoint_id = l.endpoint_id AND l.endpoint_id IN (SELECT endpoint_id FROM counted)
    )""",
)

_RECORD_SUCCESSES_DRIVER = DriverStatement.of(_RECORD_SUCCESSES)


async def record_attempts(
    engine: AsyncEngine, policy: DeliveryPolicy, attempts: Sequence[tuple[Claim, AttemptResult]]
) -> int:
    """Log finished attempts and apply the policy to their deliveries and endpoints, in one transaction.

    An attempt counts only if its delivery is still at the attempt number it was claimed with: a delivery
    deleted meanwhile, or attempted again after its lease lapsed, is left as it is. Returns how many counted."""
    now = datetime.now(UTC)
    # One attempt per delivery and claim: a second result for the same claim (the lease lapsed and the delivery
    # was taken again) could not count after the first.
    made: dict[int, tuple[Claim, AttemptResult]] = {}
    for claim, result in attempts:
        made.setdefault(claim.delivery_id, (claim, result))
    rows = []
    for claim, result in made.values():
        outcome = policy.after_attempt(ok=result.ok, attempts=claim.attempts + 1, now=now)
        rows.append((claim, result, outcome))
    values = {
        "delivery_ids": [claim.delivery_id for claim, _, _ in rows],
        "claimed": [claim.attempts for claim, _, _ in rows],
        "statuses": [outcome.status.value for _, _, outcome in rows],
        "retry_at": [outcome.retry_at for _, _, outcome in rows],
        "ok": [attempt.ok for _, attempt, _ in rows],
        "status_codes": [attempt.status_code for _, attempt, _ in rows],
        "errors": [attempt.error for _, attempt, _ in rows],
        "durations": [attempt.duration_ms for _, attempt, _ in rows],
        "now": now,
    }
    if all(attempt.ok for _, attempt, _ in rows):
        # Successes only: whatever an endpoint's health was, it ends up with no failure streak, so the statement
        # that logs the attempts also clears the streaks, without reading the endpoints first.
        # One statement, a transaction of its own: run on the driver, without BEGIN and COMMIT round trips.
        endpoint_ids = sorted({claim.endpoint_id for claim, _, _ in rows})
        async with driver_connection(engine) as conn:
            recorded = await conn.fetch(
                _RECORD_SUCCESSES_DRIVER.sql,
                *_RECORD_SUCCESSES_DRIVER.arguments({**values, "endpoint_ids": endpoint_ids}),
            )
        return len(recorded)
    async with engine.begin() as conn:
        # NO KEY UPDATE: alert changes inserting deliveries (a key-share lock on their endpoint) never wait.
        endpoint_ids = sorted({claim.endpoint_id for claim, _ in made.values()})
        locked = await conn.execute(
            select(E).where(E.c.endpoint_id.in_(endpoint_ids)).order_by(E.c.endpoint_id).with_for_update(key_share=True)
        )
        before = {row.endpoint_id: _health(row) for row in locked}
        health = dict(before)
        recorded = await conn.execute(_RECORD_ATTEMPTS, values)
        counted = {row.delivery_id for row in recorded}
        for claim, attempt, _ in rows:
            if claim.delivery_id in counted and claim.endpoint_id in health:
                health[claim.endpoint_id] = policy.endpoint_after(
                    health[claim.endpoint_id], ok=attempt.ok, now=now, error=attempt.error
                )
        for endpoint_id, after in health.items():
            if after != before[endpoint_id]:
                await conn.execute(
                    update(E)
                    .where(E.c.endpoint_id == endpoint_id)
                    .values(
                        status=after.status.value,
                        consecutive_failures=after.consecutive_failures,
                        failing_since=after.failing_since,
                        disabled_at=after.disabled_at,
                        disabled_reason=after.disabled_reason,
                    )
                )
    return len(counted)
