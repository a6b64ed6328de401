"""The consumer loop: reads a subscription's topics and hands every event to its handler inside one unit of work,
with manual commits, retries for transient failures and dead letters for poison messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeAlias

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.db import UnitOfWork, is_transient
from shared.dead_letter import DeadLetters
from shared.events import CloudEvent, EventData, InvalidEvent
from shared.inbound import read_event
from shared.kafka import Producer
from shared.metrics import Metrics
from shared.observability import logging_context
from shared.retry import Backoff, Stopped, retrying
from shared.rewind import BrokerChanged, ClusterWatch
from shared.settings import Settings
from shared.subscription import EventHandler, Subscription
from shared.tracing import Delivery, Tracing

LOG_NAME = "salesops.kafka"
log = structlog.get_logger(LOG_NAME)

# Restarting a consumer that cannot start (broker unreachable, group coordinator not ready).
RESTART_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class _Rebuild(Exception):
    """The consumer is not what it believes (a failed commit after a rebalance): start a fresh one at once."""


@dataclass
class _Handled:
    message: Record
    event: CloudEvent
    outcome: str
    traceparent: str
    seconds: float


class EventConsumer:
    """Reads a subscription's topics and hands every event to its handler inside one unit of work.

    Each event runs in one transaction together with its inbox row, so a redelivered event is skipped; the
    offset is committed only after that transaction committed (at least once, idempotent in effect). Events
    are read in CloudEvents structured or binary mode (`shared.inbound`); poison messages go to `<topic>.dlq`
    (`shared.dead_letter`); transient failures are retried with capped exponential backoff (`shared.retry`)
    and never dead-lettered; a broker that lost its state is read again from the beginning (`shared.rewind`).
    """

    def __init__(
        self,
        subscription: Subscription,
        *,
        settings: Settings,
        producer: Producer,
        unit_of_work: Callable[[str | None], UnitOfWork],
        claim: Callable[[UnitOfWork, str, CloudEvent], Awaitable[bool]],
        metrics: Metrics,
        claim_many: Callable[[UnitOfWork, str, list[CloudEvent]], Awaitable[set[str]]] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.subscription = subscription
        self._settings = settings
        self._unit_of_work = unit_of_work
        self._claim = claim
        self._claim_many = claim_many
        self._metrics = metrics
        self._tracing = tracing or Tracing()
        self._backoff = Backoff(settings.consumer_backoff_initial_s, settings.consumer_backoff_max_s)
        self._dead = DeadLetters(
            subscription.name,
            producer=producer,
            metrics=metrics,
            max_bytes=settings.kafka_max_request_bytes,
            backoff=self._backoff,
            stopping=lambda: self._stopping,
        )
        self._watch = ClusterWatch(subscription.name)
        self._lag_series: set[tuple[str, str]] = set()
        self._stopping = False
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Stop after the event in hand; a consumer idle in a poll or a group join is cancelled at once."""
        self._stopping = True
        if not self._busy and self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            while not self._stopping:
                # A fresh streak of restarts each time a consumer that had been running ends.
                async for attempt in retrying(
                    RESTART_BACKOFF, stopping=lambda: self._stopping, on_retry=self._restarting
                ):
                    with attempt:
                        await self._consume()
        except (asyncio.CancelledError, Stopped):
            if not self._stopping:
                raise

    def _restarting(self, error: BaseException, wait_s: float, attempt: int) -> None:
        log.warning(
            "consumer could not start; retrying",
            consumer=self.subscription.name,
            error=repr(error),
            attempt=attempt,
            retry_in_s=round(wait_s, 2),
        )

    async def _consume(self) -> None:
        """One consumer from start to stop. Returns when stopping, or at once when it must be rebuilt; raises when
        it could not start (the caller retries with backoff)."""
        settings = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=self.subscription.name,
            client_id=self.subscription.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.consumer_batch_size,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
            request_timeout_ms=max(settings.kafka_request_timeout_ms, 40_000),
            metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        running = False
        try:
            # Inside the try: a stop that cancels a start in progress must still close the consumer, or
            # its background coordinator would keep holding partitions in the group.
            await admin.start()
            consumer.subscribe(list(self.subscription.topics), listener=self._watch.listener(consumer))
            await consumer.start()
            while not self._stopping:
                await self._watch.check(admin)
                batch = await consumer.getmany(timeout_ms=500, max_records=settings.consumer_batch_size)
                running = True
                await self._handle_fetched(consumer, batch)
                await self._record_lag(consumer)
        except (BrokerChanged, _Rebuild, Stopped):
            return
        except Exception as exc:
            if not running:
                raise
            log.warning("consumer failed; restarting", consumer=self.subscription.name, error=repr(exc))
        finally:
            self._forget_lag()
            try:
                await asyncio.wait_for(asyncio.shield(consumer.stop()), timeout=10)
                await asyncio.wait_for(asyncio.shield(admin.close()), timeout=5)
            except Exception as exc:
                log.debug("consumer stop failed", error=repr(exc))

    async def _handle_fetched(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Record]]) -> None:
        dead: set[tuple[str, int, int]] = set()
        if self.subscription.batched and batch and not self._stopping:
            with self._busy_now():
                handled = await self._process_together([m for ms in batch.values() for m in ms], dead)
            if handled:
                await self._commit(consumer, {tp: ms[-1].offset + 1 for tp, ms in batch.items()})
                return
        offsets: dict[TopicPartition, int] = {}
        try:
            for tp, messages in batch.items():
                for message in messages:
                    if self._stopping:
                        break
                    if (message.topic, message.partition, message.offset) not in dead:
                        with self._busy_now():
                            await self._process(message)
                    offsets[tp] = message.offset + 1
        finally:
            if offsets:
                await self._commit(consumer, offsets)

    @contextmanager
    def _busy_now(self) -> Iterator[None]:
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # A failed commit means the group or the topic is not what this consumer believes (a rebalance, or a
            # broker that came back without its state): start over with a fresh consumer, which re-reads the
            # metadata and the committed offsets. The inbox makes the redelivery that follows harmless.
            log.warning(
                "offset commit failed; rebuilding the consumer", consumer=self.subscription.name, error=repr(exc)
            )
            raise _Rebuild from exc

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per assigned partition after each fetch: the high watermark the fetch reported less the position,
        which is the committed offset once the fetched messages were handled."""
        seen: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), timeout=1)
            except Exception:
                continue
            series = (tp.topic, str(tp.partition))
            self._metrics.consumer_lag.labels(self.subscription.name, *series).set(max(highwater - position, 0))
            seen.add(series)
        for gone in self._lag_series - seen:
            self._metrics.consumer_lag.remove(self.subscription.name, *gone)
        self._lag_series = seen

    def _forget_lag(self) -> None:
        for series in self._lag_series:
            self._metrics.consumer_lag.remove(self.subscription.name, *series)
        self._lag_series = set()

    def _delivery(self, message: Record) -> Delivery:
        return Delivery(self.subscription.name, message.topic, message.partition, message.offset)

    async def _process(self, message: Record) -> None:
        try:
            event, data = read_event(message.value, message.headers, message.topic)
        except InvalidEvent as invalid:
            await self._dead.send(message, invalid.reason, invalid.detail)
            return
        handler = self.subscription.handler(event.type)
        if handler is None:
            self._metrics.consumed.labels(self.subscription.name, event.type, "ignored").inc()
            return
        with (
            self._tracing.consuming(event, self._delivery(message)) as traceparent,
            logging_context(traceparent, **_event_fields(event, message)),
        ):
            await self._handle(message, handler, event, data, traceparent)

    async def _handle(
        self, message: Record, handler: EventHandler, event: CloudEvent, data: EventData, traceparent: str
    ) -> None:
        try:
            async for attempt in retrying(
                self._backoff,
                retry_on=lambda e: not isinstance(e, InvalidEvent),
                give_up_after=self._settings.consumer_max_attempts,
                counts=lambda e: not is_transient(e),
                stopping=lambda: self._stopping,
                on_retry=self._retrying,
            ):
                with attempt:
                    handled = await self._handle_once(message, handler, event, data, traceparent)
        except InvalidEvent as invalid:
            await self._dead.send(message, invalid.reason, invalid.detail)
            return
        except Stopped:
            raise
        except Exception as exc:
            log.error("handler keeps failing; dead-lettering", error=repr(exc))
            await self._dead.send(message, "handler-error", repr(exc))
            return
        self._account(handled)

    async def _handle_once(
        self, message: Record, handler: EventHandler, event: CloudEvent, data: EventData, traceparent: str
    ) -> _Handled:
        started = time.perf_counter()
        async with self._unit_of_work(traceparent) as uow:
            if not await self._claim(uow, self.subscription.name, event):
                return _Handled(message, event, "duplicate", traceparent, time.perf_counter() - started)
            await handler(uow, event, data)
            if self.subscription.finish is not None:
                await self.subscription.finish(uow)
            await uow.commit()
        return _Handled(message, event, "processed", traceparent, time.perf_counter() - started)

    def _retrying(self, error: BaseException, wait_s: float, attempt: int) -> None:
        transient = is_transient(error)
        self._metrics.retries.labels(self.subscription.name, "transient" if transient else "error").inc()
        self._tracing.annotate("retry", {"attempt": attempt, "transient": transient, "error": repr(error)[:500]})
        log.warning("handler failed; retrying", error=repr(error), transient=transient, retry_in_s=round(wait_s, 2))

    def _account(self, handled: _Handled) -> None:
        name, event = self.subscription.name, handled.event
        self._metrics.consumed.labels(name, event.type, handled.outcome).inc()
        if handled.outcome == "processed":
            self._metrics.handle_seconds.labels(name, event.type).observe(handled.seconds)
        with logging_context(handled.traceparent, **_event_fields(event, handled.message)):
            log.info(
                "event handled" if handled.outcome == "processed" else "duplicate event skipped",
                outcome=handled.outcome,
                duration_ms=round(handled.seconds * 1000, 2),
            )

    async def _process_together(self, messages: list[Record], dead: set[tuple[str, int, int]]) -> bool:
        """Handle a whole batch in one unit of work; False (nothing kept) when it must go one event at a time.

        Malformed messages are dead-lettered first and noted in `dead`, so that neither they nor a fallback
        to one event at a time slow down or repeat the rest. The batch's events are claimed in the inbox in
        one statement; duplicates (already handled, or twice in the batch) are skipped. Runs of consecutive
        events of a type with a batch handler go to it together; the others go to their handler one by one."""
        subscription = self.subscription
        name = subscription.name
        work: list[tuple[Record, CloudEvent, EventData]] = []
        for message in messages:
            try:
                event, data = read_event(message.value, message.headers, message.topic)
            except InvalidEvent as invalid:
                await self._dead.send(message, invalid.reason, invalid.detail)
                dead.add((message.topic, message.partition, message.offset))
                continue
            if event.type in subscription.batch_handlers or event.type in subscription.handlers:
                work.append((message, event, data))
        started = time.perf_counter()
        handled: list[_Handled] = []
        try:
            with self._tracing.consuming_batch(name, [event for _, event, _ in work]) as batch_traceparent:
                async with self._unit_of_work(batch_traceparent) as uow:
                    fresh = await self._claim_together(uow, [event for _, event, _ in work])
                    run: list[tuple[Record, CloudEvent, EventData]] = []
                    for message, event, data in work:
                        if event.id not in fresh:
                            with self._tracing.consuming(event, self._delivery(message)) as traceparent:
                                handled.append(_Handled(message, event, "duplicate", traceparent, 0.0))
                            continue
                        fresh.discard(event.id)  # a second copy in the same batch is a duplicate
                        batch = subscription.batch_handlers.get(event.type)
                        if batch is not None:
                            if run and subscription.batch_handlers[run[0][1].type] is not batch:
                                await self._hand_over(uow, run, batch_traceparent, handled)
                                run = []
                            run.append((message, event, data))
                            continue
                        if run:
                            await self._hand_over(uow, run, batch_traceparent, handled)
                            run = []
                        with (
                            self._tracing.consuming(event, self._delivery(message)) as traceparent,
                            logging_context(traceparent, **_event_fields(event, message)),
                        ):
                            # Events a handler publishes are children of the event that caused them.
                            uow.traceparent = traceparent
                            await subscription.handlers[event.type](uow, event, data)
                            handled.append(_Handled(message, event, "processed", traceparent, 0.0))
                    if run:
                        await self._hand_over(uow, run, batch_traceparent, handled)
                    uow.traceparent = batch_traceparent
                    if subscription.finish is not None:
                        await subscription.finish(uow)
                    await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("batch not handled as a whole; handling its events one at a time", error=repr(exc))
            return False
        self._account_batch(handled, time.perf_counter() - started, ignored=len(messages) - len(work) - len(dead))
        return True

    def _account_batch(self, handled: list[_Handled], elapsed: float, *, ignored: int) -> None:
        """Counts by type and outcome, and one log line for the batch (each event's own line at DEBUG)."""
        name = self.subscription.name
        outcomes = Counter((item.event.type, item.outcome) for item in handled)
        for (event_type, outcome), count in outcomes.items():
            self._metrics.consumed.labels(name, event_type, outcome).inc(count)
        if ignored:
            self._metrics.consumed.labels(name, "other", "ignored").inc(ignored)
        self._metrics.handle_seconds.labels(name, "batch").observe(elapsed)
        if logging.getLogger(LOG_NAME).isEnabledFor(logging.DEBUG):
            for item in handled:
                with logging_context(item.traceparent, **_event_fields(item.event, item.message)):
                    log.debug(
                        "event handled" if item.outcome == "processed" else "duplicate event skipped",
                        outcome=item.outcome,
                        in_batch=True,
                    )
        log.info(
            "batch handled",
            events=len(handled),
            processed=sum(count for (_, outcome), count in outcomes.items() if outcome == "processed"),
            duplicates=sum(count for (_, outcome), count in outcomes.items() if outcome == "duplicate"),
            ignored=ignored,
            offsets=_offset_ranges(item.message for item in handled),
            duration_ms=round(elapsed * 1000, 2),
        )

    async def _claim_together(self, uow: UnitOfWork, events: list[CloudEvent]) -> set[str]:
        """Ids of the events not handled before, claimed in the inbox (one statement when the service has it)."""
        if self._claim_many is not None:
            return await self._claim_many(uow, self.subscription.name, events)
        return {event.id for event in events if await self._claim(uow, self.subscription.name, event)}

    async def _hand_over(
        self,
        uow: UnitOfWork,
        run: list[tuple[Record, CloudEvent, EventData]],
        batch_traceparent: str | None,
        handled: list[_Handled],
    ) -> None:
        """A run of consecutive events with the same batch handler to that handler, in the batch's trace."""
        uow.traceparent = batch_traceparent
        await self.subscription.batch_handlers[run[0][1].type](uow, [(event, data) for _, event, data in run])
        for message, event, _ in run:
            with self._tracing.consuming(event, self._delivery(message)) as traceparent:
                handled.append(_Handled(message, event, "processed", traceparent, 0.0))


def _offset_ranges(messages: Iterable[Record]) -> dict[str, str]:
    """`topic/partition` -> `first..last` offset of the messages, for a batch's log line."""
    ranges: dict[str, tuple[int, int]] = {}
    for message in messages:
        key = f"{message.topic}/{message.partition}"
        first, last = ranges.get(key, (message.offset, message.offset))
        ranges[key] = (min(first, message.offset), max(last, message.offset))
    return {key: f"{first}..{last}" for key, (first, last) in ranges.items()}


def _event_fields(event: CloudEvent, message: Record) -> dict[str, object]:
    return {
        "event_id": event.id,
        "event_type": event.type,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
    }
