"""Kafka plumbing, the producing side: a producer that survives broker outages, topic creation, and how the
producer measures a record. The consumer loop is `shared.consumer`; what a service subscribes to is
`shared.subscription` (also importable from here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import BrokerResponseError, KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from shared.settings import Settings
from shared.subscription import EventHandler, Subscription

__all__ = [
    "EventHandler",
    "Handover",
    "Producer",
    "Subscription",
    "ensure_topics",
    "record_size",
    "refused_for_good",
]

log = structlog.get_logger("salesops.kafka")


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """The size the producer gives a record when it checks it against `max_request_size` (an upper bound of the
    record batch holding it alone), so a record measured here is accepted or refused exactly as it will be."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def refused_for_good(exc: BaseException) -> bool:
    """The broker, or the producer on its behalf, refused this one record and would refuse it again as it is
    (too large, invalid topic, not authorised): sending it again cannot help, other records are unaffected."""
    return isinstance(exc, BrokerResponseError) and not exc.retriable


# More than the bytes a record batch holding one record adds to its key, value and headers (each header's two
# lengths counted with it, 10 bytes at most): the batch header (61) and the record's varints and attributes (36).
RECORD_OVERHEAD_BOUND = 128

# Keys whose partition hash is remembered (`Producer.send_batches`); past this many the memo starts over.
KEY_HASHES_KEPT = 100_000


@dataclass
class Handover:
    """What `Producer.send_batches` did with a sequence of records, each named by its position in it.

    `batches`: the record batches handed to the producer, each with the future of its acknowledgement (its
    error, if the broker refused the batch: every record in it shares it) and the positions of its records.
    `failed`: records refused or not handed over, with the error (too large, say, or the topic's metadata
    unavailable). `error`: the first error that is not about one record alone (an unreachable broker); it
    stopped the handover, so records in neither `batches` nor `failed` were not sent."""

    batches: list[tuple[asyncio.Future[Any], list[int]]] = field(default_factory=list)
    failed: dict[int, BaseException] = field(default_factory=dict)
    error: BaseException | None = None


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
        self._key_hashes: dict[bytes, int] = {}

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

    async def send_batches(
        self, records: Sequence[tuple[str, bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> Handover:
        """Hand over `(topic, key, value)` records, in order, as record batches built here, one open batch per
        partition: no future, no coroutine and no partitioner call per record, which is most of what a `send`
        per record costs. Each key goes to the partition `send` would choose (the default partitioner: murmur2
        of the key over the topic's partitions), and the records of a partition go in the order given, so each
        key keeps its order. A record is measured as `send` measures it (`MessageSizeTooLargeError` in
        `failed`, the others go on). A topic whose partitions cannot be learnt fails its record: only that
        topic's records when it is refused for good (not authorised), else the records after it are not taken
        (`error`; the batches of the records before it still go). A batch the producer does not take (an
        unreachable broker, say) stops the handover: no later batch goes (so no later record of a partition
        overtakes an earlier one), and the producer is restarted before its next use, as after a failed `send`."""
        producer = await self.ensure_started()
        handover = Handover()
        header_list = list(headers)
        headers_bytes = sum(len(k.encode()) + len(v) + 10 for k, v in header_list)
        limit = self._settings.kafka_max_request_bytes
        hashes = self._key_hashes
        partitions_of: dict[str, list[int] | BaseException] = {}
        # Open batches by (topic, partition), in the order they were opened.
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        full: list[tuple[str, int, Any, list[int]]] = []
        # A topic whose partitions are not known ends the records taken; the batches before it still go.
        ended: BaseException | None = None
        for position, (topic, key, value) in enumerate(records):
            partitions = partitions_of.get(topic)
            if partitions is None:
                try:
                    partitions = partitions_of[topic] = list(await producer.partitions_for(topic))
                except KafkaError as exc:
                    partitions = partitions_of[topic] = exc
            if not isinstance(partitions, list):
                handover.failed[position] = partitions
                if refused_for_good(partitions):
                    continue
                ended = partitions
                break
            # Measured exactly only near the limit (the overhead beyond key, value and headers is bounded).
            if len(key) + len(value) + headers_bytes + RECORD_OVERHEAD_BOUND > limit and (
                (size := record_size(key, value, header_list)) > limit
            ):
                handover.failed[position] = MessageSizeTooLargeError(
                    f"The message is {size} bytes when serialized which is larger than the maximum request size"
                    " you have configured with the max_request_size configuration"
                )
                continue
            key_hash = hashes.get(key)
            if key_hash is None:
                if len(hashes) >= KEY_HASHES_KEPT:
                    hashes.clear()
                key_hash = hashes[key] = murmur2(key) & 0x7FFFFFFF
            where = (topic, partitions[key_hash % len(partitions)])
            batch = open_batches.get(where)
            if batch is None:
                batch = open_batches[where] = (producer.create_batch(), [])
            if batch[0].append(timestamp=None, key=key, value=value, headers=header_list) is None:
                # Full (and closed by that): handed over before the later batches of its partition.
                full.append((*where, *batch))
                batch = open_batches[where] = (producer.create_batch(), [])
                batch[0].append(timestamp=None, key=key, value=value, headers=header_list)
            batch[1].append(position)
        full.extend((*where, *batch) for where, batch in open_batches.items())
        for topic, partition, builder, positions in full:
            if handover.error is not None:
                break
            # Closed, so the producer sends it without lingering: nothing more goes into it.
            builder.close()
            try:
                future = await producer.send_batch(builder, topic, partition=partition)
            except KafkaError as exc:
                for position in positions:
                    handover.failed[position] = exc
                if not refused_for_good(exc):
                    handover.error = exc
                    await self.reset()
                continue
            future.add_done_callback(self._note_outcome)
            handover.batches.append((future, positions))
        handover.error = handover.error or ended
        return handover

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
