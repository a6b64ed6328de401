"""The returns service's migration to versioned accounts announces the accounts it finds, once, through the
outbox, and goes back down cleanly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from alembic import command

from shared import migrations
from shared.events import AccountChangedData, CloudEvent


async def test_accounts_stored_before_versions_are_announced_once_at_version_1(database_url: str, db: Any) -> None:
    config = migrations.alembic_config("returns", database_url)
    await asyncio.to_thread(command.downgrade, config, "0006_consumer_group_name")
    assert await db.fetchval("select count(*) from information_schema.tables where table_name = 'promise_lines'") == 0
    await db.execute(
        "insert into returns.accounts (account_id, name, segment, owner_email) values"
        " ('ACC-1', 'Acme', 'strategic', 'kim@example.com'), ('ACC-2', 'Bolt', 'stable', null)"
    )

    await asyncio.to_thread(migrations.upgrade, "returns", database_url)

    assert await db.fetchval("select array_agg(version) from returns.accounts") == [1, 1]
    rows = await db.fetch("select topic, key, event_type, payload from returns.outbox order by key")
    assert [(r["topic"], r["key"], r["event_type"]) for r in rows] == [
        ("salesops.accounts", "ACC-1", "salesops.account.changed.v1"),
        ("salesops.accounts", "ACC-2", "salesops.account.changed.v1"),
    ]
    events = [CloudEvent.model_validate(json.loads(r["payload"])) for r in rows]
    data = [AccountChangedData.model_validate(e.data) for e in events]
    assert [(d.account_id, d.segment, d.owner_email, d.version) for d in data] == [
        ("ACC-1", "strategic", "kim@example.com", 1),
        ("ACC-2", "stable", None, 1),
    ]
    assert {e.source for e in events} == {"salesops/returns-service"}
