"""The machine-readable interface documents, built from the apps without infrastructure: every OpenAPI
document valid (bearer auth, a problem document on every 4xx, readable operation ids), every AsyncAPI document
valid against the official AsyncAPI 3.0.0 JSON Schema, describing each event's data and the dead-letter topics."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from salesops.events import system_document
from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from shared.asyncapi import EventRoles, channel_id, message_id, service_document
from shared.errors import problem_response, validation_errors
from shared.events import EVENT_CATALOG, EventType, PromotionData, Topic, new_event, topic_of
from shared.settings import Settings
from tests.specs import official_asyncapi_schema

ROOT = Path(__file__).resolve().parents[3]
BUILDERS: dict[str, Callable[[Settings], FastAPI]] = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "returns": build_returns,
    "planning": build_planning,
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# API operations any valid key may call, whatever its scopes.
ANY_KEY = {"/v1/whoami"}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return {name: build(Settings()) for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def asyncapi_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return official_asyncapi_schema(tmp_path_factory.mktemp("asyncapi-specs"))


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def asyncapi_of(app: FastAPI) -> dict[str, Any]:
    return service_document(app.state.event_roles, title=app.title, version=app.version, description="")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def payload_validator(document: dict[str, Any], message: str) -> jsonschema.Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:asyncapi#/components/messages/{message}/payload"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


# ---------------------------------------------------------------- OpenAPI


@pytest.mark.parametrize("service", sorted(BUILDERS))
def test_openapi_document_is_valid_openapi(apps: dict[str, FastAPI], service: str) -> None:
    document = apps[service].openapi()
    validate(document)
    assert document["openapi"].startswith("3.1.")
    assert '"itemSchema"' not in json.dumps(document), "itemSchema is OpenAPI 3.2, not 3.1"


def test_the_validator_refuses_the_3_2_keyword_the_stream_used_to_carry(apps: dict[str, FastAPI]) -> None:
    document = json.loads(json.dumps(apps["returns"].openapi()))
    media = document["paths"]["/v1/alerts/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    assert "schema" in media and "x-itemSchema" in media
    media["itemSchema"] = media.pop("x-itemSchema")
    with pytest.raises(OpenAPIValidationError):
        validate(document)


@pytest.mark.parametrize("service", sorted(BUILDERS))
def test_every_api_operation_declares_bearer_auth_and_its_scope(apps: dict[str, FastAPI], service: str) -> None:
    document = apps[service].openapi()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    api = [(m, p, op) for m, p, op in operations(document) if p.startswith("/v1/")]
    assert api
    for method, path, operation in api:
        (requirement,) = operation["security"]
        if path in ANY_KEY:
            # Open to every valid key: a key without a scope is still told who it is.
            assert requirement["bearerAuth"] == [], (method, path)
            assert "401" in operation["responses"] and "403" not in operation["responses"], (method, path)
            continue
        (scope,) = requirement["bearerAuth"]
        assert re.fullmatch(r"[a-z]+:(read|write|manage)", scope), (method, path, scope)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
    public = [p for _, p, op in operations(document) if "security" in op and not p.startswith("/v1/")]
    assert public == []


@pytest.mark.parametrize("service", sorted(BUILDERS))
def test_every_4xx_answer_is_a_problem_document(apps: dict[str, FastAPI], service: str) -> None:
    document = apps[service].openapi()
    problem = document["components"]["schemas"]["Problem"]
    assert {"title", "status", "detail"} <= set(problem["required"])
    field_error = document["components"]["schemas"]["ProblemFieldError"]
    assert set(field_error["required"]) == {"field", "message"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    seen: set[str] = set()
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                seen.add(status)
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if "requestBody" in operation:
            assert {"413", "422"} <= set(operation["responses"]), (method, path)
        if method != "put" and "{" in path:
            assert "404" in operation["responses"], (method, path)
    assert {"401", "403", "413", "422"} <= seen


def test_problem_schema_describes_the_documents_the_services_send(apps: dict[str, FastAPI]) -> None:
    document = apps["promotion"].openapi()
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = jsonschema.Draft202012Validator({"$ref": "urn:openapi#/components/schemas/Problem"}, registry=registry)
    raw = [{"loc": ("body", "items", 0, "sku"), "msg": "Field required", "type": "missing"}]
    bodies = [
        json.loads(problem_response(422, "Unprocessable Entity", "x", errors=validation_errors(raw)).body),
        json.loads(problem_response(409, "Conflict", "the id exists", instance="/v1/x", existing="P-1").body),
        json.loads(problem_response(401, "Unauthorized", "send an API key").body),
    ]
    for body in bodies:
        validator.validate(body)
    assert not validator.is_valid({"title": "Conflict", "status": "409", "detail": "x"})
    assert not validator.is_valid({"title": "x", "status": 422, "detail": "x", "errors": [{"message": "no field"}]})


@pytest.mark.parametrize("service", sorted(BUILDERS))
def test_operation_ids_are_readable_and_unique(apps: dict[str, FastAPI], service: str) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(apps[service].openapi())]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", operation_id), operation_id


def test_operation_ids_follow_the_endpoint_names(apps: dict[str, FastAPI]) -> None:
    ids = {(m, p): op["operationId"] for m, p, op in operations(apps["promotion"].openapi())}
    assert ids[("post", "/v1/promotions")] == "createPromotion"
    assert ids[("get", "/v1/promotions")] == "listPromotions"
    assert ids[("get", "/v1/promotions/{promotion_id}")] == "getPromotion"


# ---------------------------------------------------------------- AsyncAPI


def test_every_asyncapi_document_is_valid_asyncapi_3(apps: dict[str, FastAPI], asyncapi_schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(asyncapi_schema)
    documents = {name: asyncapi_of(app) for name, app in apps.items()} | {"combined": system_document()}
    for name, document in documents.items():
        errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]
        assert errors == [], (name, errors[:5])
        assert document["asyncapi"] == "3.0.0"
    broken = json.loads(json.dumps(documents["combined"]))
    broken["operations"]["promotion_sendPromotions"]["action"] = "publish"  # AsyncAPI 2 wording
    assert not validator.is_valid(broken)


def test_asyncapi_references_resolve_and_operations_carry_their_channels_messages() -> None:
    document = system_document()
    for ref in refs(document):
        resolve(document, ref)
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name


def test_each_service_describes_what_it_publishes_consumes_and_dead_letters(apps: dict[str, FastAPI]) -> None:
    promotion = asyncapi_of(apps["promotion"])
    assert set(promotion["channels"]) == {"promotions", "plans", "plans-dlq"}
    ops = promotion["operations"]
    assert ops["sendPromotions"]["action"] == "send"
    sent = {m["$ref"].rsplit("/", 1)[1] for m in ops["sendPromotions"]["messages"]}
    assert sent == {message_id(t) for t, (topic, _) in EVENT_CATALOG.items() if topic == Topic.PROMOTIONS}
    received = {m["$ref"].rsplit("/", 1)[1] for m in ops["receivePlans"]["messages"]}
    handled = {EventType.CAPACITY_CONFLICT_DETECTED, EventType.CAPACITY_CONFLICT_RESOLVED}
    assert received == {message_id(t) for t in handled}
    assert ops["deadLetterPlans"]["channel"] == {"$ref": "#/channels/plans-dlq"}
    assert promotion["channels"]["plans-dlq"]["address"] == "salesops.plans.dlq"
    headers = promotion["components"]["messages"]["deadLetter"]["headers"]
    assert {"dlq-reason", "dlq-detail", "dlq-original-topic", "dlq-original-offset"} <= set(headers["required"])


def test_every_event_type_has_a_message_with_its_data_schema() -> None:
    document = system_document()
    schemas = document["components"]["schemas"]
    for event_type, (topic, model) in EVENT_CATALOG.items():
        message = document["components"]["messages"][message_id(event_type)]
        assert message["name"] == event_type.value
        assert message_id(event_type) in document["channels"][channel_id(topic)]["messages"]
        _, specific = message["payload"]["allOf"]
        assert specific["properties"]["data"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)


def test_message_payload_schemas_accept_events_and_refuse_broken_ones() -> None:
    document = system_document()
    validator = payload_validator(document, message_id(EventType.PROMOTION_PLANNED))
    data = PromotionData.model_validate(
        {
            "promotion_id": "BF",
            "name": "Black Friday",
            "starts_on": "2026-11-27",
            "ends_on": "2026-11-30",
            "items": [{"sku": "S", "uplift_pct": 50}],
        }
    )
    event = json.loads(new_event(EventType.PROMOTION_PLANNED, source="salesops/x", subject="BF", data=data).to_json())
    validator.validate(event)
    assert not validator.is_valid({**event, "type": EventType.PROMOTION_REVISED.value})
    assert not validator.is_valid({**event, "data": {**event["data"], "items": []}})
    assert not validator.is_valid({key: value for key, value in event.items() if key != "specversion"})


def test_combined_document_in_docs_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == system_document(), "regenerate it: salesops events asyncapi --out docs/asyncapi.json"


def test_services_declare_every_topic_they_publish_to(apps: dict[str, FastAPI]) -> None:
    """The topics behind each `uow.publish(EventType.X, ...)` in a service's code are among those it declares."""
    for name, app in apps.items():
        roles: EventRoles = app.state.event_roles
        sources = (ROOT / "services" / f"{name}_service").rglob("*.py")
        published = {
            topic_of(EventType[member]).value
            for source in sources
            for member in re.findall(r"\.publish\(\s*EventType\.([A-Z_]+)", source.read_text())
        }
        assert published, name
        assert published <= set(roles.publishes), (name, published - set(roles.publishes))
