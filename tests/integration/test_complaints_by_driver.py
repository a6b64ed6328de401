"""Complaints on the real database, stored on the driver: concurrent critical complaints, concurrent and later
identical retries, a conflicting retry, complaints that raise no alert, and a critical complaint whose alert event
would be too large, which stores nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.returns_service import handlers
from services.returns_service.app import build_app
from services.returns_service.domain import RecordComplaint
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import EventBuffer, complaint_transaction
from shared.db import driver_connection
from shared.events import EventType, new_event, topic_of
from shared.outbox import encode_event
from shared.settings import Settings
from tests.support import bearer, eventually, running

TODAY = date(2026, 11, 30)
RAISED = "salesops.sales-alert.raised.v1"
RECORDED = "salesops.complaint.recorded.v1"


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY)


def complaint(n: int, *, severity: str = "critical", account: str = "ACME", **changes: Any) -> dict[str, Any]:
    return {
        "complaint_id": f"CD-{n}",
        "account_id": account,
        "sku": "SKU-C",
        "category": "quality",
        "severity": severity,
        "description": f"units arrive cracked ({n})",
        "received_on": "2026-11-29",
        **changes,
    }


async def outbox(db: Any) -> list[tuple[str, str]]:
    """The complaint and alert events in the outbox, in order, with their subjects."""
    rows = await db.fetch("select event_type, payload from returns.outbox order by id")
    kinds = (RECORDED, RAISED)
    return [(row["event_type"], json.loads(row["payload"])["subject"]) for row in rows if row["event_type"] in kinds]


async def alerts(db: Any) -> list[tuple[str, str, str, int]]:
    rows = await db.fetch("select type, subject, priority, revision from returns.alerts order by subject")
    return [(row["type"], row["subject"], row["priority"], row["revision"]) for row in rows]


async def counts(db: Any) -> dict[str, int]:
    tables = ("complaints", "outbox", "alerts", "alert_changes")
    return {table: await db.fetchval(f"select count(*) from returns.{table}") for table in tables}


async def alert_id(db: Any) -> str:
    return str(await db.fetchval("select alert_id from returns.alerts"))


async def backends(db: Any) -> set[int]:
    """The service's connections to the test's database, by backend pid. A connection left inside a transaction
    is discarded when it is given back (`driver_connection`), so its pid goes: one that a complaint's transaction
    ended properly stays in the pool."""
    pids = await db.fetch(
        "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
    )
    return {row["pid"] for row in pids}


async def test_concurrent_critical_complaints_each_raise_their_own_alert_with_their_event(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    count = 12
    async with running(build_app(returns_settings)) as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/complaints", json=complaint(n, account=f"ACC-{n % 3}"), headers=desk)
                for n in range(count)
            )
        )
        assert [a.status_code for a in answers] == [201] * count, [a.text for a in answers]
        assert {a.headers["location"] for a in answers} == {f"/v1/complaints/CD-{n}" for n in range(count)}
        assert [a.json()["complaint_id"] for a in answers] == [f"CD-{n}" for n in range(count)]

        async def counted() -> bool:
            # Each complaint marked its account: the recount task counts them all.
            rows = await db.fetch("select account_id, sum(complaints) as n from returns.cost_ledger group by 1")
            return {row["account_id"]: row["n"] for row in rows} == {"ACC-0": 4, "ACC-1": 4, "ACC-2": 4}

        await eventually(counted, message="every complaint counted in its account's ledger")

    assert await alerts(db) == sorted(("critical-complaint", f"CD-{n}", "high", 1) for n in range(count))
    written = await outbox(db)
    assert sorted(subject for kind, subject in written if kind == RECORDED) == sorted(f"CD-{n}" for n in range(count))
    raised = [subject for kind, subject in written if kind == RAISED]
    assert len(raised) == count
    # Each alert's change is in the log, one per complaint.
    assert await db.fetchval("select count(*) from returns.alert_changes where event_type = $1", RAISED) == count
    stored = await db.fetchval("select body from returns.complaints where complaint_id = 'CD-4'")
    assert json.loads(stored) == complaint(4, account="ACC-1")


async def test_concurrent_identical_complaints_create_one_and_answer_the_rest_with_it(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/complaints", json=complaint(1), headers=desk) for _ in range(6))
        )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert await outbox(db) == [(RECORDED, "CD-1"), (RAISED, await alert_id(db))]
    assert await counts(db) == {"complaints": 1, "outbox": 2, "alerts": 1, "alert_changes": 1}


async def test_a_retried_complaint_answers_200_and_changes_nothing_and_another_body_is_a_conflict(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        first = await client.post("/v1/complaints", json=complaint(1), headers=desk)
        assert first.status_code == 201, first.text
        before = await counts(db)
        assert before == {"complaints": 1, "outbox": 2, "alerts": 1, "alert_changes": 1}

        again = await client.post("/v1/complaints", json=complaint(1), headers=desk)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["location"] == "/v1/complaints/CD-1"
        pooled = await backends(db)
        for severity in ("low", "high"):  # alone, and inside the transaction a complaint that may be critical opens
            other = await client.post("/v1/complaints", json=complaint(1, severity=severity), headers=desk)
            assert other.status_code == 409, other.text
            assert other.headers["content-type"].startswith("application/problem+json")
            assert "CD-1" in other.text

        assert await counts(db) == before
        # The refused complaint's transaction was rolled back: its connection went back to the pool, not discarded.
        assert pooled <= await backends(db)
        assert (await client.post("/v1/complaints", json=complaint(2), headers=desk)).status_code == 201
        assert len(await alerts(db)) == 2


async def test_a_complaint_that_cannot_be_critical_is_stored_and_announced_without_an_alert(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        strategic = {"name": "Acme", "segment": "strategic", "owner_email": "kim@example.com"}
        assert (await client.put("/v1/accounts/ACME", json=strategic, headers=desk)).status_code == 201
        emerging = {"name": "Bolt", "segment": "emerging"}
        assert (await client.put("/v1/accounts/BOLT", json=emerging, headers=desk)).status_code == 201
        for n, severity, account in [(1, "low", "ACME"), (2, "medium", "ACME"), (3, "high", "BOLT"), (4, "high", "X")]:
            answer = await client.post(
                "/v1/complaints", json=complaint(n, severity=severity, account=account), headers=desk
            )
            assert answer.status_code == 201, answer.text
        assert await alerts(db) == []
        assert await outbox(db) == [(RECORDED, f"CD-{n}") for n in (1, 2, 3, 4)]
        assert await db.fetchval("select count(*) from returns.alert_changes") == 0

        # High from a priority tier: the account read with the complaint's insert raises its alert.
        high = await client.post("/v1/complaints", json=complaint(5, severity="high"), headers=desk)
        assert high.status_code == 201, high.text
    assert await alerts(db) == [("critical-complaint", "CD-5", "high", 1)]
    accounts = json.loads(await db.fetchval("select accounts from returns.alerts"))
    assert accounts == [{"account_id": "ACME", "name": "Acme", "segment": "strategic"}]
    assert [kind for kind, _ in await outbox(db)][-2:] == [RECORDED, RAISED]


async def test_a_critical_complaint_whose_alert_event_would_be_too_large_is_refused_and_stores_nothing(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        assert (await client.post("/v1/complaints", json=complaint(1), headers=desk)).status_code == 201
    sizes = dict(await db.fetch("select event_type, length(payload) from returns.outbox"))
    assert sizes[RECORDED] < sizes[RAISED]
    before = await counts(db)
    # Room for a complaint's event, not for the alert a critical one raises.
    small = returns_settings.model_copy(update={"kafka_max_request_bytes": (sizes[RECORDED] + sizes[RAISED]) // 2})
    async with running(build_app(small)) as client:
        assert (await client.post("/v1/complaints", json=complaint(3, severity="low"), headers=desk)).status_code == 201
        pooled = await backends(db)
        refused = await client.post("/v1/complaints", json=complaint(2), headers=desk)
        assert refused.status_code == 413, refused.text
        assert refused.json()["errors"][0]["field"] == "body"
        assert "sales-alert.raised" in refused.text
        assert await counts(db) == {**before, "complaints": before["complaints"] + 1, "outbox": before["outbox"] + 1}
        assert pooled <= await backends(db)
        # The same complaint at a severity that raises nothing fits.
        fits = await client.post("/v1/complaints", json=complaint(2, severity="medium"), headers=desk)
        assert fits.status_code == 201, fits.text


async def test_a_complaint_transaction_that_fails_after_its_statement_rolls_the_complaint_back(
    returns_settings, database_url, db
) -> None:
    command = RecordComplaint.from_body(complaint(1))
    data = handlers.complaint_recorded_data(command)
    event = new_event(EventType.COMPLAINT_RECORDED, source="test", subject=command.complaint_id, data=data)
    encoded = encode_event(event, topic_of(EventType.COMPLAINT_RECORDED).value, "SKU-C")
    engine = create_async_engine(database_url)
    try:
        async with driver_connection(engine) as connection:
            events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
            with pytest.raises(RuntimeError, match="events were published that no statement wrote"):
                async with complaint_transaction(connection, events) as store:
                    stored, created = await store.create_complaint_announced(command, encoded)
                    assert created and stored.account is None
                    # An event no statement writes: the transaction refuses to commit.
                    events.publish(EventType.COMPLAINT_RECORDED, key="SKU-C", subject="CD-1", data=data)
            assert not connection.is_in_transaction()
            events.take()  # the refused transaction's stray event
            async with complaint_transaction(connection, events) as store:
                written = await handlers.record_complaint(store, events, command, encoded)
            assert written.created
    finally:
        await engine.dispose()
    assert await counts(db) == {"complaints": 1, "outbox": 2, "alerts": 1, "alert_changes": 1}
    # The complaint marked its account for a recount, once.
    assert [row["account_id"] for row in await db.fetch("select account_id from returns.cost_recounts")] == ["ACME"]
