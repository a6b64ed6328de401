"""The engine's pool without a pre-ping: connections the server closed are replaced, not handed out."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, driver_connection, is_transient, timed_pool
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_connections_the_server_closed_are_replaced_at_checkout(database_url, db) -> None:
    engine = create_engine(Settings(database_url=database_url, db_pool_size=3, db_max_overflow=0))
    try:
        # Three pooled connections, all idle in the pool afterwards.
        async def backend_pid() -> int:
            async with engine.connect() as conn:
                await asyncio.sleep(0.05)  # held together, so the pool opens three
                return int(await conn.scalar(text("SELECT pg_backend_pid()")))

        pids = set(await asyncio.gather(*(backend_pid() for _ in range(3))))
        assert len(pids) == 3
        # The server ends them (as a restart or an administrator would).
        await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))

        async def gone() -> bool:
            left = await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids))
            return int(left) == 0

        for _ in range(100):
            if await gone():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the client side reads the end of each connection

        # Every checkout gets a live connection: none of the closed ones, and no error.
        answers = await asyncio.gather(*(backend_pid() for _ in range(3)))
        assert not set(answers) & pids
    finally:
        await engine.dispose()


async def driver_backend_pid(engine: AsyncEngine) -> int:
    async with driver_connection(engine) as connection:
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def test_a_driver_connection_goes_back_to_the_pool_unless_left_in_doubt(database_url) -> None:
    """Statements run on the driver itself, outside any transaction: the connection is returned as it is, after a
    statement the server refused too (that statement rolled back alone); one cancelled mid-statement is discarded,
    and the pool hands out a working one next."""
    engine = create_engine(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    try:
        first = await driver_backend_pid(engine)
        async with driver_connection(engine) as connection:
            await connection.execute("CREATE TEMP TABLE kept (n int)")
            await connection.execute("INSERT INTO kept VALUES (1)")
            assert not connection.is_in_transaction()  # each statement committed on its own
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with driver_connection(engine) as connection:
                await connection.fetchval("SELECT 1 / 0")
        assert await driver_backend_pid(engine) == first
        async with driver_connection(engine) as connection:
            assert await connection.fetchval("SELECT count(*) FROM kept") == 1

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), driver_connection(engine) as connection:
                await connection.fetchval("SELECT pg_sleep(10)")
        assert await driver_backend_pid(engine) != first
        async with engine.connect() as conn:  # the pool's one connection serves SQLAlchemy as before
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_a_driver_connection_left_inside_a_transaction_is_discarded_with_its_locks(database_url, db) -> None:
    """A caller that begins a transaction on the driver and leaves without COMMIT or ROLLBACK (a bug, or an error
    its own handling missed) does not hand the next user a connection inside that transaction, nor keep its
    locks; one whose transaction ended goes back to the pool."""
    engine = create_engine(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    try:
        first = await driver_backend_pid(engine)
        async with driver_connection(engine) as connection:
            await connection.execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
            await connection.execute("COMMIT")
        assert await driver_backend_pid(engine) == first

        with pytest.raises(RuntimeError):
            async with driver_connection(engine) as connection:
                await connection.execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
                raise RuntimeError("the caller's own error, before its ROLLBACK")
        assert await db.fetchval("SELECT pg_try_advisory_xact_lock(4242)")  # the lock went with the connection
        async with driver_connection(engine) as connection:
            assert not connection.is_in_transaction()
            assert int(await connection.fetchval("SELECT pg_backend_pid()")) != first
    finally:
        await engine.dispose()


async def test_every_checkout_is_timed_by_the_pool_the_engine_has_now(database_url) -> None:
    """Checkouts are timed, a connection that had to be opened included; the pool a dispose makes keeps timing."""
    waits: list[float] = []
    engine = create_engine(
        Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0), checkout_wait=waits.append
    )
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert len(waits) == 2 and all(w >= 0 for w in waits)
        # The first checkout opened the connection (a round trip at least); the second took it from the pool.
        assert waits[0] > waits[1]
        old = timed_pool(engine)
        await engine.dispose()
        assert timed_pool(engine) is not old
        async with driver_connection(engine) as connection:
            await connection.fetchval("SELECT 1")
        assert len(waits) == 3
    finally:
        await engine.dispose()


async def test_a_connection_whose_driver_lost_its_protocol_state_is_discarded_on_both_paths(
    database_url, monkeypatch
) -> None:
    """asyncpg's InternalClientError ("cannot switch to state ...; another operation is in progress", as a connection
    the server terminated mid-transaction can be left while its socket looks open) is transient, answered 503, and
    the connection is discarded, on the driver's path and through SQLAlchemy alike: the next checkout is another."""
    engine = create_engine(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    out_of_step = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    try:
        first = await driver_backend_pid(engine)
        with pytest.raises(asyncpg.exceptions.InternalClientError) as raised:
            async with driver_connection(engine) as connection:
                await connection.fetchval("SELECT 1")
                raise out_of_step
        assert is_transient(raised.value)
        second = await driver_backend_pid(engine)
        assert second != first

        async def prepare(*_args: object, **_kwargs: object) -> None:
            raise out_of_step

        with pytest.raises(DBAPIError) as through_sqlalchemy:
            async with engine.connect() as conn:
                monkeypatch.setattr(asyncpg.Connection, "prepare", prepare)
                try:
                    await conn.execute(text("SELECT 2"))
                finally:
                    monkeypatch.undo()
        assert is_transient(through_sqlalchemy.value)
        assert through_sqlalchemy.value.connection_invalidated
        assert await driver_backend_pid(engine) not in {first, second}
    finally:
        await engine.dispose()
