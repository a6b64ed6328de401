"""Every service response carries the security headers, errors included; the docs page allows only its own script."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from tests.support import bearer

pytestmark = pytest.mark.integration

BUILDERS = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "returns": build_returns,
    "planning": build_planning,
}


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # Unexpected errors are answered by the outermost layer and then re-raised for the server to log; the
    # client here sees the answer, as a browser would.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


def assert_protected(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    policy = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "unsafe" not in policy, where


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_every_answer_of_a_service_is_protected(settings, api_keys, service):
    settings.max_request_bytes = 2048
    app = BUILDERS[service](settings)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    async with serving(app) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        path = next(p for p, ops in sorted(paths.items()) if "requestBody" in ops.get("post", {}) and "{" not in p)
        admin = {**bearer(api_keys["admin"]), "content-type": "application/json"}
        answers = [
            await client.get("/healthz"),
            await client.get("/metrics"),
            await client.get("/openapi.json"),
            await client.post(path, content=b"{}"),  # no key
            await client.post(path, content=b"{}", headers=admin),  # invalid body
            await client.post(path, content=json.dumps({"x": "y" * 5000}), headers=admin),  # too large
            await client.get("/no/such/path"),
            await client.get("/test-only/boom"),
        ]
    assert [r.status_code for r in answers] == [200, 200, 200, 401, 422, 413, 404, 500]
    for response in answers:
        assert_protected(response)
    assert answers[0].headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_docs_page_runs_its_assets_and_its_one_inline_script_only(settings):
    async with serving(build_promotion(settings)) as client:
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert_protected(docs)
    policy = dict(d.strip().split(" ", 1) for d in docs.headers["content-security-policy"].split(";"))
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
