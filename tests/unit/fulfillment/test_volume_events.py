"""A report's events are encoded from plain values (no model per event or day): they must be, byte for byte, the
documents the contract's models give (`new_event(...).to_json()`), and read back through those models."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.fulfillment_service.app import build_spec
from services.fulfillment_service.domain import Spike
from services.fulfillment_service.handlers.volumes import EventBatch, random_ids, reported_data, spike_json
from services.fulfillment_service.settings import FulfillmentSettings
from services.fulfillment_service.store import DailyTotal
from shared.events import (
    CloudEvent,
    DailyTotalData,
    EventType,
    OrderSpikeData,
    OrderVolumeReportedData,
    new_event,
    parse_data,
    parse_envelope,
)

SOURCE = "salesops/fulfillment-service"
skus = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
units = st.integers(0, 2_000_000_000 * 8)
days = st.dates(date(2000, 1, 1), date(2199, 12, 31))
figures = st.floats(0, 1e12, allow_nan=False, allow_infinity=False)
traceparents = st.none() | st.just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def same_document(row_payload: bytes, reference: CloudEvent, *, exact: bool = True) -> None:
    """The payload, with the reference's id and time, is the reference's document (and its encoding exactly,
    unless floats are in it: Python writes 1e-08 where pydantic writes 1e-8, the same number)."""
    written = parse_envelope(row_payload)
    assert written.time is not None
    assert abs(written.time - datetime.now(UTC)).total_seconds() < 3600
    expected = reference.model_copy(update={"id": written.id, "time": written.time}).to_json()
    assert json.loads(row_payload) == json.loads(expected)
    if exact:
        assert row_payload == expected


def test_the_events_come_from_the_service_s_source() -> None:
    assert build_spec(FulfillmentSettings()).source == SOURCE


@settings(max_examples=80, deadline=None)
@given(
    sku=skus,
    totals=st.lists(st.tuples(days, units, units, units), min_size=1, max_size=20),
    traceparent=traceparents,
)
def test_a_reported_event_is_the_contract_s_document(
    sku: str, totals: list[tuple[date, int, int, int]], traceparent: str | None
) -> None:
    batch = EventBatch(SOURCE, traceparent)
    rows = [DailyTotal(*total) for total in totals]
    batch.add(EventType.ORDER_VOLUME_REPORTED, key=sku, subject=sku, data=reported_data(sku, rows))
    (row,) = batch.rows
    assert (row.event_type, row.topic, row.key) == (
        EventType.ORDER_VOLUME_REPORTED.value,
        "salesops.order-volumes",
        sku,
    )
    model = OrderVolumeReportedData(
        sku=sku,
        days=[DailyTotalData(day=d, units_ordered=o, units_shipped=s, units_backordered=b) for d, o, s, b in rows],
    )
    reference = new_event(
        EventType.ORDER_VOLUME_REPORTED, source=SOURCE, subject=sku, data=model, traceparent=traceparent
    )
    same_document(row.payload, reference)
    event = parse_envelope(row.payload)
    assert event.id == row.event_id
    assert parse_data(event, row.topic) == model


@settings(max_examples=80, deadline=None)
@given(
    sku=skus,
    day=days,
    values=st.tuples(figures, figures, figures, figures, figures, figures, figures),
    ratio=st.none() | figures,
    promotion=st.none() | skus,
    status=st.sampled_from(["detected", "retracted"]),
    traceparent=traceparents,
)
def test_a_spike_event_is_the_contract_s_document(
    sku: str,
    day: date,
    values: tuple[float, ...],
    ratio: float | None,
    promotion: str | None,
    status: str,
    traceparent: str | None,
) -> None:
    units, baseline, seasonal, level, sigma, excess, z_score = values
    spike = Spike(day, units, baseline, seasonal, level, sigma, ratio, excess, z_score, sku, promotion)
    event_type = EventType.ORDER_SPIKE_DETECTED if status == "detected" else EventType.ORDER_SPIKE_RETRACTED
    subject = f"{sku}/{day.isoformat()}"
    batch = EventBatch(SOURCE, traceparent)
    batch.add(event_type, key=sku, subject=subject, data=spike_json(spike, sku, status))
    (row,) = batch.rows
    model = OrderSpikeData(
        sku=sku,
        day=day,
        units=units,
        baseline=baseline,
        ratio=ratio,
        explained_by_promotion_id=promotion,
        z_score=z_score,
        excess_units=excess,
        status=status,
    )
    event = parse_envelope(row.payload)
    assert parse_data(event, row.topic) == model
    assert json.loads(row.payload)["data"] == model.model_dump(mode="json")
    reference = new_event(event_type, source=SOURCE, subject=subject, data=model, traceparent=traceparent)
    same_document(row.payload, reference, exact=False)


def test_every_event_of_a_batch_has_its_own_id_in_the_order_added() -> None:
    batch = EventBatch(SOURCE, None)
    for sku in ("A", "B", "C"):
        batch.add(
            EventType.ORDER_VOLUME_REPORTED,
            key=sku,
            subject=sku,
            data=reported_data(sku, [DailyTotal(date(2026, 1, 1), 1, 1, 0)]),
        )
    assert [row.key for row in batch.rows] == ["A", "B", "C"]
    assert len({row.event_id for row in batch.rows}) == 3


def test_event_ids_are_distinct_random_uuids_in_their_canonical_text() -> None:
    ids = list(itertools.islice(random_ids(), 1_000))  # several reads of the random source
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert (str(parsed), parsed.version, parsed.variant) == (event_id, 4, uuid.RFC_4122)
    batch = EventBatch(SOURCE, None)
    for _ in range(3):
        batch.add(EventType.ORDER_VOLUME_REPORTED, key="SKU-1", subject="SKU-1", data='{"sku":"SKU-1","days":[]}')
    assert len({row.event_id for row in batch.rows}) == 3
    assert all(uuid.UUID(row.event_id).version == 4 for row in batch.rows)
