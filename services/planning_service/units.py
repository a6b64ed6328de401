"""Units of work for the handlers that commit in steps (a full re-plan, chunk by chunk): each is the store and
publisher of a fresh unit of work, committed when its block ends without an exception.

The publisher also takes events already encoded (`recompute.EncodingPublisher`): a chunk's store writes its
thousands of `mps.revised` events to the outbox in one statement, in the chunk's transaction, and the relay is
woken once the chunk commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from services.planning_service.handlers import Units
from services.planning_service.store import SqlStore, Store
from shared.db import UnitOfWork
from shared.events import CloudEvent, EventData, EventType
from shared.ports import Publisher
from shared.service import Runtime


class ChunkPublisher:
    """The unit of work's publisher, plus what writing encoded events needs: the envelope's source and trace
    context, the broker's limit, and a note that the relay must be woken after the commit."""

    def __init__(self, uow: UnitOfWork, max_event_bytes: int | None) -> None:
        self._uow = uow
        self.context: dict[str, Any] = uow.context
        self.source = uow.source
        self.traceparent = uow.traceparent
        self.max_event_bytes = max_event_bytes
        self.encoded = False

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        return self._uow.publish(event_type, key=key, subject=subject, data=data)

    def wrote_encoded_events(self) -> None:
        self.encoded = True


@asynccontextmanager
async def chunk_unit(
    runtime: Runtime, traceparent: str | None = None
) -> AsyncIterator[tuple[SqlStore, ChunkPublisher]]:
    """A fresh unit of work as a chunk's store and publisher, committed when the block ends without an
    exception; the relay is woken after the commit when the store wrote encoded events."""
    async with runtime.unit_of_work(traceparent) as uow:
        publisher = ChunkPublisher(uow, runtime.settings.kafka_max_request_bytes)
        yield SqlStore(uow.session), publisher
        await uow.commit()
        if publisher.encoded:
            runtime.relay.wake()


def units_of(runtime: Runtime, traceparent: str | None = None) -> Units:
    def unit() -> AbstractAsyncContextManager[tuple[Store, Publisher]]:
        return chunk_unit(runtime, traceparent)

    return unit
