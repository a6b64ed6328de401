"""Returns that count towards a SKU's surge, on the real database and broker: concurrent returns of one SKU, an
identical retry, a conflicting one and an alert whose event would be too large."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.returns_service import handlers
from services.returns_service.app import build_app
from services.returns_service.domain import AlertType, RecordReturn, ResolveAlert
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import EventBuffer, SqlStore, quality_return
from services.returns_service.store.alerts import subject_lock_key
from shared.db import driver_connection
from shared.events import EventType, OrderVolumeReportedData, new_event, topic_of
from shared.outbox import encode_event
from shared.settings import Settings
from tests.support import bearer, running

TODAY = date(2026, 11, 30)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY)


def defective(n: int, sku: str = "SKU-Q", account: str = "ACME", reason: str = "defective") -> dict[str, Any]:
    return {
        "return_id": f"RQ-{sku}-{n}",
        "sku": sku,
        "quantity": 1 + n % 2,
        "account_id": account,
        "reason": reason,
        "condition": "scrap",
        "returned_on": "2026-11-28",
    }


async def surge_lock_held(db: Any, sku: str) -> bool:
    """Whether a transaction holds the SKU's surge lock (a bigint advisory lock: its halves in classid, objid)."""
    key = subject_lock_key(AlertType.RETURN_SURGE, sku) & 0xFFFF_FFFF_FFFF_FFFF
    return bool(
        await db.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory' and classid = $1 and objid = $2"
            " and objsubid = 1 and granted",
            key >> 32,
            key & 0xFFFF_FFFF,
        )
    )


async def outbox_types(db: Any) -> list[str]:
    return [row["event_type"] for row in await db.fetch("select event_type from returns.outbox order by id")]


async def test_concurrent_returns_of_one_sku_raise_one_alert_that_each_later_return_revises(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    count = 12
    async with running(build_app(returns_settings)) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/returns", json=defective(n, account=f"ACC-{n % 3}"), headers=desk) for n in range(count))
        )
        assert [a.status_code for a in answers] == [201] * count
        alerts = (await client.get("/v1/alerts", params={"sku": "SKU-Q"}, headers=bearer(api_keys["crm"]))).json()

    [alert] = alerts["data"]
    # Each return saw every return committed before it: the alert was raised at the fifth and revised by each
    # later one, and its details count them all.
    min_returns = returns_settings.return_surge_min_returns
    assert (alert["status"], alert["revision"]) == ("open", count - min_returns + 1)
    assert alert["details"]["quality_return_count"] == count
    assert alert["details"]["quality_units"] == sum(1 + n % 2 for n in range(count))
    assert sorted(alert["account_ids"]) == ["ACC-0", "ACC-1", "ACC-2"]
    changes = await db.fetch(
        "select revision, event_type, payload from returns.alert_changes where alert_id = $1 order by change_id",
        alert["alert_id"],
    )
    assert [c["revision"] for c in changes] == list(range(1, alert["revision"] + 1))
    types = await outbox_types(db)
    assert types.count("salesops.return.recorded.v1") == count
    alert_events = [t for t in types if t.startswith("salesops.sales-alert.")]
    assert alert_events == ["salesops.sales-alert.raised.v1"] + ["salesops.sales-alert.updated.v1"] * (
        alert["revision"] - 1
    )


async def test_a_retried_return_answers_200_and_changes_nothing_and_another_body_is_a_conflict(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        for n in range(5):
            assert (await client.post("/v1/returns", json=defective(n), headers=desk)).status_code == 201
        outbox, changes = await outbox_types(db), await db.fetchval("select count(*) from returns.alert_changes")
        assert outbox[-1] == "salesops.sales-alert.raised.v1"

        again = await client.post("/v1/returns", json=defective(4), headers=desk)
        assert again.status_code == 200, again.text
        assert again.json()["return_id"] == "RQ-SKU-Q-4"
        other = await client.post("/v1/returns", json={**defective(4), "quantity": 9}, headers=desk)
        assert other.status_code == 409, other.text
        assert "RQ-SKU-Q-4" in other.text

        assert await outbox_types(db) == outbox
        assert await db.fetchval("select count(*) from returns.alert_changes") == changes
        assert await db.fetchval("select count(*) from returns.returns") == 5
        # The refused return's transaction ended with it: no connection is left in one, holding the SKU's lock.
        assert not await surge_lock_held(db, "SKU-Q")
        assert (await client.post("/v1/returns", json=defective(5), headers=desk)).status_code == 201
        assert await db.fetchval("select count(*) from returns.alert_changes") == changes + 1


async def test_a_return_whose_alert_event_would_be_too_large_is_refused_and_stores_nothing(
    returns_settings, api_keys, db
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        for n in range(4):
            assert (await client.post("/v1/returns", json=defective(n), headers=desk)).status_code == 201
    largest = await db.fetchval("select max(length(payload)) from returns.outbox")
    # Room for a return's event, not for the alert the fifth return would raise.
    small = returns_settings.model_copy(update={"kafka_max_request_bytes": largest + 300})
    async with running(build_app(small)) as client:
        refused = await client.post("/v1/returns", json=defective(4), headers=desk)
        assert refused.status_code == 413, refused.text
        assert refused.json()["errors"][0]["field"] == "body"
        assert "sales-alert.raised" in refused.text
        assert await db.fetchval("select count(*) from returns.returns") == 4
        assert await db.fetchval("select count(*) from returns.outbox") == 4
        assert await db.fetchval("select count(*) from returns.alerts") == 0
        assert await db.fetchval("select count(*) from returns.alert_changes") == 0
        # The return alone fits: another reason raises nothing.
        other = await client.post("/v1/returns", json=defective(4, reason="wrong_item"), headers=desk)
        assert other.status_code == 201, other.text


async def waiting_on_a_lock(db: Any) -> None:
    """Until a statement on the test's database waits for a lock another transaction holds (bounded)."""
    for _ in range(400):
        if await db.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
        ):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no statement waited for a lock")


async def test_a_resolution_a_return_waited_for_holds_back_the_evidence_it_resolved(
    returns_settings, api_keys, db, database_url
) -> None:
    desk = bearer(api_keys["returns-desk"])
    engine = create_async_engine(database_url)
    try:
        async with running(build_app(returns_settings)) as client:
            for n in range(5):
                assert (await client.post("/v1/returns", json=defective(n), headers=desk)).status_code == 201
            alert_id = await db.fetchval("select alert_id from returns.alerts where status = 'open'")
            assert alert_id is not None
            raised = await db.fetchval("select count(*) from returns.outbox where event_type like '%alert.raised%'")

            async with AsyncSession(engine) as session:
                await session.begin()
                # A person resolves the alert; their transaction holds its row until it commits.
                person = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
                resolved = await handlers.act_on_alert(SqlStore(session), person, ResolveAlert(alert_id, by="crm"))
                assert resolved.status == "resolved"
                # A quality return dated before the window: it changes none of the surge's figures, so the surge
                # the rule finds is the very evidence the person resolved.
                late = {**defective(5), "returned_on": "2026-10-01"}
                answer = asyncio.create_task(client.post("/v1/returns", json=late, headers=desk))
                await waiting_on_a_lock(db)
                await session.commit()
            assert (await answer).status_code == 201

        rows = await db.fetch("select alert_id, status, resolved_by from returns.alerts")
        assert [(r["alert_id"], r["status"], r["resolved_by"]) for r in rows] == [(alert_id, "resolved", "crm")]
        assert await db.fetchval("select count(*) from returns.outbox where event_type like '%alert.raised%'") == raised
        assert await db.fetchval("select count(*) from returns.returns") == 6
    finally:
        await engine.dispose()


async def test_a_volume_report_reads_the_surge_after_the_quality_return_it_waited_for(
    returns_settings, api_keys, db, database_url
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        for n in range(5):
            assert (await client.post("/v1/returns", json=defective(n), headers=desk)).status_code == 201
    engine = create_async_engine(database_url)
    buffer = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
    report = OrderVolumeReportedData.model_validate(
        {
            "sku": "SKU-Q",
            "days": [{"day": "2026-11-29", "units_ordered": 100, "units_shipped": 100, "units_backordered": 0}],
        }
    )

    async def report_volumes() -> None:
        async with AsyncSession(engine) as session, session.begin():
            await handlers.record_order_volumes(SqlStore(session), buffer, report, returns_settings)

    try:
        command = RecordReturn.from_body(defective(5))
        data = handlers.return_recorded_data(command)
        event = new_event(EventType.RETURN_RECORDED, source="test", subject=command.return_id, data=data)
        encoded = encode_event(event, topic_of(EventType.RETURN_RECORDED).value, command.sku)
        async with driver_connection(engine) as connection:
            events = EventBuffer(source="test", traceparent=None, max_bytes=1_000_000)
            # A sixth quality return revises the alert; its transaction holds the SKU's surge lock to its commit.
            async with quality_return(connection, events, command.sku) as store:
                written = await handlers.record_quality_return(store, events, command, encoded, returns_settings)
                assert written.created
                reported = asyncio.create_task(report_volumes())
                await waiting_on_a_lock(db)
        await reported
    finally:
        await engine.dispose()

    [alert] = await db.fetch("select revision, details from returns.alerts")
    # The report's revision counts the return committed while it waited, which it read after the lock.
    assert alert["revision"] == 3
    details = json.loads(alert["details"])
    assert (details["quality_return_count"], details["shipped_units"]) == (6, 100)
