"""The documents the running services serve, held against what they really do: `/openapi.json` and
`/asyncapi.json` valid, a published event and a dead-lettered message both matching the AsyncAPI document."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from shared.asyncapi import message_id
from shared.events import EventType
from tests.specs import official_asyncapi_schema
from tests.support import bearer, eventually, produce, read_topic, read_topic_to_end, running

pytestmark = pytest.mark.integration

BUILDERS = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "returns": build_returns,
    "planning": build_planning,
}


@pytest.fixture(scope="module")
def asyncapi_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return official_asyncapi_schema(tmp_path_factory.mktemp("asyncapi-specs"))


def validator_for(document: dict[str, Any], pointer: str) -> jsonschema.Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:asyncapi#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_services_serve_valid_openapi_and_asyncapi_documents(settings, asyncapi_schema, service):
    async with running(BUILDERS[service](settings)) as client:
        openapi = await client.get("/openapi.json")
        asyncapi = await client.get("/asyncapi.json")
    assert openapi.status_code == 200
    validate(openapi.json())
    assert asyncapi.status_code == 200
    document = asyncapi.json()
    errors = [e.message[:200] for e in jsonschema.Draft7Validator(asyncapi_schema).iter_errors(document)]
    assert errors == []
    assert document["info"]["title"] == f"salesops {service} service events"
    assert [server["host"] for server in document["servers"].values()] == [settings.kafka_bootstrap_servers]
    assert any(op["action"] == "send" for op in document["operations"].values())
    assert any(op["action"] == "receive" for op in document["operations"].values())


async def test_a_published_event_matches_its_message_in_the_asyncapi_document(settings, broker, api_keys):
    body = {
        "promotion_id": "DOC-1",
        "name": "documented",
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-07",
        "items": [{"sku": "SKU-DOC", "uplift_pct": 25}],
    }
    async with running(build_promotion(settings)) as client:
        document = (await client.get("/asyncapi.json")).json()
        created = await client.post("/v1/promotions", json=body, headers=bearer(api_keys["marketing"]))
        assert created.status_code == 201
    # Read after the shutdown drained the outbox: the event is out.
    [message] = await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions")
    message_name = message_id(EventType.PROMOTION_PLANNED)
    assert message_name in document["channels"]["promotions"]["messages"]
    event = json.loads(message.value)
    payload = validator_for(document, f"/components/messages/{message_name}/payload")
    payload.validate(event)
    headers = validator_for(document, f"/components/messages/{message_name}/headers")
    headers.validate({name: value.decode() for name, value in message.headers})
    assert not payload.is_valid({**event, "data": {**event["data"], "starts_on": "not a date"}})
    assert not payload.is_valid({**event, "data": {**event["data"], "promotion_id": ""}})


async def test_a_dead_lettered_message_matches_the_dead_letter_message(settings, broker):
    async with running(build_promotion(settings)) as client:
        document = (await client.get("/asyncapi.json")).json()
        await produce(broker.bootstrap_servers, "salesops.plans", b"{not json", key=b"SKU-X")

        async def dead_lettered() -> list[Any]:
            return await read_topic(broker.bootstrap_servers, "salesops.plans.dlq", expect=1, timeout=1)

        [dead] = await eventually(dead_lettered)
    assert document["channels"]["plans-dlq"]["address"] == dead.topic
    headers = {name: value.decode() for name, value in dead.headers}
    validator_for(document, "/components/messages/deadLetter/headers").validate(headers)
    assert headers["dlq-reason"] == "not-json"
    assert dead.value == b"{not json"
