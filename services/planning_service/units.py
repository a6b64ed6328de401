"""Units of work for the handlers that commit in steps (a full re-plan, chunk by chunk): each is the store and
publisher of a fresh unit of work, committed when its block ends without an exception.

The publisher also takes events already encoded (`recompute.EncodingPublisher`): a chunk's store writes its
thousands of `mps.revised` events to the outbox in one statement, in the chunk's transaction, and the relay is
woken once the chunk commits. The consumer's re-plan of a batch publishes through the same `UnitPublisher`.
After each unit the allocator hands its free heap back to the system
(`release_free_heap`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from services.planning_service.handlers import Units
from services.planning_service.store import SqlStore, Store
from shared.db import UnitOfWork
from shared.events import CloudEvent, EventData, EventType
from shared.ports import Publisher
from shared.service import Runtime


class UnitPublisher:
    """The unit of work's publisher, plus what writing encoded events needs (`recompute.EncodingPublisher`):
    the envelope's source and trace context, the broker's limit, and a note to the unit of work that events
    went to the outbox without `publish`, so that it wakes the relay after the commit."""

    def __init__(self, uow: UnitOfWork, max_event_bytes: int | None) -> None:
        self._uow = uow
        self.context: dict[str, Any] = uow.context
        self.source = uow.source
        self.max_event_bytes = max_event_bytes

    @property
    def traceparent(self) -> str | None:
        return self._uow.traceparent

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        return self._uow.publish(event_type, key=key, subject=subject, data=data)

    def wrote_encoded_events(self) -> None:
        self._uow.wrote_outbox()


@asynccontextmanager
async def chunk_unit(runtime: Runtime, traceparent: str | None = None) -> AsyncIterator[tuple[SqlStore, UnitPublisher]]:
    """A fresh unit of work as a chunk's store and publisher, committed when the block ends without an
    exception; the unit of work wakes the relay after the commit when the chunk wrote events."""
    async with runtime.unit_of_work(traceparent) as uow:
        yield SqlStore(uow.session), UnitPublisher(uow, runtime.settings.kafka_max_request_bytes)
        await uow.commit()
    release_free_heap()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_free_heap() -> None:
    """Give the heap pages left free back to the system (glibc's `malloc_trim`; nothing elsewhere). A chunk's
    documents (about 20 KB per SKU: weeks, changes, its event) are allocated outside Python's small-object
    arenas, and glibc keeps the pages they freed: without this the process stays some 50 MB above its size
    between chunks and after a full re-plan, although none of it is in use."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def units_of(runtime: Runtime, traceparent: str | None = None) -> Units:
    def unit() -> AbstractAsyncContextManager[tuple[Store, Publisher]]:
        return chunk_unit(runtime, traceparent)

    return unit
