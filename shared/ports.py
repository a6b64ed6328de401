"""What handlers need of the unit of work, as a protocol: the real `UnitOfWork` satisfies it, and handler
tests pass a fake that records the events instead."""

from __future__ import annotations

from typing import Any, Protocol

from shared.events import CloudEvent, EventData, EventType


class Publisher(Protocol):
    """Records events to publish through the outbox if the unit of work commits; `context` holds work a
    handler defers to the end of the unit of work (see `Subscription.finish`)."""

    context: dict[str, Any]

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent: ...
