"""Noticing a broker that lost its state, and reading every partition again from the beginning after it.

The embedded in-memory broker comes back from a restart as another cluster with empty logs: offsets from before
(positions held by consumers, offsets committed in the group) point past the new logs' ends or at other
messages, so the only safe place to resume is the beginning; the inbox skips what was already handled. Real
Kafka keeps its cluster id, so none of this ever fires there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = structlog.get_logger("salesops.kafka")

CHECK_INTERVAL_S = 1.0
# How long after a lost broker state new consumers still rewind the partitions they are given (a consumer
# rebuilt for another reason soon after must not trust offsets committed from stale positions either).
REWIND_WINDOW_S = 60.0


class BrokerChanged(Exception):
    """The broker is another cluster than before: the consumer must be rebuilt, and will rewind."""


class ClusterWatch:
    """Asks the broker its cluster id now and then; one consumer's memory of the last id it saw."""

    def __init__(self, consumer: str) -> None:
        self._consumer = consumer
        self._cluster_id: str | None = None
        self._checked_at = 0.0
        self._rewind_until = 0.0

    @property
    def rewinding(self) -> bool:
        """Whether a consumer built now must seek the partitions it is given to their beginning."""
        return time.monotonic() < self._rewind_until

    def listener(self, consumer: AIOKafkaConsumer) -> ConsumerRebalanceListener:
        return _Rewinder(consumer, active=self.rewinding)

    async def check(self, admin: AIOKafkaAdminClient) -> None:
        """Raise `BrokerChanged` when the broker's cluster id differs from the last one seen (asked at most once
        every `CHECK_INTERVAL_S`; an unreachable broker is the fetcher's business, not this check's)."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_INTERVAL_S:
            return
        self._checked_at = now
        try:
            cluster_id = (await asyncio.wait_for(admin.describe_cluster(), timeout=2))["cluster_id"]
        except Exception:
            return
        before, self._cluster_id = self._cluster_id, cluster_id
        if before is not None and cluster_id != before:
            log.warning(
                "the broker lost its state; reading every partition again from the beginning",
                consumer=self._consumer,
                before=before,
                now=cluster_id,
            )
            self._rewind_until = now + REWIND_WINDOW_S
            raise BrokerChanged


class _Rewinder(ConsumerRebalanceListener):
    """Seeks each partition to its beginning the first time this consumer is given it, while rewinding."""

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
