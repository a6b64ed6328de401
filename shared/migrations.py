"""Alembic per service: each service keeps its migrations and version table inside its own schema."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import async_engine_from_config, create_async_engine

SERVICES = ("promotion", "fulfillment", "returns", "planning")


def alembic_config(service: str, database_url: str) -> Config:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    location = resources.files(f"services.{service}_service") / "migrations"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Run a service's migrations up to `revision` (blocking; call it from a thread inside an event loop)."""
    command.upgrade(alembic_config(service, database_url), revision)


class MigrationError(ValueError):
    """A migration asked for that cannot run: an unknown revision, or one that is not below the current one."""


@dataclass(frozen=True)
class Revision:
    """Where a service's schema stands: its current revision (None: never migrated) and its migrations' head."""

    service: str
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def downgrade(service: str, database_url: str, revision: str) -> None:
    """Take a service's schema back down to `revision`, which must be one of its migrations below the current
    one; each migration's downgrade runs in turn (blocking, like `upgrade`). Nothing runs when it is not."""
    config = alembic_config(service, database_url)
    script = ScriptDirectory.from_config(config)
    try:
        target = script.get_revision(revision)
    except CommandError as error:
        raise MigrationError(f"{service} has no migration {revision!r}") from error
    if target is None:
        raise MigrationError(f"{service} has no migration {revision!r}")
    current = asyncio.run(_current(service, database_url))
    below = {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
    if target.revision == current or target.revision not in below:
        raise MigrationError(f"{service} is at {current or 'no revision'}; {revision!r} is not below it")
    command.downgrade(config, target.revision)


def status(service: str, database_url: str) -> Revision:
    """A service's current revision and head (blocking: call it from a thread inside an event loop)."""
    head = ScriptDirectory.from_config(alembic_config(service, database_url)).get_current_head()
    assert head is not None, f"{service} has migrations"
    return Revision(service, asyncio.run(_current(service, database_url)), head)


async def _current(service: str, database_url: str) -> str | None:
    """The revision in the service's version table (its schema is named after it), None without one."""
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            try:
                found = await connection.execute(text(f'SELECT version_num FROM "{service}".alembic_version'))
            except ProgrammingError:  # no version table yet: never migrated
                return None
            return found.scalar_one_or_none()
    finally:
        await engine.dispose()


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `env.py`: online migrations over the async driver, schema-scoped."""
    schema = target_metadata.schema
    assert schema is not None, "every service's metadata names its schema"
    config = context.config

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        section: dict[str, Any] = config.get_section(config.config_ini_section, {})
        engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())
