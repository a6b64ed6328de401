"""Kafka plumbing: a producer that survives broker outages, topic creation, and the consumer loop
with manual commits, retries for transient failures and dead letters for poison messages."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import BrokerResponseError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from shared.db import UnitOfWork, is_transient
from shared.events import CloudEvent, EventData, InvalidEvent, dead_letter_topic, parse_data, parse_envelope
from shared.observability import Metrics, bind_event_context
from shared.settings import Settings

log = structlog.get_logger("salesops.kafka")


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """The size the producer gives a record when it checks it against `max_request_size` (an upper bound of the
    record batch holding it alone), so a record measured here is accepted or refused exactly as it will be."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def refused_for_good(exc: BaseException) -> bool:
    """The broker, or the producer on its behalf, refused this one record and would refuse it again as it is
    (too large, invalid topic, not authorised): sending it again cannot help, other records are unaffected."""
    return isinstance(exc, BrokerResponseError) and not exc.retriable


class Producer:
    """An AIOKafkaProducer started lazily and restarted after failures, so a broker outage never blocks startup.

    Every (re)start first makes sure the contract's topics exist with the configured partitions: a broker that
    came back without its state would otherwise auto-create them with its own defaults on the first send.
    """

    def __init__(self, settings: Settings, *, client_id: str, topics: Sequence[str] = ()) -> None:
        self._settings = settings
        self._client_id = client_id
        self._topics = tuple(topics)
        self._producer: AIOKafkaProducer | None = None
        self._failed = False
        self._lock = asyncio.Lock()

    def _note_outcome(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, KafkaError) and not refused_for_good(error):
            self._failed = True

    async def ensure_started(self) -> AIOKafkaProducer:
        if self._failed:
            await self.reset()
        async with self._lock:
            if self._producer is None:
                if self._topics:
                    await ensure_topics(
                        self._settings.kafka_bootstrap_servers,
                        self._topics,
                        self._settings.topic_partitions,
                        self._settings.topic_replication_factor,
                    )
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=self._settings.kafka_enable_idempotence,
                    request_timeout_ms=self._settings.kafka_request_timeout_ms,
                    metadata_max_age_ms=self._settings.kafka_metadata_max_age_ms,
                    max_request_size=self._settings.kafka_max_request_bytes,
                    linger_ms=2,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> asyncio.Future[Any]:
        """Enqueue a message; the returned future resolves when the broker acknowledged it."""
        producer = await self.ensure_started()
        try:
            future = await producer.send(topic, value=value, key=key, headers=list(headers))
        except KafkaError as exc:
            # A record refused for itself (say, too large) says nothing about the connection: the records already
            # in flight must not be dropped with the producer.
            if not refused_for_good(exc):
                await self.reset()
            raise
        future.add_done_callback(self._note_outcome)
        return future

    async def send_and_wait(
        self, topic: str, *, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        await (await self.send(topic, value=value, key=key, headers=headers))

    async def cluster_id(self, timeout_s: float = 5.0) -> str:
        """The id of the cluster the producer is connected to, asked of the broker now (never a cached value)."""
        async with asyncio.timeout(timeout_s):
            client = (await self.ensure_started()).client
            node_id = client.get_random_node()
            if node_id is None:
                raise KafkaError("no broker known")
            response = await client.send(node_id, MetadataRequest([]))
        cluster_id = response.to_object().get("cluster_id")
        if not cluster_id:
            raise KafkaError("the broker did not name its cluster")
        return str(cluster_id)

    async def reset(self) -> None:
        # The old producer is fully stopped before a new one can start: two producers writing the same
        # partitions at once could interleave a retried batch with newer ones.
        async with self._lock:
            producer, self._producer = self._producer, None
            self._failed = False
            if producer is not None:
                try:
                    await asyncio.wait_for(producer.stop(), timeout=5)
                except Exception as exc:
                    log.debug("producer stop failed", error=repr(exc))

    async def ready(self, timeout_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self.ensure_started()
                await producer.client.fetch_all_metadata()
            return True
        except Exception:
            return False

    async def stop(self) -> None:
        await self.reset()


async def ensure_topics(
    bootstrap_servers: str, topics: Sequence[str], partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="salesops-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
                )
        return missing
    finally:
        await admin.close()


EventHandler = Callable[[UnitOfWork, CloudEvent, Any], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A consumer group of one service: the topics it reads and a handler per event type it cares about.

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


class _Stopping(Exception):
    pass


class _Rebuild(Exception):
    pass


_CLUSTER_CHECK_INTERVAL_S = 1.0
# How long after a lost broker state new consumers still rewind the partitions they are given (a consumer
# rebuilt for another reason soon after must not trust offsets committed from stale positions either).
_REWIND_WINDOW_S = 60.0


class _Rewinder(ConsumerRebalanceListener):
    """After the broker lost its state, seeks each partition to its beginning the first time this consumer is
    given it: offsets committed meanwhile by consumers still holding old positions cannot be trusted."""

    def __init__(self, consumer: AIOKafkaConsumer, *, active: bool) -> None:
        self._consumer = consumer
        self._active = active
        self._rewound: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        fresh = [tp for tp in assigned if tp not in self._rewound]
        if self._active and fresh:
            await self._consumer.seek_to_beginning(*fresh)
            self._rewound.update(fresh)


class EventConsumer:
    """Reads a subscription's topics and hands every event to its handler inside one unit of work.

    Each event runs in one transaction together with its inbox row, so a redelivered event is skipped; the
    offset is committed only after that transaction committed (at least once, idempotent in effect).
    Poison messages go to `<topic>.dlq` with the reason in headers; transient failures are retried with
    capped exponential backoff and never dead-lettered.
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
    ) -> None:
        self.subscription = subscription
        self._settings = settings
        self._producer = producer
        self._unit_of_work = unit_of_work
        self._claim = claim
        self._metrics = metrics
        self._stopping = False
        self._busy = False
        self._cluster_id: str | None = None
        self._cluster_checked_at = 0.0
        self._rewind_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Stop after the event in hand; a consumer idle in a poll or a group join is cancelled at once."""
        self._stopping = True
        if not self._busy and self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            await self._run()
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except _Stopping:
                return
            except _Rebuild:
                await asyncio.sleep(backoff)
            except Exception as exc:
                log.warning("consumer failed; restarting", consumer=self.subscription.name, error=repr(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self.subscription.name,
            client_id=self.subscription.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._settings.consumer_batch_size,
            session_timeout_ms=self._settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=self._settings.consumer_heartbeat_interval_ms,
            request_timeout_ms=max(self._settings.kafka_request_timeout_ms, 40_000),
            metadata_max_age_ms=self._settings.kafka_metadata_max_age_ms,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.kafka_bootstrap_servers)
        try:
            # Inside the try: a stop that cancels a start in progress must still close the consumer, or
            # its background coordinator would keep holding partitions in the group.
            await admin.start()
            consumer.subscribe(
                list(self.subscription.topics),
                listener=_Rewinder(consumer, active=time.monotonic() < self._rewind_until),
            )
            await consumer.start()
            while not self._stopping:
                await self._check_cluster(admin)
                batch = await consumer.getmany(timeout_ms=500, max_records=self._settings.consumer_batch_size)
                offsets: dict[TopicPartition, int] = {}
                dead: set[tuple[str, int, int]] = set()
                if self.subscription.finish is not None and batch and not self._stopping:
                    self._busy = True
                    try:
                        handled = await self._process_together([m for ms in batch.values() for m in ms], dead)
                    finally:
                        self._busy = False
                    if handled:
                        await self._commit(consumer, {tp: ms[-1].offset + 1 for tp, ms in batch.items()})
                        continue
                try:
                    for tp, messages in batch.items():
                        for message in messages:
                            if self._stopping:
                                break
                            if (message.topic, message.partition, message.offset) in dead:
                                offsets[tp] = message.offset + 1
                                continue
                            self._busy = True
                            try:
                                await self._process(message)
                            finally:
                                self._busy = False
                            offsets[tp] = message.offset + 1
                finally:
                    if offsets:
                        await self._commit(consumer, offsets)
        finally:
            try:
                await asyncio.wait_for(asyncio.shield(consumer.stop()), timeout=10)
                await asyncio.wait_for(asyncio.shield(admin.close()), timeout=5)
            except Exception as exc:
                log.debug("consumer stop failed", error=repr(exc))

    async def _check_cluster(self, admin: AIOKafkaAdminClient) -> None:
        """Notice a broker that came back as a different cluster (the embedded in-memory broker after a
        restart): its logs start again at offset 0, so positions and committed offsets from before mean nothing
        and the only safe place to resume is the beginning; the inbox skips what was already handled."""
        now = time.monotonic()
        if now - self._cluster_checked_at < _CLUSTER_CHECK_INTERVAL_S:
            return
        self._cluster_checked_at = now
        try:
            cluster_id = (await asyncio.wait_for(admin.describe_cluster(), timeout=2))["cluster_id"]
        except Exception:
            return  # unreachable brokers are the fetcher's business
        if self._cluster_id is not None and cluster_id != self._cluster_id:
            log.warning(
                "the broker lost its state; reading every partition again from the beginning",
                consumer=self.subscription.name,
                before=self._cluster_id,
                now=cluster_id,
            )
            self._cluster_id = cluster_id
            self._rewind_until = now + _REWIND_WINDOW_S
            raise _Rebuild
        self._cluster_id = cluster_id

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

    async def _process_together(
        self, messages: list[ConsumerRecord[bytes, bytes]], dead: set[tuple[str, int, int]]
    ) -> bool:
        """Handle a whole batch in one unit of work; False (nothing kept) when it must go one event at a time.

        Malformed messages are dead-lettered first and noted in `dead`, so that neither they nor a fallback
        to one event at a time slow down or repeat the rest."""
        name = self.subscription.name
        assert self.subscription.finish is not None
        work: list[tuple[EventHandler, CloudEvent, EventData]] = []
        for message in messages:
            try:
                event = parse_envelope(message.value)
                data = parse_data(event, message.topic)
            except InvalidEvent as invalid:
                await self._dead_letter(message, invalid.reason, invalid.detail)
                dead.add((message.topic, message.partition, message.offset))
                continue
            handler = self.subscription.handlers.get(event.type)
            if handler is not None:
                work.append((handler, event, data))
        started = time.perf_counter()
        outcomes: list[tuple[str, str]] = []
        try:
            async with self._unit_of_work(None) as uow:
                for handler, event, data in work:
                    with bind_event_context(event):
                        if not await self._claim(uow, name, event):
                            outcomes.append((event.type, "duplicate"))
                            continue
                        await handler(uow, event, data)
                        outcomes.append((event.type, "processed"))
                await self.subscription.finish(uow)
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("batch not handled as a whole; handling its events one at a time", error=repr(exc))
            return False
        for event_type, outcome in outcomes:
            self._metrics.consumed.labels(name, event_type, outcome).inc()
        ignored = len(messages) - len(work) - len(dead)
        if ignored:
            self._metrics.consumed.labels(name, "other", "ignored").inc(ignored)
        self._metrics.handle_seconds.labels(name, "batch").observe(time.perf_counter() - started)
        return True

    async def _process(self, message: ConsumerRecord[bytes, bytes]) -> None:
        name = self.subscription.name
        try:
            event = parse_envelope(message.value)
            data = parse_data(event, message.topic)
        except InvalidEvent as invalid:
            await self._dead_letter(message, invalid.reason, invalid.detail)
            return
        handler = self.subscription.handlers.get(event.type)
        with bind_event_context(event):
            if handler is None:
                self._metrics.consumed.labels(name, event.type, "ignored").inc()
                return
            await self._handle(message, handler, event, data)

    async def _handle(
        self, message: ConsumerRecord[bytes, bytes], handler: EventHandler, event: CloudEvent, data: EventData
    ) -> None:
        name = self.subscription.name
        attempt = 0
        delay = self._settings.consumer_backoff_initial_s
        while True:
            started = time.perf_counter()
            try:
                async with self._unit_of_work(event.traceparent) as uow:
                    if not await self._claim(uow, name, event):
                        self._metrics.consumed.labels(name, event.type, "duplicate").inc()
                        log.info("duplicate event skipped")
                        return
                    await handler(uow, event, data)
                    if self.subscription.finish is not None:
                        await self.subscription.finish(uow)
                    await uow.commit()
                self._metrics.consumed.labels(name, event.type, "processed").inc()
                self._metrics.handle_seconds.labels(name, event.type).observe(time.perf_counter() - started)
                return
            except InvalidEvent as invalid:
                await self._dead_letter(message, invalid.reason, invalid.detail)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                transient = is_transient(exc)
                attempt += 0 if transient else 1
                if attempt >= self._settings.consumer_max_attempts:
                    log.error("handler keeps failing; dead-lettering", error=repr(exc), attempts=attempt)
                    await self._dead_letter(message, "handler-error", repr(exc))
                    return
                self._metrics.retries.labels(name, "transient" if transient else "error").inc()
                log.warning("handler failed; retrying", error=repr(exc), transient=transient, retry_in_s=delay)
                await self._sleep(delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)

    async def _dead_letter(self, message: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        value = message.value or b""
        headers = list(message.headers or ())
        headers += [
            ("dlq-reason", reason.encode()),
            ("dlq-detail", detail[:2000].encode()),
            ("dlq-original-topic", message.topic.encode()),
            ("dlq-original-partition", str(message.partition).encode()),
            ("dlq-original-offset", str(message.offset).encode()),
            ("dlq-consumer", self.subscription.name.encode()),
            ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        # Dead letters keep the original bytes, but never more than the producer sends in one record (less the
        # few bytes of the value's length prefix, counted for an empty value here).
        truncated = [*headers, ("dlq-truncated-from-bytes", str(len(value)).encode())]
        room = self._settings.kafka_max_request_bytes - record_size(message.key, b"", truncated) - 5
        if len(value) > room:
            headers, value = truncated, value[: max(room, 0)]
        delay = self._settings.consumer_backoff_initial_s
        while True:
            try:
                await self._producer.send_and_wait(
                    dead_letter_topic(message.topic), value=value, key=message.key, headers=headers
                )
                break
            except KafkaError as exc:
                log.warning("dead-letter publish failed; retrying", error=repr(exc))
                await self._sleep(delay)
                delay = min(delay * 2, self._settings.consumer_backoff_max_s)
        self._metrics.dead_lettered.labels(self.subscription.name, message.topic, reason).inc()
        log.warning(
            "message dead-lettered",
            reason=reason,
            detail=detail[:500],
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )

    async def _sleep(self, delay: float) -> None:
        # Jitter spreads retries of several consumers hitting the same outage.
        end = time.monotonic() + delay * random.uniform(0.8, 1.2)
        while time.monotonic() < end:
            if self._stopping:
                raise _Stopping
            await asyncio.sleep(min(0.1, end - time.monotonic()))
