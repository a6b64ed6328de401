"""Unit tests of the plumbing's pure parts: envelope parsing, key lookup, transient-error classification."""

from __future__ import annotations

import json
import os
import time

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.auth import ApiKey, KeyStore, Scope
from shared.db import is_transient
from shared.events import (
    ALL_TOPICS,
    EVENT_CATALOG,
    EventType,
    InvalidEvent,
    PromotionData,
    Topic,
    new_event,
    parse_data,
    parse_envelope,
    types_on,
)
from shared.observability import child_traceparent, parse_traceparent

PROMOTION = {
    "promotion_id": "P",
    "name": "p",
    "starts_on": "2026-12-01",
    "ends_on": "2026-12-02",
    "items": [{"sku": "S", "uplift_pct": 5}],
}


def test_every_contract_topic_has_a_dead_letter_topic_and_every_type_a_topic():
    assert set(ALL_TOPICS) == {t.value for t in Topic} | {f"{t.value}.dlq" for t in Topic}
    assert set(EVENT_CATALOG) == set(EventType)
    assert types_on("salesops.plans") >= {
        "salesops.mps.revised.v1",
        "salesops.capacity-conflict.detected.v1",
        "salesops.capacity-conflict.resolved.v1",
    }


def test_an_event_round_trips_through_its_json():
    event = new_event(
        EventType.PROMOTION_PLANNED, source="s", subject="P", data=PromotionData.model_validate(PROMOTION)
    )
    parsed = parse_envelope(event.to_json())
    assert parsed.id == event.id
    assert parse_data(parsed, "salesops.promotions") == PromotionData.model_validate(PROMOTION)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty-message"),
        (b"\xff\xfe not json", "not-json"),
        (b"[1, 2]", "not-cloudevents"),
        (json.dumps({"specversion": "0.3", "id": "1", "source": "s", "type": "t"}).encode(), "not-cloudevents"),
        (json.dumps({"specversion": "1.0", "source": "s", "type": "t"}).encode(), "not-cloudevents"),
    ],
)
def test_invalid_envelopes_say_why(raw, reason):
    with pytest.raises(InvalidEvent) as caught:
        parse_envelope(raw)
    assert caught.value.reason == reason


def test_unknown_types_wrong_topics_and_bad_data_are_invalid():
    event = new_event(
        EventType.PROMOTION_PLANNED, source="s", subject="P", data=PromotionData.model_validate(PROMOTION)
    )
    with pytest.raises(InvalidEvent, match="unknown-type"):
        parse_data(event.model_copy(update={"type": "salesops.nope.v1"}), "salesops.promotions")
    with pytest.raises(InvalidEvent, match="unknown-type"):
        parse_data(event, "salesops.returns")
    with pytest.raises(InvalidEvent) as caught:
        parse_data(event.model_copy(update={"data": {**PROMOTION, "items": []}}), "salesops.promotions")
    assert caught.value.reason == "invalid-data"
    assert "data.items" in caught.value.detail


def test_key_store_finds_keys_and_honours_revocation_written_later(tmp_path):
    path = tmp_path / "keys.json"
    key = ApiKey(name="crm", key="sk_crm_0123456789abcdef", scopes=[Scope.ALERTS_READ])
    path.write_text(json.dumps({"keys": [key.model_dump(mode="json")]}))
    store = KeyStore(path, recheck_interval_s=0)
    found = store.lookup("sk_crm_0123456789abcdef")
    assert found is not None and found.scopes == [Scope.ALERTS_READ]
    assert store.lookup("sk_crm_0123456789abcdeX") is None

    path.write_text(json.dumps({"keys": [key.model_dump(mode="json") | {"revoked": True}]}))
    later = time.time() + 5
    os.utime(path, (later, later))
    assert store.lookup("sk_crm_0123456789abcdef") is None


def test_an_invalid_keys_file_fails_at_startup(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"name": "x", "key": "short", "scopes": []}]}')
    with pytest.raises(ValueError, match="invalid API keys file"):
        KeyStore(path)


def test_outages_are_transient_and_bugs_or_bad_data_are_not():
    assert is_transient(OperationalError("select 1", {}, ConnectionRefusedError()))
    assert is_transient(ConnectionResetError())
    assert not is_transient(IntegrityError("insert", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("bad"))


def test_errors_of_the_driver_itself_are_told_apart_as_those_it_raises_through_sqlalchemy() -> None:
    # Raised by statements run on the driver's connection (`driver_connection`), unwrapped.
    assert is_transient(asyncpg.exceptions.AdminShutdownError("terminating connection"))  # 57P01
    assert is_transient(asyncpg.exceptions.SerializationError("could not serialize"))  # 40001
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert not is_transient(asyncpg.exceptions.UniqueViolationError("duplicate key"))  # 23505
    assert not is_transient(asyncpg.exceptions.UntranslatableCharacterError("unsupported escape"))  # 22P05


def test_trace_context_continues_a_valid_parent_and_starts_a_new_trace_otherwise():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    child = child_traceparent(parent)
    assert child.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.split("-")[2] != "00f067aa0ba902b7"
    assert parse_traceparent("garbage") is None
    assert parse_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert parse_traceparent(child_traceparent(None)) is not None
