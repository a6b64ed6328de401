"""`salesops migrate` against the real PostgreSQL: where each service stands, taking one back down to a migration
(the supported way back to an earlier version), and up again."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from typer.testing import CliRunner, Result

from salesops.cli import app
from shared import migrations

BEFORE_COMPACT = "0007_plan_documents_json"


async def migrate(database_url: str, *args: str) -> Result:
    """The command as an operator runs it, in a thread of its own (it runs its own event loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app, ["migrate", *args], env={"SALESOPS_DATABASE_URL": database_url}, catch_exceptions=False
    )


def said(result: Result) -> str:
    """The command's output as one line (the console wraps long lines at the terminal's width)."""
    return " ".join(result.output.split())


async def planning_revision(db: asyncpg.Connection) -> Any:
    return await db.fetchval("SELECT version_num FROM planning.alembic_version")


async def test_status_names_every_service_at_its_head(database_url: str) -> None:
    shown = await migrate(database_url, "--status")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == list(migrations.SERVICES)
    for line in lines:
        assert line.endswith("(at head)"), line
    assert "planning: 0008_compact_plan_documents (at head)" in lines


async def test_down_to_a_migration_and_up_again(database_url: str, db: asyncpg.Connection) -> None:
    down = await migrate(database_url, "--service", "planning", "--down-to", BEFORE_COMPACT)
    assert down.exit_code == 0, down.output
    assert f"migrated planning down to {BEFORE_COMPACT}" in said(down)
    assert await planning_revision(db) == BEFORE_COMPACT

    shown = await migrate(database_url, "--status", "--service", "planning")
    assert said(shown) == f"planning: {BEFORE_COMPACT} (head is 0008_compact_plan_documents)"
    # the other services were left alone
    assert await db.fetchval("SELECT version_num FROM returns.alembic_version") == "0011_cost_recounts"

    up = await migrate(database_url, "--service", "planning")
    assert up.exit_code == 0, up.output
    assert await planning_revision(db) == "0008_compact_plan_documents"


async def test_a_revision_that_is_unknown_or_not_below_changes_nothing(
    database_url: str, db: asyncpg.Connection
) -> None:
    unknown = await migrate(database_url, "--service", "planning", "--down-to", "0099_nothing")
    assert unknown.exit_code == 1
    assert "planning has no migration '0099_nothing'" in said(unknown)

    at_head = await migrate(database_url, "--service", "planning", "--down-to", "0008_compact_plan_documents")
    assert at_head.exit_code == 1
    assert "is not below it" in said(at_head)

    other_service = await migrate(database_url, "--service", "returns", "--down-to", BEFORE_COMPACT)
    assert other_service.exit_code == 1
    assert "returns has no migration" in said(other_service)
    assert await planning_revision(db) == "0008_compact_plan_documents"
    assert await db.fetchval("SELECT version_num FROM returns.alembic_version") == "0011_cost_recounts"


async def test_down_to_without_a_service_or_with_status_is_refused_naming_the_option(database_url: str) -> None:
    without_service = await migrate(database_url, "--down-to", BEFORE_COMPACT)
    assert without_service.exit_code == 2
    assert "--down-to" in said(without_service) and "--service" in said(without_service)

    with_status = await migrate(database_url, "--service", "planning", "--down-to", BEFORE_COMPACT, "--status")
    assert with_status.exit_code == 2
    assert "--status" in said(with_status)


async def test_status_of_a_database_never_migrated(postgres_server: Any) -> None:
    bare = await postgres_server.create_database(migrated=False)
    shown = await migrate(bare, "--status", "--service", "returns")
    assert shown.exit_code == 0, shown.output
    assert said(shown) == "returns: not migrated (head is 0011_cost_recounts)"
