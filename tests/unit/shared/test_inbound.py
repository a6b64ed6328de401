"""CloudEvents off Kafka records in both content modes: binary mode (ce_* headers, data alone in the value) reads
into the same event as structured mode, and whatever is wrong with a binary record is named."""

from __future__ import annotations

import json

import pytest

from shared.events import EventType, InvalidEvent, OrderVolumeReportData, Topic, new_event
from shared.inbound import is_binary, read_event

TOPIC = Topic.WAREHOUSE_REPORTS.value
DATA = {
    "warehouse_id": "DC-EAST",
    "lines": [{"sku": "SKU-1", "day": "2026-03-02", "units_ordered": 5, "units_shipped": 4, "units_backordered": 1}],
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def binary_headers(**overrides: bytes | None) -> list[tuple[str, bytes]]:
    headers: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": b"evt-1",
        "ce_source": b"wms/dc-east",
        "ce_type": EventType.ORDER_VOLUME_REPORT.value.encode(),
        "ce_subject": b"DC-EAST",
        "ce_time": b"2026-03-02T10:00:00Z",
        "ce_traceparent": TRACEPARENT.encode(),
        "content-type": b"application/json",
        **overrides,
    }
    return [(name, value) for name, value in headers.items() if value is not None]


def test_a_binary_record_reads_as_the_same_event_as_its_structured_twin():
    structured = new_event(
        EventType.ORDER_VOLUME_REPORT,
        source="wms/dc-east",
        subject="DC-EAST",
        data=OrderVolumeReportData.model_validate(DATA),
        traceparent=TRACEPARENT,
    )
    from_structured, structured_data = read_event(structured.to_json(), [], TOPIC)
    headers = binary_headers(ce_id=structured.id.encode(), ce_time=None)
    from_binary, binary_data = read_event(json.dumps(DATA).encode(), headers, TOPIC)
    assert binary_data == structured_data
    assert from_binary.model_dump(exclude={"time"}) == from_structured.model_dump(exclude={"time"})
    assert from_binary.traceparent == TRACEPARENT


def test_the_content_mode_follows_the_headers():
    assert is_binary(binary_headers())
    assert not is_binary([])
    assert not is_binary([("content-type", b"application/cloudevents+json")])
    # ce_* headers beside a structured document: the document wins, as the binding says.
    assert not is_binary([*binary_headers(), ("content-type", b"application/cloudevents+json; charset=utf-8")])
    assert is_binary([("CE_SPECVERSION", b"1.0")])


@pytest.mark.parametrize(
    ("headers", "value", "reason", "detail"),
    [
        (binary_headers(ce_id=None), json.dumps(DATA).encode(), "not-cloudevents", "ce_id"),
        (binary_headers(ce_specversion=None), json.dumps(DATA).encode(), "not-cloudevents", "ce_specversion"),
        (binary_headers(ce_specversion=b"0.3"), json.dumps(DATA).encode(), "not-cloudevents", "specversion"),
        (binary_headers(ce_time=b"yesterday"), json.dumps(DATA).encode(), "not-cloudevents", "ce_time"),
        (binary_headers(ce_source=b"\xff\xfe"), json.dumps(DATA).encode(), "not-cloudevents", "UTF-8"),
        (binary_headers(), b"{not json", "not-json", "content-type"),
        (binary_headers(ce_type=b"salesops.nope.v1"), json.dumps(DATA).encode(), "unknown-type", "nope"),
        (binary_headers(), json.dumps({**DATA, "lines": []}).encode(), "invalid-data", "data.lines"),
    ],
)
def test_an_invalid_binary_record_says_why(headers, value, reason, detail):
    with pytest.raises(InvalidEvent) as caught:
        read_event(value, headers, TOPIC)
    assert caught.value.reason == reason
    assert detail in caught.value.detail
