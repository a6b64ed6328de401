"""Dead-letter routing: a message that can never be processed goes to `<topic>.dlq`, unchanged (or cut to what the
broker accepts), with headers saying why, where it came from and which consumer gave up on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from shared.events import dead_letter_topic
from shared.kafka import Producer, record_size
from shared.metrics import Metrics
from shared.retry import Backoff, retrying

log = structlog.get_logger("salesops.kafka")

DETAIL_MAX_CHARS = 2000


def dead_letter_headers(
    message: ConsumerRecord[bytes, bytes], *, consumer: str, reason: str, detail: str
) -> list[tuple[str, bytes]]:
    """The original headers followed by the `dlq-*` ones (described in every service's AsyncAPI document)."""
    return [
        *(message.headers or ()),
        ("dlq-reason", reason.encode()),
        ("dlq-detail", detail[:DETAIL_MAX_CHARS].encode()),
        ("dlq-original-topic", message.topic.encode()),
        ("dlq-original-partition", str(message.partition).encode()),
        ("dlq-original-offset", str(message.offset).encode()),
        ("dlq-consumer", consumer.encode()),
        ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
    ]


def fit_to_record(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Dead letters keep the original bytes, but never more than the producer sends in one record: a value too
    large is cut (less the few bytes of the value's length prefix, counted for an empty value here) and
    `dlq-truncated-from-bytes` says how large it was."""
    truncated = [*headers, ("dlq-truncated-from-bytes", str(len(value)).encode())]
    room = max_bytes - record_size(key, b"", truncated) - 5
    if len(value) > room:
        return value[: max(room, 0)], truncated
    return value, headers


class DeadLetters:
    """The dead-letter route of one consumer. Publishing is retried until the broker takes it (or the consumer
    stops): the offset of a dead-lettered message is committed only after its dead letter is safe."""

    def __init__(
        self,
        consumer: str,
        *,
        producer: Producer,
        metrics: Metrics,
        max_bytes: int,
        backoff: Backoff,
        stopping: Callable[[], bool],
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._backoff = backoff
        self._stopping = stopping

    async def send(self, message: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        headers = dead_letter_headers(message, consumer=self._consumer, reason=reason, detail=detail)
        value, headers = fit_to_record(message.key, message.value or b"", headers, self._max_bytes)
        async for attempt in retrying(
            self._backoff,
            retry_on=lambda e: isinstance(e, KafkaError),
            stopping=self._stopping,
            on_retry=lambda error, wait, _: log.warning(
                "dead-letter publish failed; retrying", error=repr(error), retry_in_s=round(wait, 2)
            ),
        ):
            with attempt:
                await self._producer.send_and_wait(
                    dead_letter_topic(message.topic), value=value, key=message.key, headers=headers
                )
        self._metrics.dead_lettered.labels(self._consumer, message.topic, reason).inc()
        log.warning(
            "message dead-lettered",
            reason=reason,
            detail=detail[:500],
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
