"""In-memory stand-ins for handler unit tests: a publisher that records events, and per service a store
that keeps its rows in dictionaries (in the spirit of cosmicpython's `FakeUnitOfWork`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import CloudEvent, EventData, EventType, new_event


@dataclass(frozen=True)
class Published:
    type: EventType
    key: str
    subject: str
    data: Any


@dataclass
class RecordingPublisher:
    """What a unit of work would have written to the outbox, in order."""

    events: list[Published] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    source: str = "salesops/test"
    traceparent: str | None = None
    # Times a handler said it wrote events to the outbox itself (the unit of work then wakes the relay).
    outbox_writes: int = 0

    def wrote_outbox(self) -> None:
        self.outbox_writes += 1

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        self.events.append(Published(event_type, key, subject, data))
        return new_event(event_type, source="salesops/test", subject=subject, data=data)

    def types(self) -> list[EventType]:
        return [event.type for event in self.events]
