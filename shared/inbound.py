"""Reading a CloudEvent off a Kafka record, in either content mode of the CloudEvents Kafka binding.

Structured mode carries the whole event as a JSON document in the value (what salesops publishes). Binary mode
carries the attributes in `ce_*` headers, `datacontenttype` in `content-type`, and the data alone in the value
(what many producers, warehouse systems among them, send); it is read with the official `cloudevents` SDK.
Either way the result is the same `CloudEvent`, validated as strictly, or an `InvalidEvent` naming the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cloudevents.core.bindings.kafka import CE_PREFIX, KafkaMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from pydantic import ValidationError

from shared.events import CloudEvent, EventData, InvalidEvent, parse_data, parse_envelope

Headers = Sequence[tuple[str, bytes]]

_JSON = re.compile(r"^(application|text)/([a-z0-9.+-]*\+)?json(;.*)?$", re.IGNORECASE)
_FORMAT = JSONFormat()
_REQUIRED = ("specversion", "id", "source", "type")


def is_binary(headers: Headers | None) -> bool:
    """Binary mode: `ce_*` headers and a `content-type` that is not a CloudEvents format (structured mode's
    `application/cloudevents+json`). Records without `ce_*` headers are read as structured mode, the contract's
    own, whether or not they say so."""
    content_type = ""
    binary = False
    for name, value in headers or ():
        lowered = name.lower()
        if lowered == "content-type":
            content_type = (value or b"").decode("latin-1").strip().lower()
        elif lowered.startswith(CE_PREFIX):
            binary = True
    return binary and not content_type.startswith("application/cloudevents")


def read_envelope(value: bytes | None, headers: Headers | None) -> CloudEvent:
    """The event of a record, whatever its type and data."""
    return _binary_event(value, headers or ()) if is_binary(headers) else parse_envelope(value)


def read_event(value: bytes | None, headers: Headers | None, topic: str) -> tuple[CloudEvent, EventData]:
    """The event of a record and its `data` validated against the contract's model for its type on `topic`."""
    event = read_envelope(value, headers)
    return event, parse_data(event, topic)


def _binary_event(value: bytes | None, headers: Headers) -> CloudEvent:
    present = {name.lower() for name, _ in headers}
    # Checked here: the SDK would default a missing specversion, and make up a missing id.
    missing = [f"{CE_PREFIX}{a}" for a in _REQUIRED if f"{CE_PREFIX}{a}" not in present]
    if missing:
        raise InvalidEvent("not-cloudevents", f"binary mode: missing header {', '.join(missing)}")
    message = KafkaMessage(headers={name: raw or b"" for name, raw in headers}, key=None, value=value or b"")
    try:
        parsed = from_binary(message, _FORMAT)
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not-cloudevents", f"a ce_ header is not UTF-8: {exc.reason}") from exc
    except BaseCloudEventException as exc:
        raise InvalidEvent("not-cloudevents", f"binary mode: {exc}") from exc
    except ValueError as exc:  # ce_time that is not an RFC 3339 timestamp
        raise InvalidEvent("not-cloudevents", f"binary mode: ce_time: {exc}") from exc
    attributes = parsed.get_attributes()
    data = parsed.get_data()
    content_type = attributes.get("datacontenttype") or "application/json"
    if value and not isinstance(data, dict | list) and _JSON.match(content_type):
        raise InvalidEvent("not-json", f"binary mode: the value is not the JSON its content-type {content_type} says")
    try:
        return CloudEvent.model_validate({**attributes, "datacontenttype": content_type, "data": data})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "attributes"
        raise InvalidEvent("not-cloudevents", f"binary mode: ce_{where}: {first['msg']}") from exc
