"""Database plumbing: the async engine, the unit of work, and how to tell a transient failure from a bug."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from shared.events import CloudEvent, EventData, EventType, new_event, topic_of
from shared.settings import Settings

# SQLSTATE classes worth retrying: connection exceptions, insufficient resources, operator intervention
# (e.g. the server shutting down), and serialization failures / deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01")


# Pooled connections older than this are replaced at their next checkout (idle connections that a firewall or a
# proxy may have dropped silently).
POOL_RECYCLE_S = 1800


def create_engine(settings: Settings, *, checkout_wait: Callable[[float], None] | None = None) -> AsyncEngine:
    """The service's engine. No pre-ping (a BEGIN, a query and a ROLLBACK on every checkout): a connection the
    server closed (a restart, an administrator's terminate) is known closed to asyncpg at once and is replaced at
    checkout by `_replace_closed`; one that breaks during use fails that transaction as transient (503 to a
    request, a retry for the relay and the consumers), and SQLAlchemy then replaces every connection of the pool
    that is older than the failure. `checkout_wait` is told how long each checkout took, in seconds (see
    `TimedPool`)."""
    engine = create_async_engine(
        settings.database_url,
        poolclass=TimedPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=POOL_RECYCLE_S,
        pool_timeout=10,
    )
    timed_pool(engine).checkout_wait = checkout_wait
    event.listen(engine.sync_engine, "checkout", _replace_closed)
    event.listen(engine.sync_engine, "handle_error", _discard_out_of_step)
    return engine


class TimedPool(AsyncAdaptedQueuePool):
    """The engine's pool, timing each checkout: from asking for a connection to having one, so the wait for a
    free connection when all are taken, and the connection of a new one when the pool opens another (or replaces
    a closed or recycled one). `waiting` is how many checkouts are under way now. A pool the engine recreates (after
    a disconnect, or `dispose`) keeps its `checkout_wait`."""

    checkout_wait: Callable[[float], None] | None = None
    waiting: int = 0

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        self.waiting += 1
        try:
            return super().connect()
        finally:
            self.waiting -= 1
            if self.checkout_wait is not None:
                self.checkout_wait(time.perf_counter() - started)

    def recreate(self) -> TimedPool:
        pool = super().recreate()
        assert isinstance(pool, TimedPool)
        pool.checkout_wait = self.checkout_wait
        return pool


def timed_pool(engine: AsyncEngine) -> TimedPool:
    """The pool of an engine `create_engine` made, as it is now (disposing of the engine replaces it)."""
    pool = engine.sync_engine.pool
    assert isinstance(pool, TimedPool)
    return pool


def _replace_closed(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """A pooled connection whose socket the server closed is discarded at checkout (no round trip: asyncpg saw
    the connection end); the pool then checks out another one, or connects anew."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


def _discard_out_of_step(context: ExceptionContext) -> None:
    """A connection whose driver lost track of its protocol (`_out_of_step`) counts as disconnected, so SQLAlchemy
    discards it rather than returning it to the pool, where every later checkout would fail on it."""
    if _out_of_step(context.original_exception):
        context.is_disconnect = True


def _out_of_step(exc: BaseException | None) -> bool:
    """asyncpg's `InternalClientError` ("cannot switch to state ...; another operation is in progress"): the
    connection's protocol is in a state no operation expects, as a connection the server terminated in the middle
    of a transaction can be left while its socket still looks open. Nothing more can run on it."""
    return any(type(cause).__name__ == "InternalClientError" for cause in _causes(exc))


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception and what caused it, in turn (`__cause__`, else `__context__`)."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed (database or network unavailable), False for bugs and bad data."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
        return _is_network_error(exc.orig)
    # The driver's own errors, from statements run on its connection (`driver_connection`).
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return True
    return _is_network_error(exc)


def _is_network_error(exc: BaseException | None) -> bool:
    """The network or the connection failed, here or anywhere in what caused `exc`: a driver left out of step with
    its connection (`_out_of_step`) counts, since only another connection can go on."""
    return any(
        isinstance(cause, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError))
        or type(cause).__name__ in _CONNECTION_ERRORS
        for cause in _causes(exc)
    )


_CONNECTION_ERRORS = {"ConnectionDoesNotExistError", "CannotConnectNowError", "InterfaceError", "InternalClientError"}


async def database_ready(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled once for asyncpg, to run on the driver's connection itself (`Connection.fetch` with its
    cache of prepared statements): `sql` with positional parameters, `names` the parameter each position takes,
    `defaults` the values the statement binds itself (a literal compared with a column, say). Values go to the
    driver as it takes them: JSON columns as JSON text (the engine's codecs decode them)."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, statement: Any) -> DriverStatement:
        compiled = statement.compile(dialect=asyncpg_dialect())
        names = tuple(compiled.positiontup or ())
        bound = {name: value for name, value in compiled.params.items() if name in names and value is not None}
        return cls(str(compiled), names, bound)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.defaults[name] for name in self.names]


@asynccontextmanager
async def driver_connection(engine: AsyncEngine, *, discard_on_error: bool = False) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled connection, for a statement that is a transaction of its own and runs
    on the driver alone: no BEGIN and COMMIT round trips, no SQLAlchemy statement processing, the driver's cache
    of prepared statements. A caller may run a transaction of its own on it (BEGIN ... COMMIT or ROLLBACK);
    returning the connection to the pool rolls nothing back, so one left inside a transaction, with whatever
    locks it holds, is discarded rather than handed to the next user. A connection left in doubt (cancelled
    mid-statement, a driver or network error) is discarded too; after an error the server reported (the
    statement rolled back) or a caller's own it goes back as it is, unless `discard_on_error` (a connection that
    holds something for its session, an advisory lock say, is discarded after any error)."""
    pooled = await engine.raw_connection()
    connection: Any = pooled.driver_connection
    try:
        yield connection
    except BaseException as exc:
        if (
            discard_on_error
            or not isinstance(exc, Exception)
            or isinstance(exc, asyncpg.InterfaceError)
            or _is_network_error(exc)
        ):
            await greenlet_spawn(pooled.invalidate, exc)
        raise
    finally:
        if pooled.dbapi_connection is not None and connection.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


class UnitOfWork:
    """One database transaction plus the events it will publish through the outbox.

    Only the boundary (an HTTP endpoint or a consumer) commits; handlers record state and events.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        source: str,
        record_outbox: Callable[[AsyncSession, list[tuple[CloudEvent, str, str]]], Any],
        on_commit: Callable[[], None],
        traceparent: str | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._record_outbox = record_outbox
        self._on_commit = on_commit
        self.source = source
        self.traceparent = traceparent
        self.pending: list[tuple[CloudEvent, str, str]] = []
        # Events a handler wrote to the outbox itself (not through `publish`): the relay is woken all the same.
        self._wrote_outbox = False
        # Work handlers defer to the end of the unit of work (see `Subscription.finish`).
        self.context: dict[str, Any] = {}
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessionmaker()
        await self._session.begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self.session, None
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()
            self.pending.clear()
            self.context.clear()
            self._wrote_outbox = False

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        """Record an event to be published if and only if this unit of work commits."""
        event = new_event(event_type, source=self.source, subject=subject, data=data, traceparent=self.traceparent)
        self.pending.append((event, topic_of(event_type).value, key))
        return event

    def wrote_outbox(self) -> None:
        """Say that events went to the outbox in this transaction other than through `publish` (rows a handler
        wrote itself): the relay is woken once it commits, as for published events."""
        self._wrote_outbox = True

    async def commit(self) -> None:
        had_events = bool(self.pending) or self._wrote_outbox
        if self.pending:
            await self._record_outbox(self.session, self.pending)
            self.pending = []
        await self.session.commit()
        self._wrote_outbox = False
        if had_events:
            self._on_commit()
