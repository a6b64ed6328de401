"""What every service offers the same way: health, readiness, metrics, offline docs, size limits, tracing."""

from __future__ import annotations

import json
import re

import pytest

from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from tests.support import bearer, read_topic_to_end, running

pytestmark = pytest.mark.integration

BUILDERS = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "returns": build_returns,
    "planning": build_planning,
}


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_health_readiness_metrics_and_offline_docs(settings, service):
    async with running(BUILDERS[service](settings)) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "outbox": "ok"}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "salesops_http_requests_total" in metrics.text
        assert (await client.get("/openapi.json")).json()["info"]["title"] == f"salesops {service} service"
        docs = await client.get("/docs")
        assert docs.status_code == 200
        external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", docs.text)
        assert external == [], f"/docs must work offline, found {external}"
        for asset in re.findall(r"""(?:src|href)=["'](/docs-assets/[^"']+)""", docs.text):
            assert (await client.get(asset)).status_code == 200


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_whoami_names_the_calling_key_and_its_scopes_but_never_the_secret(settings, api_keys, service):
    async with running(BUILDERS[service](settings)) as client:
        marketing = await client.get("/v1/whoami", headers=bearer(api_keys["marketing"]))
        anonymous = await client.get("/v1/whoami")
        revoked = await client.get("/v1/whoami", headers=bearer(api_keys["revoked"]))
    assert marketing.status_code == 200, marketing.text
    assert marketing.json() == {"name": "marketing", "scopes": ["promotions:read", "promotions:write"]}
    assert api_keys["marketing"] not in marketing.text
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert revoked.status_code == 401


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_oversized_bodies_get_413_with_or_without_content_length(settings, api_keys, service):
    settings.max_request_bytes = 2048
    big = json.dumps({"padding": "x" * 5000}).encode()

    async def chunks():
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    headers = {**bearer(api_keys["admin"]), "content-type": "application/json"}
    async with running(BUILDERS[service](settings)) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        path = next(p for p, ops in sorted(paths.items()) if "requestBody" in ops.get("post", {}) and "{" not in p)
        declared = await client.post(path, content=big, headers=headers)
        streamed = await client.post(path, content=chunks(), headers=headers)
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"


async def test_trace_context_travels_from_the_request_into_the_event(settings, broker, api_keys):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {
        "promotion_id": "TRACE-1",
        "name": "traced",
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-02",
        "items": [{"sku": "SKU-T", "uplift_pct": 10}],
    }
    async with running(build_promotion(settings)) as client:
        response = await client.post(
            "/v1/promotions",
            json=body,
            headers={**bearer(api_keys["marketing"]), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        assert response.status_code == 201
        assert response.headers["traceparent"].split("-")[1] == trace_id
    # Read after the shutdown drained the outbox: the event is out.
    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.promotions")
    envelope = json.loads(messages[0].value)
    assert envelope["traceparent"].split("-")[1] == trace_id
