"""Fixtures for tests against the real infrastructure: an embedded PostgreSQL server for the session, a fresh
database (from a migrated template) and a fresh broker per test, and helpers to drive services in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings

from salesops.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from shared import migrations
from shared.auth import CLIENT_ROLES, generate_keys_file
from shared.events import ALL_TOPICS
from shared.settings import Settings

# The reliability suite's run report is written by the process that reports the session (the controller, with
# test workers), which loads only this conftest.
pytest_plugins = ["tests.reliability.summary"]

TEMPLATE_DB = "salesops_template"

# Property tests draw the same examples on every run (`repeatable`), so a run's verdict depends on the code alone;
# `make fuzz` runs them with fresh random examples (`explore`) to look further.
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile("repeatable")

# Folders whose files are one unit of work under `--dist loadfile`, run one after another on one worker:
# - the reliability scenarios kill, restart and overload whole systems with timings set for a machine they do not
#   share with another heavy test (`make test` runs them on their own; in one `-n 2` run they stay on one worker);
# - the console's browser tests share one running system (`stack`, package-scoped), started once for all of them
#   instead of once per file on whichever worker took it.
TOGETHER = ("tests/reliability/", "tests/browser/")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the files of each folder in `TOGETHER` as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileKeepingTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            folder = next((f for f in TOGETHER if nodeid.startswith(f)), None)
            return folder or super()._split_scope(nodeid)

    return LoadFileKeepingTogether(config, log)


def _asyncpg_dsn(sqlalchemy_url: str, database: str) -> str:
    # postgresql+asyncpg://postgres@/postgres?host=/dir  ->  postgresql://postgres@/<database>?host=/dir
    head, _, query = sqlalchemy_url.partition("?")
    base = head.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)[0]
    return f"{base}/{database}?{query}"


def _with_database(sqlalchemy_url: str, database: str) -> str:
    head, _, query = sqlalchemy_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{database}?{query}"


@dataclass
class PostgresServer:
    embedded: EmbeddedPostgres
    url: str

    def dsn(self, database: str) -> str:
        return _asyncpg_dsn(self.url, database)

    async def create_database(self, *, migrated: bool = True) -> str:
        """A fresh database: a copy of the migrated template, or empty."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{TEMPLATE_DB}"' if migrated else ""))
        finally:
            await conn.close()
        return _with_database(self.url, name)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = embedded.start()
    server = PostgresServer(embedded, url)

    async def make_template() -> None:
        conn = await asyncpg.connect(server.dsn("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()

    asyncio.run(make_template())
    template_url = _with_database(url, TEMPLATE_DB)
    for service in migrations.SERVICES:
        migrations.upgrade(service, template_url)
    yield server
    embedded.stop(mode="immediate")
    # Services configure logging onto pytest's captured stderr, which is closed by the time atexit hooks log.
    logging.getLogger().handlers.clear()


@pytest.fixture
async def database_url(postgres_server: PostgresServer) -> str:
    """A fresh, fully migrated database for one test."""
    return await postgres_server.create_database()


@pytest.fixture
async def db(database_url: str, postgres_server: PostgresServer) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection to the test's database, to check what was stored."""
    conn = await asyncpg.connect(_asyncpg_dsn(database_url, database_url.split("?")[0].rsplit("/", 1)[1]))
    yield conn
    await conn.close()


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A fresh broker for one test, with every contract topic created."""
    embedded = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log", topics=ALL_TOPICS, partitions=3)
    embedded.start()
    yield embedded
    embedded.stop(grace_s=0.1)


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Keys for every client role (plus a revoked one), written to a keys file."""
    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    keys = generate_keys_file(path, roles=CLIENT_ROLES)
    document = json.loads(keys.model_dump_json())
    document["keys"].append(
        {
            "name": "revoked",
            "key": "sk_revoked_" + uuid.uuid4().hex,
            "scopes": ["promotions:write"],
            "revoked": True,
        }
    )
    path.write_text(json.dumps(document))
    by_name = {k["name"]: k["key"] for k in document["keys"]}
    return {"path": path, **by_name}


@pytest.fixture
def settings(database_url: str, broker: EmbeddedBroker, api_keys: dict[str, Any]) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,
        kafka_request_timeout_ms=3000,
        api_keys_file=api_keys["path"],
        topic_partitions=3,
        relay_poll_interval_s=0.1,
        consumer_backoff_initial_s=0.05,
        consumer_backoff_max_s=0.5,
        db_pool_size=5,
        consumer_session_timeout_ms=2000,
        consumer_heartbeat_interval_ms=300,
        kafka_metadata_max_age_ms=2000,
        log_format="console",
    )
