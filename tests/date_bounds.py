"""What the date-range property tests share: the four services running together, dates from the edges of the
calendar, hypothesis driven from a worker thread against the services' event loop, and the accounting of
what each consumer did with an event (processed, through its inbox, or dead-lettered)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from services.fulfillment_service import consumer as fulfillment_consumer
from services.fulfillment_service.app import build_app as fulfillment_app
from services.fulfillment_service.domain import SpikeRule
from services.planning_service import consumer as planning_consumer
from services.planning_service.app import build_app as planning_app
from services.planning_service.settings import PlanningSettings
from services.promotion_service import consumer as promotion_consumer
from services.promotion_service.app import build_app as promotion_app
from services.returns_service import consumer as returns_consumer
from services.returns_service.app import build_app as returns_app
from services.returns_service.settings import ReturnsSettings
from shared.events import Topic, dead_letter_topic
from shared.settings import Settings
from shared.types import MAX_DATE, MIN_DATE
from tests.support import eventually, running

T = TypeVar("T")

EDGES: tuple[date, ...] = (
    date.min,
    date(1, 1, 2),
    MIN_DATE - timedelta(days=1),
    MIN_DATE,
    MIN_DATE + timedelta(days=2),  # the first Monday of the range
    date(2026, 11, 27),
    MAX_DATE - timedelta(days=1),
    MAX_DATE,
    MAX_DATE + timedelta(days=1),
    date.max - timedelta(days=1),
    date.max,
)
DATES = st.one_of(st.sampled_from(EDGES), st.dates())


def in_range(*days: date) -> bool:
    return all(MIN_DATE <= day <= MAX_DATE for day in days)


def check_property(
    loop: asyncio.AbstractEventLoop,
    strategy: st.SearchStrategy[T],
    check: Callable[[T], Coroutine[Any, Any, None]],
    *,
    edges: Iterable[T],
    examples: int,
) -> None:
    """Run `check` for every edge and `examples` generated values; call it from a worker thread (hypothesis is
    synchronous), while the services keep running on `loop`."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(strategy)
    def holds(value: T) -> None:
        asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=120)

    for edge in edges:
        holds = example(edge)(holds)
    holds()


def named_fields(response: httpx.Response) -> set[str]:
    return {str(error["field"]) for error in response.json().get("errors") or ()}


def assert_answer(response: httpx.Response, *, refused: set[str], accepted: bool, may_name: set[str]) -> None:
    """Never a 500. With a date out of range (`refused` names its fields): a 422 naming each of them. Otherwise
    `accepted` says whether the request must succeed; when it need not, a 4xx must name one of `may_name`."""
    summary = f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, summary
    if refused:
        assert response.status_code == 422, summary
        assert refused <= named_fields(response), summary
    elif accepted:
        assert response.status_code < 300, summary
    elif response.status_code >= 400:
        assert named_fields(response) & may_name, summary


@dataclass(frozen=True)
class Consumer:
    schema: str
    name: str


def consumers_by_type() -> dict[str, list[Consumer]]:
    """Which consumer handles each event type, from the services' own subscriptions."""
    subscriptions = [
        ("planning", planning_consumer.subscription(PlanningSettings())),
        ("fulfillment", fulfillment_consumer.build_subscription(SpikeRule())),
        ("returns", returns_consumer.subscription(ReturnsSettings())),
        ("promotion", promotion_consumer.subscription),
    ]
    found: dict[str, list[Consumer]] = {}
    for schema, subscription in subscriptions:
        for event_type in subscription.handlers:
            found.setdefault(event_type, []).append(Consumer(schema, subscription.name))
    return found


@dataclass
class DeadLetters:
    """Every message the consumers dead-letter, read as they arrive: (consumer, reason, detail) by event id."""

    bootstrap: str
    by_event: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            topics = [dead_letter_topic(t.value) for t in Topic]
            consumer.assign(
                [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            )
            await consumer.seek_to_beginning()
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        event_id = str(json.loads(record.value or b"{}").get("id"))
                        entry = (headers["dlq-consumer"], headers["dlq-reason"], headers["dlq-detail"])
                        self.by_event.setdefault(event_id, []).append(entry)
        finally:
            await consumer.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@asynccontextmanager
async def four_services(settings: Settings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = {
            "promotion": await stack.enter_async_context(running(promotion_app(settings))),
            "fulfillment": await stack.enter_async_context(running(fulfillment_app(settings))),
            "returns": await stack.enter_async_context(running(returns_app(settings))),
            "planning": await stack.enter_async_context(running(planning_app(settings))),
        }
        yield clients


async def processed_by(db: asyncpg.Connection, consumer: Consumer, event_id: str) -> bool:
    query = f"select 1 from {consumer.schema}.inbox where consumer = $1 and event_id = $2"
    return bool(await db.fetchval(query, consumer.name, event_id))


async def await_processed(
    db: asyncpg.Connection, dead: DeadLetters, consumers: dict[str, list[Consumer]], events: list[tuple[str, str]]
) -> None:
    """Every (event id, type) is processed by each consumer with a handler for it, and dead-lettered by none."""

    async def pending() -> list[tuple[str, str]]:
        left = []
        for event_id, event_type in events:
            assert event_id not in dead.by_event, (event_type, dead.by_event[event_id])
            for consumer in consumers.get(event_type, ()):
                if not await processed_by(db, consumer, event_id):
                    left.append((consumer.name, event_type))
        return left

    left: list[tuple[str, str]] = []

    async def done() -> bool:
        left[:] = await pending()
        return not left

    try:
        await eventually(done, timeout=90, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{len(left)} events not processed, e.g. {left[:5]}") from None


async def outbox_events(db: asyncpg.Connection) -> list[tuple[str, str]]:
    rows: list[Any] = []
    for schema in ("promotion", "fulfillment", "returns", "planning"):
        rows += await db.fetch(f"select event_id, event_type from {schema}.outbox")
    return [(r["event_id"], r["event_type"]) for r in rows]
