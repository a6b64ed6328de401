"""The webhook store against the real PostgreSQL: the deliveries every alert change queues, fair leasing of due
deliveries across endpoints, leases that lapse and are handed back, attempts recorded once with the delivery policy
applied, and two replicas that deliver each message once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from salesops.infra import free_port
from services.returns_service import tables
from services.returns_service.app import build_app
from services.returns_service.domain import AlertContent, AlertType, Priority
from services.returns_service.domain.delivery import AttemptResult, DeliveryPolicy, EndpointStatus
from services.returns_service.store import AlertRecord, NewChange, SqlStore
from services.returns_service.store import webhooks as store
from shared.settings import Settings
from tests.support import bearer, eventually, running
from tests.webhook_support import Receiver, critical, hanging_endpoint, register, serving, settings_for

POLICY = DeliveryPolicy(
    backoff_initial_s=30,
    backoff_max_s=60,
    max_attempts=3,
    disable_after_failures=2,
    disable_after_s=0,
    endpoint_concurrency=16,
)
LEASE_S = 60.0
OK = AttemptResult(200, None, 1.0)
DOWN = AttemptResult(503, "HTTP 503", 1.0)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def endpoint_with(engine: AsyncEngine, due: int, owner: str = "crm") -> str:
    async with AsyncSession(engine) as session:
        row, _ = await store.create_endpoint(session, url="http://127.0.0.1:9/h", event_types=[], owner=owner)
        for n in range(due):
            await session.execute(
                insert(tables.webhook_deliveries).values(
                    endpoint_id=row.endpoint_id,
                    message_id=f"msg_{row.endpoint_id}_{n}",
                    alert_id="alrt_1",
                    change_id=n + 1,
                    event_type="sales-alert.critical-complaint",
                    body="{}",
                    status="pending",
                )
            )
        await session.commit()
    return str(row.endpoint_id)


async def claim(engine: AsyncEngine, limit: int = 50, **kwargs: Any) -> list[Any]:
    values: dict[str, Any] = {"in_flight": {}, "lanes": {}, "lease_s": LEASE_S, **kwargs}
    return await store.claim_due(engine, POLICY, limit=limit, **values)


def per_endpoint(rows: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.endpoint_id] = counts.get(row.endpoint_id, 0) + 1
    return counts


async def test_a_backlog_never_takes_the_slots_of_another_endpoint(engine: AsyncEngine) -> None:
    backlog, quiet = await endpoint_with(engine, 50), await endpoint_with(engine, 1)
    # Without earned lanes, each endpoint offers one delivery.
    assert per_endpoint(await claim(engine, limit=5)) == {backlog: 1, quiet: 1}


async def test_free_slots_go_first_to_the_endpoints_with_fewest_in_flight(engine: AsyncEngine) -> None:
    backlog, quiet = await endpoint_with(engine, 50), await endpoint_with(engine, 2)
    rows = await claim(engine, limit=5, lanes={backlog: 16, quiet: 16}, in_flight={backlog: 3})
    assert per_endpoint(rows) == {quiet: 2, backlog: 3}
    again = await claim(engine, limit=50, lanes={backlog: 16}, in_flight={backlog: 16})
    assert again == []  # the backlog's lanes are all in flight; the quiet endpoint has nothing left due


async def test_a_failing_endpoint_gets_one_lane_whatever_it_earned(engine: AsyncEngine) -> None:
    failing = await endpoint_with(engine, 10)
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.endpoint_id == failing)
            .values(consecutive_failures=3)
        )
    assert len(await claim(engine, lanes={failing: 16})) == 1


async def test_a_lease_lapses_and_a_stale_result_is_not_recorded(engine: AsyncEngine) -> None:
    endpoint = await endpoint_with(engine, 1)
    [first] = await claim(engine, lease_s=0.3)
    assert await claim(engine) == []  # leased

    async def due_again() -> list[Any]:
        return await claim(engine)

    [second] = await eventually(due_again, timeout=10, message="the lapsed lease made the delivery due")
    assert second.delivery_id == first.delivery_id
    assert await store.record_attempts(engine, POLICY, [(second, OK)]) == 1
    assert await store.record_attempts(engine, POLICY, [(first, DOWN)]) == 0  # attempted again meanwhile
    async with engine.connect() as conn:
        delivery = (await conn.execute(select(tables.webhook_deliveries))).one()
        attempts = (await conn.execute(select(tables.webhook_attempts))).all()
    assert (delivery.status, delivery.attempts, len(attempts)) == ("delivered", 1, 1)
    assert endpoint == delivery.endpoint_id


async def test_the_backlog_counts_what_is_not_yet_delivered_per_endpoint(engine: AsyncEngine) -> None:
    busy, quiet = await endpoint_with(engine, 3), await endpoint_with(engine, 1)
    await endpoint_with(engine, 0)
    assert await store.backlog(engine) == {busy: 3, quiet: 1}
    [row] = [r for r in await claim(engine, lanes={busy: 16, quiet: 16}) if r.endpoint_id == quiet]
    assert await store.record_attempts(engine, POLICY, [(row, OK)]) == 1
    assert await store.backlog(engine) == {busy: 3}


async def test_released_deliveries_are_due_at_once(engine: AsyncEngine) -> None:
    await endpoint_with(engine, 2)
    rows = await claim(engine, lanes={})
    await store.release(engine, rows)
    assert [r.delivery_id for r in await claim(engine)] == [r.delivery_id for r in rows]


async def test_results_apply_the_policy_to_delivery_and_endpoint(engine: AsyncEngine) -> None:
    endpoint = await endpoint_with(engine, 3)
    rows = await claim(engine, lanes={endpoint: 16})
    assert len(rows) == 3
    assert await store.record_attempts(engine, POLICY, [(rows[0], DOWN)]) == 1
    async with engine.connect() as conn:
        ep = (await conn.execute(select(tables.webhook_endpoints))).one()
    assert (ep.status, ep.consecutive_failures) == ("enabled", 1)
    # The second failure in a row disables it (policy: 2 failures, no minimum duration); the success after
    # clears the streak but leaves it disabled.
    assert await store.record_attempts(engine, POLICY, [(rows[1], DOWN), (rows[2], OK)]) == 2
    async with engine.connect() as conn:
        ep = (await conn.execute(select(tables.webhook_endpoints))).one()
        deliveries = {d.delivery_id: d for d in await conn.execute(select(tables.webhook_deliveries))}
    assert (ep.status, ep.consecutive_failures) == ("disabled", 0)
    assert ep.disabled_reason is not None and "HTTP 503" in ep.disabled_reason
    assert [deliveries[r.delivery_id].status for r in rows] == ["pending", "pending", "delivered"]
    assert await claim(engine) == []  # a disabled endpoint's deliveries wait


async def test_successes_clear_the_streak_only_of_the_endpoints_whose_attempts_counted(engine: AsyncEngine) -> None:
    """A batch of successes only is logged and clears its endpoints' failure streaks in one statement: a stale
    success (its delivery was attempted again since) clears nothing, a counted one clears the streak of its own
    endpoint only and leaves an endpoint's status as it is."""
    failing, other = await endpoint_with(engine, 3), await endpoint_with(engine, 1)
    claimed = await claim(engine, lanes={failing: 16})
    rows = [row for row in claimed if row.endpoint_id == failing]
    [elsewhere] = [row for row in claimed if row.endpoint_id == other]
    assert await store.record_attempts(engine, POLICY, [(rows[0], DOWN)]) == 1
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.endpoint_id == other)
            .values(consecutive_failures=4, failing_since=datetime.now(UTC))
        )

    async def health() -> dict[str, tuple[str, int, bool]]:
        async with engine.connect() as conn:
            endpoints = (await conn.execute(select(tables.webhook_endpoints))).all()
        return {e.endpoint_id: (e.status, e.consecutive_failures, e.failing_since is None) for e in endpoints}

    assert (await health())[failing] == ("enabled", 1, False)
    assert await store.record_attempts(engine, POLICY, [(rows[0], OK)]) == 0  # stale: attempted since its claim
    assert (await health())[failing] == ("enabled", 1, False)
    assert await store.record_attempts(engine, POLICY, [(rows[1], OK), (rows[2], OK)]) == 2
    assert await health() == {failing: ("enabled", 0, True), other: ("enabled", 4, False)}
    assert await store.record_attempts(engine, POLICY, [(elsewhere, OK)]) == 1
    assert (await health())[other] == ("enabled", 0, True)
    async with engine.connect() as conn:
        attempts = (await conn.execute(select(tables.webhook_attempts))).all()
        statuses = {d.delivery_id: d.status for d in await conn.execute(select(tables.webhook_deliveries))}
    assert len(attempts) == 4
    assert [statuses[r.delivery_id] for r in rows] == ["pending", "delivered", "delivered"]


async def test_successes_recorded_while_their_endpoint_is_deleted_wait_for_it_and_count_none(
    engine: AsyncEngine,
) -> None:
    """Recording successes locks a failing endpoint before its deliveries, as deleting the endpoint does: a delete
    holding the endpoint is waited for (it takes the deliveries without a deadlock), and then nothing counts."""
    endpoint = await endpoint_with(engine, 1)
    [row] = await claim(engine)
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.endpoint_id == endpoint)
            .values(consecutive_failures=1, failing_since=datetime.now(UTC))
        )
    async with AsyncSession(engine) as session:
        # The first thing a delete does: lock the endpoint.
        await session.execute(
            select(tables.webhook_endpoints).where(tables.webhook_endpoints.c.endpoint_id == endpoint).with_for_update()
        )
        recording = asyncio.create_task(store.record_attempts(engine, POLICY, [(row, OK)]))

        async def recording_waits() -> bool:
            async with engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND strpos(query, 'unnest(') > 0"
                    )
                )
            return bool(waiting)

        await eventually(recording_waits, message="recording the success did not wait for the endpoint")
        # Waiting for the endpoint, it holds none of its deliveries: the delete takes them at once.
        assert await store.delete_endpoint(session, endpoint, owner=None)
        await session.commit()
    assert await asyncio.wait_for(recording, timeout=10) == 0
    async with engine.connect() as conn:
        assert (await conn.execute(select(tables.webhook_deliveries))).all() == []
        assert (await conn.execute(select(tables.webhook_attempts))).all() == []


async def test_two_replicas_deliver_each_message_once(settings: Settings, api_keys: dict[str, Any]) -> None:
    receiver = Receiver()
    port = free_port()
    returns_settings = settings_for(settings)
    desk = bearer(api_keys["returns-desk"])
    async with (
        serving(receiver, "127.0.0.1", port),
        running(build_app(returns_settings)) as one,
        running(build_app(returns_settings)) as other,
    ):
        await register(one, api_keys["crm"], f"http://127.0.0.1:{port}/h")
        posts = [
            (one if n % 2 else other).post("/v1/complaints", json=critical(f"R-{n}"), headers=desk) for n in range(40)
        ]
        assert {r.status_code for r in await asyncio.gather(*posts)} == {201}

        async def all_received() -> bool:
            return len({r["webhook-id"] for r in receiver.requests}) == 40

        await eventually(all_received, timeout=30, message="every message received")
    assert len(receiver.requests) == 40  # and none twice


async def test_a_stopping_replica_hands_back_the_attempts_it_had_in_flight(
    settings: Settings, api_keys: dict[str, Any], db: asyncpg.Connection
) -> None:
    async with hanging_endpoint() as (url, held):
        async with running(build_app(settings_for(settings, webhook_timeout_s=30))) as client:
            await register(client, api_keys["crm"], url)
            await client.post("/v1/complaints", json=critical("S-1"), headers=bearer(api_keys["returns-desk"]))

            async def attempting() -> bool:
                return bool(held)

            await eventually(attempting, message="the attempt is in flight")
        # The service stopped mid-attempt: no attempt counted, and the delivery is due now, not after its lease.
        row = await db.fetchrow(
            "SELECT status, attempts, next_attempt_at <= now() AS due FROM returns.webhook_deliveries"
        )
    assert (row["status"], row["attempts"], row["due"]) == ("pending", 0, True)


def change_of(alert: AlertRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The alert's document and the rest of its change: the webhook message, when, and a trace of its own."""
    document = {"alert_id": alert.alert_id, "revision": alert.revision, "type": alert.type, "sku": alert.sku}
    message = {"type": f"sales-alert.{alert.type}", "change": str(alert.revision), "data": document}
    trace = f"00-{alert.revision:032x}-{alert.revision:016x}-01"
    at = datetime.now(UTC)
    return document, {
        "event_type": "salesops.sales-alert.updated.v1",
        "message": message,
        "at": at,
        "traceparent": trace,
    }


async def test_a_raised_a_revised_and_an_acknowledged_alert_queue_the_same_deliveries(engine: AsyncEngine) -> None:
    """Each change, however it is written, goes to the change log and to one pending delivery per enabled endpoint
    subscribed to its webhook type, all carrying the change's one message id, its body and its trace."""
    async with AsyncSession(engine) as session:
        endpoints = {
            events[0] if events else "all": (
                await store.create_endpoint(session, url="http://127.0.0.1:9/h", event_types=events, owner="crm")
            )[0].endpoint_id
            for events in ([], ["sales-alert.critical-complaint"], ["sales-alert.return-surge"])
        }
        disabled, _ = await store.create_endpoint(session, url="http://127.0.0.1:9/h", event_types=[], owner="crm")
        await session.execute(
            update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.endpoint_id == disabled.endpoint_id)
            .values(status=EndpointStatus.DISABLED.value)
        )
        sql = SqlStore(session)
        written: list[tuple[int, dict[str, Any]]] = []
        content = AlertContent("SKU-1", [], {"n": 1})
        raised = sql.new_alert(AlertType.CRITICAL_COMPLAINT, "C-1", content, priority=Priority.HIGH, fingerprint="f1")
        document, change = change_of(raised)
        written.append((await sql.raise_alert(raised, NewChange(document, **change)), change))
        content = AlertContent("SKU-1", [], {"n": 2})
        revised = sql.revised_alert(raised, content, priority=Priority.HIGH, fingerprint="f2")
        document, change = change_of(revised)
        written.append((await sql.revise_alert(revised, NewChange(document, **change)), change))
        acknowledged = await sql.acknowledge_alert(raised.alert_id, by="ana")
        document, change = change_of(acknowledged)
        written.append((await sql.record_change(NewChange(document, **change)), change))
        await session.commit()

        changes = (await session.execute(select(tables.alert_changes).order_by(tables.alert_changes.c.change_id))).all()
        deliveries = (await session.execute(select(tables.webhook_deliveries))).all()
    assert [(c.change_id, c.revision, c.payload) for c in changes] == [
        (change_id, revision, change["message"]["data"]) for revision, (change_id, change) in enumerate(written, 1)
    ]
    message_ids = set()
    for change_id, change in written:
        queued = [d for d in deliveries if d.change_id == change_id]
        assert sorted(d.endpoint_id for d in queued) == sorted(
            [endpoints["all"], endpoints["sales-alert.critical-complaint"]]
        )
        assert {(d.message_id, d.alert_id, d.event_type, d.body, d.status, d.traceparent) for d in queued} == {
            (
                queued[0].message_id,
                raised.alert_id,
                "sales-alert.critical-complaint",
                json.dumps(change["message"], separators=(",", ":")),
                "pending",
                change["traceparent"],
            )
        }
        assert queued[0].message_id.startswith("msg_")
        message_ids.add(queued[0].message_id)
    assert len(message_ids) == len(written) == 3
