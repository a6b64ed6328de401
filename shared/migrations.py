"""Alembic per service: each service keeps its migrations and version table inside its own schema."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

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
