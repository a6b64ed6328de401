"""Unit tests of the outbox's write-time check: an event is measured exactly as the producer measures it, and
which broker errors park a row at once, count towards parking, or never count."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from sqlalchemy import MetaData

from shared.events import EventType, PromotionData, new_event
from shared.kafka import record_size, refused_for_good
from shared.outbox import HEADERS, EventTooLarge, outbox_table, record_events
from shared.relay import _answered_about_the_row

OUTBOX = outbox_table(MetaData(schema="unit"))


class RecordingSession:
    """The rows the outbox insert would write: it takes them as one array per column."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def execute(self, _statement: object, columns: dict[str, list[Any]]) -> None:
        self.rows.extend(dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True))


def promotion_event(items: int) -> Any:
    data = PromotionData.model_validate(
        {
            "promotion_id": "P-1",
            "name": "p",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-02",
            "items": [{"sku": f"SKU-{i:05d}", "uplift_pct": 5} for i in range(items)],
        }
    )
    return new_event(EventType.PROMOTION_PLANNED, source="test", subject="P-1", data=data)


async def test_the_write_time_check_and_the_producer_draw_the_line_at_the_same_byte() -> None:
    event = promotion_event(40)
    size = record_size(b"SKU-1", event.to_json(), HEADERS)
    at_limit = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", max_request_size=size)
    below = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", max_request_size=size - 1)
    try:
        at_limit._serialize(b"SKU-1", event.to_json(), list(HEADERS))
        with pytest.raises(MessageSizeTooLargeError):
            below._serialize(b"SKU-1", event.to_json(), list(HEADERS))
    finally:
        await at_limit.stop()
        await below.stop()

    session = RecordingSession()
    await record_events(session, OUTBOX, [(event, "salesops.promotions", "SKU-1")], max_bytes=size)
    assert len(session.rows) == 1
    with pytest.raises(EventTooLarge) as refused:
        await record_events(session, OUTBOX, [(event, "salesops.promotions", "SKU-1")], max_bytes=size - 1)
    assert (refused.value.size, refused.value.limit) == (size, size - 1)
    assert refused.value.reason == "event-too-large"
    assert "salesops.promotion.planned.v1" in refused.value.detail and "'P-1'" in refused.value.detail


async def test_one_event_too_large_keeps_every_event_of_the_unit_of_work_out() -> None:
    session = RecordingSession()
    fits, too_large = promotion_event(1), promotion_event(500)
    with pytest.raises(EventTooLarge):
        await record_events(
            session,
            OUTBOX,
            [(fits, "salesops.promotions", "SKU-1"), (too_large, "salesops.promotions", "SKU-1")],
            max_bytes=4096,
        )
    assert session.rows == []


@pytest.mark.parametrize(
    ("error", "parked_at_once", "counted"),
    [
        (MessageSizeTooLargeError(), True, False),
        (TopicAuthorizationFailedError(), True, False),
        (UnknownTopicOrPartitionError(), False, True),
        (RequestTimedOutError(), False, False),
        (KafkaConnectionError(), False, False),
        (KafkaTimeoutError(), False, False),
    ],
)
def test_which_broker_errors_park_a_row_count_towards_parking_or_never_count(
    error: Exception, parked_at_once: bool, counted: bool
) -> None:
    assert refused_for_good(error) is parked_at_once
    assert (not parked_at_once and _answered_about_the_row(error)) is counted
