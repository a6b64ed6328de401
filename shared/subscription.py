"""What a service consumes: a `Subscription` (its consumer group, topics and one typed handler per event type)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.db import UnitOfWork
from shared.events import CloudEvent

EventHandler = Callable[[UnitOfWork, CloudEvent, Any], Awaitable[None]]
"""A consumer's typed function: the unit of work, the envelope and the event's validated `data` model."""


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

    With `finish`, the events of one fetched batch are handled in a single unit of work (each still claimed
    in the inbox) and `finish` runs once before it commits: work the handlers deferred into `uow.context`
    (say, re-planning the SKUs they touched) is done once per batch instead of once per event. Should the
    batch fail, its events are handled again one at a time, each followed by `finish`.
    """

    name: str
    topics: tuple[str, ...]
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    finish: Callable[[UnitOfWork], Awaitable[None]] | None = None
