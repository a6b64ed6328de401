"""What a running service is made of (`ServiceSpec`, `Runtime`) and the FastAPI dependencies that reach it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import inbox, outbox
from shared.auth import KeyStore
from shared.consumer import EventConsumer
from shared.db import UnitOfWork, create_engine, timed_pool
from shared.events import ALL_TOPICS, CloudEvent, EventData, EventType, new_event, topic_of
from shared.kafka import Producer
from shared.metrics import Metrics
from shared.relay import OutboxRelay
from shared.settings import Settings
from shared.subscription import Subscription
from shared.tracing import Tracing

BackgroundTask = Callable[["Runtime"], Coroutine[Any, Any, None]]


@dataclass
class ServiceSpec:
    """What makes a service itself: its name, schema, tables, routes, subscriptions and background tasks."""

    name: str
    metadata: MetaData
    routers: Sequence[APIRouter]
    subscriptions: Sequence[Subscription] = ()
    background: Sequence[BackgroundTask] = ()
    description: str = ""
    # The contract topics this service is the producer of (described in its /asyncapi.json).
    publishes: Sequence[str] = ()
    version: str = "1.0.0"

    @property
    def schema(self) -> str:
        assert self.metadata.schema is not None
        return self.metadata.schema

    @property
    def source(self) -> str:
        return f"salesops/{self.name}-service"

    @property
    def outbox(self) -> Table:
        return self.metadata.tables[f"{self.schema}.outbox"]

    @property
    def inbox(self) -> Table:
        return self.metadata.tables[f"{self.schema}.inbox"]


@dataclass
class Runtime:
    """Everything a running service shares between requests, consumers and background tasks."""

    spec: ServiceSpec
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: Producer
    relay: OutboxRelay
    keys: KeyStore
    metrics: Metrics
    tracing: Tracing
    consumers: list[EventConsumer] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def unit_of_work(self, traceparent: str | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.sessionmaker,
            source=self.spec.source,
            record_outbox=lambda session, events: outbox.record_events(
                session, self.spec.outbox, events, max_bytes=self.settings.kafka_max_request_bytes
            ),
            on_commit=self.relay.wake,
            traceparent=traceparent,
        )

    def wake(self, name: str) -> asyncio.Event:
        """The event that wakes the background task `name`: set after the commit of work it should pick up, made on
        first use and kept for the runtime's life."""
        key = f"wake:{name}"
        event = self.state.get(key)
        if event is None:
            event = self.state[key] = asyncio.Event()
        assert isinstance(event, asyncio.Event)
        return event

    def encoded_event(
        self, event_type: EventType, *, key: str, subject: str, data: EventData, traceparent: str | None = None
    ) -> outbox.EncodedEvent:
        """An event as the outbox stores it, for a statement that writes it without a unit of work (see
        `shared.db.driver_connection`), measured as the producer will measure it (`EventTooLarge`). Whoever
        writes it wakes the relay (`relay.wake`) once it is stored."""
        event = new_event(event_type, source=self.spec.source, subject=subject, data=data, traceparent=traceparent)
        return outbox.encode_event(
            event, topic_of(event_type).value, key, max_bytes=self.settings.kafka_max_request_bytes
        )

    async def claim(self, uow: UnitOfWork, consumer: str, event: CloudEvent) -> bool:
        return await inbox.claim(uow.session, self.spec.inbox, consumer, event)

    async def claim_many(self, uow: UnitOfWork, consumer: str, events: Sequence[CloudEvent]) -> set[str]:
        return await inbox.claim_many(uow.session, self.spec.inbox, consumer, events)


def build_runtime(
    spec: ServiceSpec, settings: Settings, *, metrics: Metrics | None = None, tracing: Tracing | None = None
) -> Runtime:
    metrics = metrics or Metrics()
    engine = create_engine(settings, checkout_wait=metrics.process.checkout_wait(spec.name))
    metrics.process.watch_pool(spec.name, lambda: timed_pool(engine))
    tracing = tracing or Tracing()
    producer = Producer(settings, client_id=f"{spec.name}-service", topics=ALL_TOPICS)
    relay = OutboxRelay(
        engine=engine,
        table=spec.outbox,
        producer=producer,
        name=spec.name,
        metrics=metrics,
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
        gather_s=settings.relay_gather,
        retention=timedelta(days=settings.relay_retention_days),
        max_attempts=settings.relay_max_attempts,
        republish_on_new_broker=settings.relay_republish_on_new_broker,
        tracing=tracing,
    )
    runtime = Runtime(
        spec=spec,
        settings=settings,
        engine=engine,
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        producer=producer,
        relay=relay,
        keys=KeyStore(settings.api_keys_file),
        metrics=metrics,
        tracing=tracing,
    )
    runtime.consumers = [
        EventConsumer(
            sub,
            settings=settings,
            producer=producer,
            unit_of_work=runtime.unit_of_work,
            claim=runtime.claim,
            claim_many=runtime.claim_many,
            metrics=metrics,
            tracing=tracing,
        )
        for sub in spec.subscriptions
    ]
    return runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    runtime = get_runtime(request)
    async with runtime.unit_of_work(request.state.traceparent) as uow:
        yield uow


async def _runtime_dependency(request: Request) -> Runtime:
    """`get_runtime` as an async dependency, so FastAPI calls it on the event loop (not in its thread pool)."""
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow)]
