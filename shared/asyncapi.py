"""AsyncAPI 3.0 documents of the event contract, generated from the models in `shared.events`.

Each service describes the topics it publishes and consumes (and the dead-letter topics its consumers
write to); `combined_document` merges them into one document of the whole system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    EVENT_CATALOG,
    CloudEvent,
    EventType,
    Topic,
    dead_letter_topic,
    types_on,
)

if TYPE_CHECKING:
    from shared.kafka import Subscription

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"

TOPIC_DESCRIPTIONS: dict[Topic, str] = {
    Topic.PROMOTIONS: "Promotions and product launches, each change carrying the whole promotion or launch.",
    Topic.WAREHOUSE_REPORTS: "Daily order volumes that warehouse systems publish themselves (the body of "
    "`POST /v1/order-volumes` as an event).",
    Topic.ORDER_VOLUMES: "Daily order volumes per SKU over all warehouses, and the order spikes detected in them.",
    Topic.RETURNS: "Returns and complaints as they are recorded.",
    Topic.SALES_ALERTS: "Sales alerts, raised and then updated (acknowledged, resolved, new evidence).",
    Topic.PLANS: "Revisions of the master production schedule, the capacity conflicts they reveal, and the "
    "promises to booked order lines they put at risk or restore.",
    Topic.ORDERS: "Sales orders, keyed by order id: booked, changed, shipped and cancelled, each event carrying "
    "the whole order and its `version` (a consumer never applies an older version over a newer one).",
    Topic.ACCOUNTS: "Accounts with their service tier (`segment`) and owner, keyed by account id; the highest "
    "`version` of an account is current.",
}

# The headers a consumer adds when it moves a message to `<topic>.dlq` (next to the original's headers).
DEAD_LETTER_HEADERS: dict[str, dict[str, Any]] = {
    "dlq-reason": {
        "type": "string",
        "description": "why the message can never be processed",
        "examples": ["empty-message", "not-json", "not-cloudevents", "unknown-type", "invalid-data", "handler-error"],
    },
    "dlq-detail": {"type": "string", "maxLength": 2000, "description": "what exactly is wrong, naming the field"},
    "dlq-original-topic": {"type": "string", "description": "the topic the message was read from"},
    "dlq-original-partition": {"type": "string", "pattern": "^[0-9]+$"},
    "dlq-original-offset": {"type": "string", "pattern": "^[0-9]+$"},
    "dlq-consumer": {"type": "string", "description": "the consumer group that gave up on the message"},
    "dlq-failed-at": {"type": "string", "format": "date-time"},
    "dlq-truncated-from-bytes": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "present when the value was cut to fit the broker: its original size",
    },
}
REQUIRED_DEAD_LETTER_HEADERS = [name for name in DEAD_LETTER_HEADERS if name != "dlq-truncated-from-bytes"]


@dataclass(frozen=True)
class EventRoles:
    """What one application does with the topics: the topics it publishes, and per topic it consumes the
    event types it handles."""

    name: str
    title: str
    publishes: Sequence[str] = ()
    consumes: Mapping[str, Iterable[str]] = field(default_factory=dict)
    # A system outside salesops (a warehouse system), whose publishing salesops does not govern.
    external: bool = False


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def _camel(text: str) -> str:
    pascal = _pascal(text)
    return pascal[:1].lower() + pascal[1:]


def channel_id(topic: str) -> str:
    """`salesops.order-volumes` -> `order-volumes`; `salesops.order-volumes.dlq` -> `order-volumes-dlq`."""
    return topic.removeprefix("salesops.").replace(".", "-")


def message_id(event_type: str) -> str:
    """`salesops.promotion.planned.v1` -> `promotionPlannedV1`."""
    return _camel(event_type.removeprefix("salesops."))


DEAD_LETTER_MESSAGE = "deadLetter"


def _data_models() -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = [CloudEvent]
    for _, model in EVENT_CATALOG.values():
        if model not in models:
            models.append(model)
    return models


def _schemas() -> dict[str, Any]:
    """The envelope and every data model as JSON Schema, referring to each other within `components`."""
    _, top = models_json_schema(
        [(model, "validation") for model in _data_models()], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    schemas["CloudEvent"]["description"] = (
        "A CloudEvents 1.0 document in structured mode. `traceparent` is the W3C trace context extension; "
        "other extension attributes may appear and are kept."
    )
    return dict(sorted(schemas.items()))


# Topics that systems outside salesops publish to: their events need only what the consumers require.
INBOUND_TOPICS = frozenset({Topic.WAREHOUSE_REPORTS.value})


def _event_message(event_type: EventType) -> dict[str, Any]:
    topic, model = EVENT_CATALOG[event_type]
    # `salesops.order-spike.detected.v1` -> "Order spike detected (v1)"
    *words, version = event_type.value.removeprefix("salesops.").split(".")
    title = " ".join(words).replace("-", " ").capitalize() + f" ({version})"
    required = ["data"] if topic in INBOUND_TOPICS else ["id", "source", "type", "time", "subject", "data"]
    return {
        "name": event_type.value,
        "title": title,
        "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
        "contentType": CLOUDEVENTS_CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {"content-type": {"type": "string", "const": CLOUDEVENTS_CONTENT_TYPE}},
        },
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "required": required,
                    "properties": {
                        "type": {"type": "string", "const": event_type.value},
                        "datacontenttype": {"type": "string", "const": "application/json"},
                        "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "the SKU, or the entity's id where no SKU applies: one key's events stay in order",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "A message no consumer could process",
        "summary": "The original message, moved aside with the reason in its headers; the consumer carries on.",
        "headers": {
            "type": "object",
            "required": REQUIRED_DEAD_LETTER_HEADERS,
            "properties": DEAD_LETTER_HEADERS,
        },
        "payload": {
            "description": "the original value byte for byte (cut to 900,000 bytes when larger): not "
            "necessarily JSON, not necessarily CloudEvents",
        },
        "bindings": {
            "kafka": {"key": {"type": "string", "description": "the original key"}, "bindingVersion": "0.5.0"}
        },
    }


def _channel(topic: str) -> dict[str, Any]:
    types = [t for t, (tp, _) in EVENT_CATALOG.items() if tp == topic]
    return {
        "address": topic,
        "title": topic,
        "description": TOPIC_DESCRIPTIONS.get(Topic(topic), ""),
        "messages": {message_id(t): {"$ref": f"#/components/messages/{message_id(t)}"} for t in types},
        "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dead_letter_channel(topic: str) -> dict[str, Any]:
    dlq = dead_letter_topic(topic)
    return {
        "address": dlq,
        "title": dlq,
        "description": f"Messages of `{topic}` that can never be processed: not CloudEvents, an unknown type, "
        "invalid data. Read it to find out why, fix the producer, and re-publish to the original topic.",
        "messages": {DEAD_LETTER_MESSAGE: {"$ref": f"#/components/messages/{DEAD_LETTER_MESSAGE}"}},
        "bindings": {"kafka": {"topic": dlq, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


_OUTBOX_SEND = (
    "Published through a transactional outbox: if and only if the change that caused it was committed; at "
    "least once, so consumers deduplicate on the event `id`."
)
_EXTERNAL_SEND = "Published by systems outside salesops, in the same envelope; the same `id` twice counts once."


def _operations(roles: EventRoles, prefix: str = "") -> tuple[dict[str, Any], set[str]]:
    """The send and receive operations of one application, and the topics (DLQs included) they use."""
    operations: dict[str, Any] = {}
    topics: set[str] = set()

    def channel_ref(topic: str) -> dict[str, str]:
        return {"$ref": f"#/channels/{channel_id(topic)}"}

    def message_refs(topic: str, ids: Iterable[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel_id(topic)}/messages/{mid}"} for mid in ids]

    who = roles.title
    for topic in roles.publishes:
        topics.add(topic)
        types = [t for t, (tp, _) in EVENT_CATALOG.items() if tp == topic]
        operations[f"{prefix}send{_pascal(channel_id(topic))}"] = {
            "action": "send",
            "channel": channel_ref(topic),
            "title": f"{who} publishes to {topic}",
            "summary": _EXTERNAL_SEND if roles.external else _OUTBOX_SEND,
            "messages": message_refs(topic, [message_id(t) for t in types]),
        }
    for topic, handled in sorted(roles.consumes.items()):
        handled_types = sorted(t for t in handled if t in {e.value for e in EVENT_CATALOG})
        if not handled_types:
            continue
        topics.update({topic, dead_letter_topic(topic)})
        operations[f"{prefix}receive{_pascal(channel_id(topic))}"] = {
            "action": "receive",
            "channel": channel_ref(topic),
            "title": f"{who} consumes {topic}",
            "summary": "Other types of the contract on this topic are skipped; anything else is dead-lettered.",
            "messages": message_refs(topic, [message_id(t) for t in handled_types]),
        }
        operations[f"{prefix}deadLetter{_pascal(channel_id(topic))}"] = {
            "action": "send",
            "channel": channel_ref(dead_letter_topic(topic)),
            "title": f"{who} moves what it cannot process from {topic} to {dead_letter_topic(topic)}",
            "messages": message_refs(dead_letter_topic(topic), [DEAD_LETTER_MESSAGE]),
        }
    return operations, topics


def _document(
    title: str,
    version: str,
    description: str,
    operations: dict[str, Any],
    topics: set[str],
    bootstrap_servers: str | None,
) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    originals = {t.value for t in Topic}
    for topic in sorted(topics):
        if topic in originals:
            channels[channel_id(topic)] = _channel(topic)
            for event_type, (tp, _) in EVENT_CATALOG.items():
                if tp == topic:
                    messages[message_id(event_type)] = _event_message(event_type)
        else:
            original = topic.removesuffix(".dlq")
            channels[channel_id(topic)] = _dead_letter_channel(original)
            messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description,
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
    }
    if bootstrap_servers:
        document["servers"] = {
            f"broker{n}": {
                "host": host.strip(),
                "protocol": "kafka",
                "description": "from SALESOPS_KAFKA_BOOTSTRAP_SERVERS",
            }
            for n, host in enumerate(bootstrap_servers.split(","), start=1)
            if host.strip()
        }
    document["channels"] = channels
    document["operations"] = dict(sorted(operations.items()))
    document["components"] = {"schemas": _schemas(), "messages": dict(sorted(messages.items()))}
    return document


_ABOUT = (
    "Every event is a CloudEvents 1.0 JSON document in structured mode (Kafka header "
    "`content-type: application/cloudevents+json`); `data` follows the schema of its `type`. Delivery is at "
    "least once: deduplicate on the event `id`. A message a consumer can never process goes to `<topic>.dlq` "
    "with the reason in its headers."
)


def service_document(
    roles: EventRoles, *, title: str, version: str, description: str = "", bootstrap_servers: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI document of one application: the channels it publishes and consumes."""
    operations, topics = _operations(roles)
    about = f"{description}\n\n{_ABOUT}" if description else _ABOUT
    return _document(title, version, about, operations, topics, bootstrap_servers)


def combined_document(
    parts: Sequence[EventRoles], *, title: str = "salesops events", version: str = "1.0.0"
) -> dict[str, Any]:
    """One document for the whole system: every application's operations, prefixed with its name."""
    operations: dict[str, Any] = {}
    topics: set[str] = set()
    for roles in parts:
        ops, used = _operations(roles, prefix=f"{_camel(roles.name)}_")
        operations.update(ops)
        topics |= used
    return _document(title, version, _ABOUT, operations, topics, None)


def roles_of(name: str, publishes: Sequence[str], subscriptions: Sequence[Subscription]) -> EventRoles:
    """A service's roles: the topics it produces, and per consumed topic the contract types it handles."""
    consumes: dict[str, set[str]] = {}
    for subscription in subscriptions:
        for topic in subscription.topics:
            consumes.setdefault(topic, set()).update(set(subscription.handlers) & types_on(topic))
    return EventRoles(name=name, title=f"the {name} service", publishes=tuple(publishes), consumes=consumes)


def install_asyncapi(
    app: FastAPI,
    name: str,
    publishes: Sequence[str],
    subscriptions: Sequence[Subscription],
    bootstrap_servers: str | None,
) -> None:
    """`GET /asyncapi.json`: the service's event interface, built on first request."""
    roles = roles_of(name, publishes, subscriptions)
    app.state.event_roles = roles
    built: list[dict[str, Any]] = []

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> JSONResponse:
        if not built:
            built.append(
                service_document(
                    roles,
                    title=f"{app.title} events",
                    version=app.version,
                    description=app.description,
                    bootstrap_servers=bootstrap_servers,
                )
            )
        return JSONResponse(built[0])
