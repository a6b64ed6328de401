"""A full re-plan's unit of work gives the heap its chunk left free back to the system."""

from __future__ import annotations

import os

import psutil
import pytest

from services.planning_service.units import _malloc_trim, release_free_heap


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
