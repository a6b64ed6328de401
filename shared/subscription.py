"""What a service consumes: a `Subscription` (its consumer group, topics and one typed handler per event type)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.db import UnitOfWork
from shared.events import CloudEvent

EventHandler = Callable[[UnitOfWork, CloudEvent, Any], Awaitable[None]]
"""A consumer's typed function: the unit of work, the envelope and the event's validated `data` model."""

BatchHandler = Callable[[UnitOfWork, Sequence[tuple[CloudEvent, Any]]], Awaitable[None]]
"""A consumer's function for several events of one type at once: the unit of work and, in the order they were
read, each event's envelope and validated `data` model."""


def consumer_group(service: str) -> str:
    """The consumer group (and inbox consumer name) of a service's subscription: `<service>-service`, the name
    its producer's client id also carries."""
    return f"{service}-service"


@dataclass(frozen=True)
class Subscription:
    """A consumer group of one service: the topics it reads and a handler per event type it cares about.

    `name` is the consumer group, which is also the consumer's name in the service's inbox; follow
    `consumer_group(service)`. Renaming a group makes it read its topics again from the beginning, and its
    inbox rows must be renamed with it, or what was handled would be handled again.

    Types of the contract without a handler here are acknowledged and skipped; types outside the contract
    are dead-lettered.

    With `finish`, the events of one fetched batch are handled in a single unit of work and `finish` runs
    once before it commits: work the handlers deferred into `uow.context` (say, re-planning the SKUs they
    touched) is done once per batch instead of once per event. The batch's events are claimed in the inbox
    together, in one statement, and duplicates are left out. In a batch, a type in `batch_handlers` is handed
    over several events at a time (each run of consecutive events whose types share it, in the order read),
    so that its writes can be set-based. Should the batch fail, its events are handled again one at a time,
    each followed by `finish`, by the type's handler in `handlers` (or its batch handler, given a list of
    one). List a batched type in `handlers` too: `handlers` is what the interface documents say is consumed.
    """

    name: str
    topics: tuple[str, ...]
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    finish: Callable[[UnitOfWork], Awaitable[None]] | None = None
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)

    @property
    def batched(self) -> bool:
        """Whether a fetched batch is handled in one unit of work (with `finish` or batch handlers)."""
        return self.finish is not None or bool(self.batch_handlers)

    def handler(self, event_type: str) -> EventHandler | None:
        """The function that handles one event of `event_type` alone (a batch handler given a list of one), if any."""
        single = self.handlers.get(event_type)
        if single is not None:
            return single
        batch = self.batch_handlers.get(event_type)
        if batch is None:
            return None

        async def one(uow: UnitOfWork, event: CloudEvent, data: Any) -> None:
            await batch(uow, [(event, data)])

        return one
