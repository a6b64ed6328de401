"""The recount of accounts marked by returns and complaints, against the real PostgreSQL: a return or a complaint
marks its account in the statement that stores it, and the recount task counts it shortly after the request; marks
survive a restart; two replicas recounting at once leave every ledger equal to a full recount, and a return that
commits while its account is being recounted is counted by the next recount; a recount on the driver reads and
writes what one on a session does, alerts included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.returns_service import cost_handlers, cost_recount, handlers
from services.returns_service.app import build_app, build_spec
from services.returns_service.costing import count_drivers
from services.returns_service.domain import AlertContent, AlertType, Priority, PutAccount, RecordReturn, Segment
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import (
    EventBuffer,
    ReturnsByDriver,
    SqlStore,
    claim_recounts_by_driver,
    recount_transaction,
)
from services.returns_service.webhooks.ssrf import Guard
from shared.db import driver_connection
from shared.events import EventType
from shared.service import Runtime, build_runtime
from shared.settings import Settings
from tests.support import bearer, eventually, running

TODAY = date(2026, 12, 10)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY, cost_recount_interval_s=0.2)


@pytest.fixture
async def replicas(returns_settings: ReturnsSettings) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two replicas' runtimes (each its own engine), without their background tasks."""
    spec = build_spec(returns_settings, Guard(allow_private=True))
    pair = (build_runtime(spec, returns_settings), build_runtime(spec, returns_settings))
    yield pair
    for runtime in pair:
        await runtime.engine.dispose()


def return_body(n: int, account_id: str) -> dict[str, Any]:
    return {
        "return_id": f"R-{account_id}-{n}",
        "sku": f"SKU-{n % 3}",
        "quantity": 1 + n % 4,
        "account_id": account_id,
        "reason": "defective" if n % 2 else "no_longer_needed",
        "condition": "scrap" if n % 3 else "resellable",
        "returned_on": "2026-11-20",
    }


def complaint_body(n: int, account_id: str) -> dict[str, Any]:
    return {
        "complaint_id": f"C-{account_id}-{n}",
        "account_id": account_id,
        "category": "delivery",
        "severity": "low",
        "description": "late",
        "received_on": "2026-11-21",
    }


async def store_return(runtime: Runtime, body: dict[str, Any]) -> None:
    """A return stored as the request stores it (its account marked, its event written), in a statement of its own,
    and nothing else (no surge is evaluated)."""
    command = RecordReturn.from_body(body)
    event = runtime.encoded_event(
        EventType.RETURN_RECORDED,
        key=command.sku,
        subject=command.return_id,
        data=handlers.return_recorded_data(command),
    )
    async with driver_connection(runtime.engine) as connection:
        _, created = await ReturnsByDriver(connection).create_return_announced(command, event)
    assert created


async def mark_accounts(runtime: Runtime, accounts: Sequence[str], *, returns: int = 1) -> None:
    """`returns` returns stored for every account (`store_return`), each marking its account: a round of one return
    per account after another, as the requests of several accounts arrive."""
    for n in range(returns):
        for account_id in accounts:
            await store_return(runtime, return_body(n, account_id))


async def marks(db: Any) -> dict[str, int]:
    rows = await db.fetch("select account_id, due_seq from returns.cost_recounts")
    return {row["account_id"]: row["due_seq"] for row in rows}


async def ledger_is_a_full_recount(runtime: Runtime, account_id: str) -> bool:
    """The stored ledger of the account equals a recount of all its stored facts."""
    async with runtime.unit_of_work() as uow:
        store = SqlStore(uow.session)
        facts = await store.account_facts(account_id)
        expected = [m for m in count_drivers(facts, TODAY) if m.account_id == account_id]
        stored = await store.ledger_months(account_id=account_id, first=None, last=None)
    return bool(expected) and stored == expected


async def return_lines(db: Any, account_id: str) -> int:
    counted = await db.fetchval(
        "select coalesce(sum(return_lines), 0) from returns.cost_ledger where account_id = $1", account_id
    )
    return int(counted)


async def test_a_return_and_a_complaint_are_counted_shortly_after_their_requests(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        assert (await client.post("/v1/returns", json=return_body(1, "ACC-1"), headers=desk)).status_code == 201
        assert (await client.post("/v1/complaints", json=complaint_body(1, "ACC-1"), headers=desk)).status_code == 201

        async def counted() -> Any:
            row = await db.fetchrow(
                "select return_lines, complaints from returns.cost_ledger where account_id = 'ACC-1'"
            )
            return row is not None and (row["return_lines"], row["complaints"]) == (1, 1) and not await marks(db)

        await eventually(counted, message="return and complaint counted, mark removed")
        assert await db.fetchval("select counted_as_of from returns.cost_accounts where account_id = 'ACC-1'") == TODAY
        # An identical retry creates nothing and marks nothing.
        again = await client.post("/v1/returns", json=return_body(1, "ACC-1"), headers=desk)
        assert again.status_code == 200
        assert await marks(db) == {}


async def test_marks_left_by_a_replica_that_stopped_are_counted_after_a_restart(returns_settings, replicas, db) -> None:
    first, _ = replicas
    # Stored and committed as a request stores them, then the process went away before its recount ran.
    await mark_accounts(first, ["ACC-1"], returns=3)
    await mark_accounts(first, ["ACC-2"])
    assert set(await marks(db)) == {"ACC-1", "ACC-2"}
    assert await return_lines(db, "ACC-1") == 0

    async with running(build_app(returns_settings)):

        async def counted() -> bool:
            return (await return_lines(db, "ACC-1"), await return_lines(db, "ACC-2")) == (3, 1) and not await marks(db)

        await eventually(counted, message="marks from before the restart counted")
    assert await ledger_is_a_full_recount(first, "ACC-1")
    assert await ledger_is_a_full_recount(first, "ACC-2")


async def test_two_replicas_recounting_while_returns_arrive_leave_every_ledger_a_full_recount(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    accounts = [f"ACC-{a}" for a in range(4)]
    await mark_accounts(first, accounts, returns=3)

    # Claims are leased: a replica never claims what the other holds.
    async with first.unit_of_work() as uow:
        claimed = await SqlStore(uow.session).claim_recounts(limit=2, lease_s=60)
        await uow.commit()
    async with second.unit_of_work() as uow:
        others = await SqlStore(uow.session).claim_recounts(limit=10, lease_s=60)
        await uow.commit()
    assert len(claimed) == 2 and sorted(claimed + others) == accounts
    await db.execute("update returns.cost_recounts set claimed_until = null")  # as if both leases had lapsed

    async def arrivals() -> None:
        for n in range(3, 9):
            for account_id in accounts:
                await store_return(second, return_body(n, account_id))
            await asyncio.sleep(0)

    async def recounts(runtime: Runtime) -> None:
        for _ in range(30):
            await cost_recount.recount_once(runtime, returns_settings)

    await asyncio.gather(arrivals(), recounts(first), recounts(second))
    # Whatever marks the race left are counted by the next rounds.
    for _ in range(5):
        await db.execute("update returns.cost_recounts set claimed_until = null")
        await cost_recount.recount_once(first, returns_settings)
    assert await marks(db) == {}
    for account_id in accounts:
        assert await return_lines(db, account_id) == 9
        assert await ledger_is_a_full_recount(first, account_id)


async def test_a_return_committed_during_its_accounts_recount_keeps_the_mark_for_the_next_one(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    await store_return(first, return_body(0, "ACC-1"))
    async with first.unit_of_work() as uow:
        store = SqlStore(uow.session)
        due_seq = await store.begin_recount("ACC-1")  # the account's cost lock, held to the commit
        assert due_seq is not None
        await cost_handlers.recount_account(store, uow, "ACC-1", returns_settings)
        # Another request stores a return after the recount read the facts: it does not wait for the recount.
        await asyncio.wait_for(store_return(second, return_body(1, "ACC-1")), timeout=5)
        assert not await store.finish_recount("ACC-1", due_seq)
        await uow.commit()
    assert set(await marks(db)) == {"ACC-1"}
    assert await return_lines(db, "ACC-1") == 1

    assert await cost_recount.recount_once(first, returns_settings) == 1
    assert await marks(db) == {}
    assert await return_lines(db, "ACC-1") == 2
    assert await ledger_is_a_full_recount(first, "ACC-1")


async def test_removing_a_mark_answers_whether_it_went_on_the_driver_as_on_a_session(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    await store_return(first, return_body(0, "ACC-1"))
    events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
    async with driver_connection(first.engine) as connection:
        async with recount_transaction(connection, events) as by_driver:
            due_seq = await by_driver.begin_recount("ACC-1")
            assert due_seq is not None
            # A newer mark came in since it was read: it stays.
            await asyncio.wait_for(store_return(second, return_body(1, "ACC-1")), timeout=5)
            assert not await by_driver.finish_recount("ACC-1", due_seq)
        assert set(await marks(db)) == {"ACC-1"}
        async with recount_transaction(connection, events) as by_driver:
            due_seq = await by_driver.begin_recount("ACC-1")
            assert due_seq is not None
            assert await by_driver.finish_recount("ACC-1", due_seq)
    assert await marks(db) == {}
    await store_return(first, return_body(2, "ACC-1"))
    async with first.unit_of_work() as uow:
        store = SqlStore(uow.session)
        due_seq = await store.begin_recount("ACC-1")
        assert due_seq is not None
        assert await store.finish_recount("ACC-1", due_seq)
        await uow.commit()
    assert await marks(db) == {}


async def test_a_recount_on_the_driver_reads_what_the_session_reads_and_writes_the_same_ledger(
    returns_settings, replicas, db
) -> None:
    first, _ = replicas
    await mark_accounts(first, ["ACC-1"], returns=6)
    async with first.unit_of_work() as uow:
        store = SqlStore(uow.session)
        await handlers.put_account(store, uow, PutAccount("ACC-1", "Acme", Segment.STRATEGIC))
        await uow.commit()
    window = {
        "first": date(2026, 1, 1),
        "last": date(2026, 12, 1),
        "mapping_first": date(2026, 6, 1),
        "mapping_last": date(2026, 12, 1),
    }
    events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
    async with driver_connection(first.engine) as connection:
        assert await claim_recounts_by_driver(connection, limit=10, lease_s=60) == ["ACC-1"]
        async with recount_transaction(connection, events) as by_driver:
            assert await cost_handlers.recount_marked(by_driver, events, "ACC-1", returns_settings)
            driver_facts = await by_driver.account_facts("ACC-1")
            driver_inputs = await by_driver.evaluation_inputs("ACC-1", **window)
            assert (await by_driver.begin_evaluation("ACC-1", cost_handlers.COST_ALERTS, datetime.now(UTC))) == {}
        # The mark is gone: nothing left to claim, and a second recount finds nothing to do.
        assert await claim_recounts_by_driver(connection, limit=10, lease_s=60) == []
        async with recount_transaction(connection, events) as by_driver:
            assert not await cost_handlers.recount_marked(by_driver, events, "ACC-1", returns_settings)
    assert await marks(db) == {}
    assert await return_lines(db, "ACC-1") == 6
    assert await ledger_is_a_full_recount(first, "ACC-1")
    async with first.unit_of_work() as uow:
        store = SqlStore(uow.session)
        assert await store.account_facts("ACC-1") == driver_facts
        session_inputs = await store.evaluation_inputs("ACC-1", **window)
    assert session_inputs == driver_inputs
    assert driver_inputs.account is not None and driver_inputs.account.segment is Segment.STRATEGIC
    assert driver_inputs.months and driver_inputs.revenue_all is not None


async def test_a_recount_on_the_driver_resolves_a_cost_alert_whose_cause_went_away_and_announces_it(
    returns_settings, replicas, db
) -> None:
    first, _ = replicas
    async with first.unit_of_work() as uow:
        store = SqlStore(uow.session)
        await store.lock_account_costs("ACC-1")
        content = AlertContent(None, [{"account_id": "ACC-1", "name": "Acme", "segment": "strategic"}], {"n": 1})
        raised = await handlers.raise_alert(
            store, uow, AlertType.ACCOUNT_UNPROFITABLE, "ACC-1", content, priority=Priority.HIGH, fingerprint="f-1"
        )
        await uow.commit()
    # A return marks the account; its ledger makes no loss: the recount resolves the alert.
    await store_return(first, return_body(1, "ACC-1"))
    assert await cost_recount.recount_once(first, returns_settings) == 1

    alert = await db.fetchrow("select * from returns.alerts where alert_id = $1", raised.alert_id)
    assert (alert["status"], alert["revision"], alert["resolved_by"]) == ("resolved", 2, None)
    assert alert["resolved_at"] == alert["updated_at"]
    assert json.loads(alert["details"]) == {"n": 1, "cleared_on": TODAY.isoformat()}
    changes = await db.fetch(
        "select revision, event_type, payload from returns.alert_changes where alert_id = $1 order by change_id",
        raised.alert_id,
    )
    assert [(c["revision"], c["event_type"]) for c in changes] == [
        (1, EventType.SALES_ALERT_RAISED.value),
        (2, EventType.SALES_ALERT_UPDATED.value),
    ]
    assert json.loads(changes[1]["payload"])["status"] == "resolved"
    written = [json.loads(row["payload"]) for row in await db.fetch("select payload from returns.outbox order by id")]
    announced = [
        (e["type"], e["data"]["status"], e["data"]["revision"]) for e in written if e["subject"] == raised.alert_id
    ]
    assert announced == [
        (EventType.SALES_ALERT_RAISED.value, "open", 1),
        (EventType.SALES_ALERT_UPDATED.value, "resolved", 2),
    ]
    assert await marks(db) == {}


async def test_marked_accounts_share_a_transaction_and_one_whose_lock_is_held_is_left_for_later(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    accounts = ["ACC-1", "ACC-2", "ACC-3"]
    await mark_accounts(first, accounts, returns=2)
    async with second.unit_of_work() as uow:
        # Another transaction holds ACC-2's cost lock (the consumer recounting it after an order, say).
        await SqlStore(uow.session).lock_account_costs("ACC-2")
        events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
        async with driver_connection(first.engine) as connection:
            assert sorted(await claim_recounts_by_driver(connection, limit=10, lease_s=60)) == accounts
            async with recount_transaction(connection, events) as store:
                # Not waited for: left for a transaction of its own.
                left = await asyncio.wait_for(
                    cost_handlers.recount_marked_together(store, events, accounts, returns_settings), timeout=5
                )
                assert left == ["ACC-2"]
                assert store.cost_locks == {"ACC-1", "ACC-3"}
        await uow.commit()
    assert set(await marks(db)) == {"ACC-2"}
    assert [await return_lines(db, a) for a in accounts] == [2, 0, 2]

    await db.execute("update returns.cost_recounts set claimed_until = null")  # as if the lease had lapsed
    assert await cost_recount.recount_once(first, returns_settings) == 1
    assert await marks(db) == {}
    for account_id in accounts:
        assert await return_lines(db, account_id) == 2
        assert await ledger_is_a_full_recount(first, account_id)


async def test_a_round_recounts_the_others_first_and_then_waits_for_a_busy_accounts_lock(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    accounts = ["ACC-1", "ACC-2", "ACC-3"]
    await mark_accounts(first, accounts)
    async with second.unit_of_work() as uow:
        await SqlStore(uow.session).lock_account_costs("ACC-2")
        round_ = asyncio.create_task(cost_recount.recount_once(first, returns_settings))

        async def others_counted() -> bool:
            return set(await marks(db)) == {"ACC-2"}

        await eventually(others_counted, message="the accounts whose locks were free counted")
        assert not round_.done()  # waiting for ACC-2's lock, in a transaction of its own
        await uow.commit()
    assert await asyncio.wait_for(round_, timeout=10) == 3
    assert await marks(db) == {}
    for account_id in accounts:
        assert await return_lines(db, account_id) == 1
        assert await ledger_is_a_full_recount(first, account_id)


async def test_a_return_committed_during_a_shared_recount_keeps_its_mark_and_does_not_wait_for_the_others(
    returns_settings, replicas, db
) -> None:
    first, second = replicas
    await mark_accounts(first, ["ACC-1", "ACC-2"])
    events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
    async with driver_connection(first.engine) as connection, recount_transaction(connection, events) as store:
        due_seq = await store.begin_recount("ACC-1")
        assert due_seq is not None
        await cost_handlers.recount_account(store, events, "ACC-1", returns_settings)
        # ACC-1 is counted, the transaction goes on with ACC-2: a new return of ACC-1 does not wait for it.
        await asyncio.wait_for(store_return(second, return_body(1, "ACC-1")), timeout=5)
        locked, other_seq = await store.try_begin_recount("ACC-2")
        assert locked and other_seq is not None
        await cost_handlers.recount_account(store, events, "ACC-2", returns_settings)
        await store.finish_recounts([("ACC-1", due_seq), ("ACC-2", other_seq)])
    assert set(await marks(db)) == {"ACC-1"}
    assert (await return_lines(db, "ACC-1"), await return_lines(db, "ACC-2")) == (1, 1)

    assert await cost_recount.recount_once(first, returns_settings) == 1
    assert await marks(db) == {}
    assert await return_lines(db, "ACC-1") == 2
    assert await ledger_is_a_full_recount(first, "ACC-1")


async def test_when_a_shared_recount_fails_each_account_is_recounted_alone(
    returns_settings, replicas, db, monkeypatch
) -> None:
    first, _ = replicas
    accounts = ["ACC-1", "ACC-2"]
    await mark_accounts(first, accounts)

    async def failing(*_: Any) -> list[str]:
        raise RuntimeError("the shared transaction failed")

    monkeypatch.setattr(cost_handlers, "recount_marked_together", failing)
    assert await cost_recount.recount_once(first, returns_settings) == 2
    assert await marks(db) == {}
    for account_id in accounts:
        assert await return_lines(db, account_id) == 1
        assert await ledger_is_a_full_recount(first, account_id)
