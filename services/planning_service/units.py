"""Units of work for the handlers that commit in steps (a full re-plan, chunk by chunk): each is the store and
publisher of a fresh unit of work, committed when its block ends without an exception."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.planning_service.handlers import Units
from services.planning_service.store import SqlStore, Store
from shared.ports import Publisher
from shared.service import Runtime


def units_of(runtime: Runtime, traceparent: str | None = None) -> Units:
    @asynccontextmanager
    async def unit() -> AsyncIterator[tuple[Store, Publisher]]:
        async with runtime.unit_of_work(traceparent) as uow:
            yield SqlStore(uow.session), uow
            await uow.commit()

    return unit
