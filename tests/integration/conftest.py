"""Fixtures of the integration tests beyond the shared ones (`tests/conftest.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session on the test's database inside one transaction, for tests of a store's statements."""
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            yield session
    finally:
        await engine.dispose()
