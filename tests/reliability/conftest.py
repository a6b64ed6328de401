"""Reliability scenarios: every test is marked `reliability`; the run report (`tests.reliability.summary`) is
printed at the end of the session and written to test-artifacts/reliability-summary.json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from salesops.infra import EmbeddedPostgres
from shared import migrations
from tests.reliability.harness import FULL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def full_run() -> bool:
    return FULL


@pytest.fixture
async def private_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of this test alone (stopping it leaves the session's server alone), migrated."""
    embedded = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(embedded.start)
    for service in migrations.SERVICES:
        await asyncio.to_thread(migrations.upgrade, service, url)
    try:
        yield embedded, url
    finally:
        await asyncio.to_thread(embedded.stop, "immediate")
