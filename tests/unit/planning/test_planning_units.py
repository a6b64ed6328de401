"""A full re-plan's unit of work: the relay is woken once a chunk that wrote encoded events commits, and the
heap its chunk left free goes back to the system."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from services.planning_service.units import _malloc_trim, chunk_unit, release_free_heap
from shared.db import UnitOfWork

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Session:
    """A unit of work's session as far as its transaction goes."""

    def __init__(self) -> None:
        self.open = False
        self.commits = 0

    async def begin(self) -> None:
        self.open = True

    def in_transaction(self) -> bool:
        return self.open

    async def commit(self) -> None:
        self.commits += 1
        self.open = False

    async def rollback(self) -> None:
        self.open = False

    async def close(self) -> None:
        pass


def _runtime(session: _Session, wakes: list[int]) -> Any:
    def unit_of_work(traceparent: str | None = None) -> UnitOfWork:
        async def record_outbox(_session: Any, _events: Any) -> None:
            raise AssertionError("nothing was published through the unit of work")

        return UnitOfWork(
            lambda: session,  # type: ignore[arg-type]
            source="salesops/test",
            record_outbox=record_outbox,
            on_commit=lambda: wakes.append(session.commits),
            traceparent=traceparent,
        )

    return SimpleNamespace(unit_of_work=unit_of_work, settings=SimpleNamespace(kafka_max_request_bytes=900_000))


async def test_a_chunk_that_wrote_encoded_events_wakes_the_relay_after_its_commit():
    session, wakes = _Session(), list[int]()
    async with chunk_unit(_runtime(session, wakes), TRACEPARENT) as (store, publisher):
        assert store.session is session
        assert (publisher.source, publisher.traceparent, publisher.max_event_bytes) == (
            "salesops/test",
            TRACEPARENT,
            900_000,
        )
        publisher.wrote_encoded_events()
        assert wakes == []
    assert wakes == [1]  # once, after the one commit


async def test_a_chunk_without_events_or_that_fails_does_not_wake_the_relay():
    session, wakes = _Session(), list[int]()
    async with chunk_unit(_runtime(session, wakes)) as (_store, _publisher):
        pass
    assert (session.commits, wakes) == (1, [])
    with pytest.raises(RuntimeError, match="chunk failed"):
        async with chunk_unit(_runtime(session, wakes)) as (_store, publisher):
            publisher.wrote_encoded_events()
            raise RuntimeError("chunk failed")
    assert (session.commits, wakes) == (1, [])


@pytest.mark.skipif(_malloc_trim() is None, reason="glibc's malloc_trim only")
def test_the_free_heap_between_live_documents_goes_back_to_the_system():
    process = psutil.Process(os.getpid())
    # documents the size of a first plan's changes, each followed by a small one that stays: freeing the large
    # ones leaves holes in the heap that glibc keeps (its top cannot shrink past the small ones)
    documents = []
    for n in range(6_000):
        documents.append(bytes(14_000 + n % 7))
        documents.append(bytes(600 + n % 5))
    kept = documents[1::2]
    del documents
    before = process.memory_info().rss
    release_free_heap()
    after = process.memory_info().rss
    assert len(kept) == 6_000
    assert before - after > 50 * 2**20, f"{(before - after) / 2**20:.1f} MB given back"
