"""Every endpoint of every service against every scope (and no key, an unknown key, a revoked key): only the
contract's scope passes. Endpoints come from the apps' routes, so a new endpoint is covered (or must be
mapped here) automatically. Bodies over the size limit answer 413, declared or chunked.
Webhook signatures are verified by the receiver in tests/integration/test_webhooks_delivery.py."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import Scope
from shared.settings import Settings
from tests.reliability.harness import REPORT, build_apps, live_system

PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/asyncapi.json",
}

# Path prefix -> (read scope, write scope), per service, from the contract.
SCOPE_BY_PREFIX: dict[str, tuple[Scope, Scope]] = {
    "/v1/promotions": (Scope.PROMOTIONS_READ, Scope.PROMOTIONS_WRITE),
    "/v1/launches": (Scope.PROMOTIONS_READ, Scope.PROMOTIONS_WRITE),
    "/v1/order-volumes": (Scope.VOLUMES_READ, Scope.VOLUMES_WRITE),
    "/v1/spikes": (Scope.VOLUMES_READ, Scope.VOLUMES_WRITE),
    "/v1/sales-orders": (Scope.ORDERS_READ, Scope.ORDERS_WRITE),
    "/v1/returns": (Scope.RETURNS_READ, Scope.RETURNS_WRITE),
    "/v1/complaints": (Scope.RETURNS_READ, Scope.RETURNS_WRITE),
    "/v1/accounts": (Scope.RETURNS_READ, Scope.RETURNS_WRITE),
    "/v1/alerts": (Scope.ALERTS_READ, Scope.ALERTS_READ),
    "/v1/webhooks": (Scope.WEBHOOKS_MANAGE, Scope.WEBHOOKS_MANAGE),
    "/v1/cost-rates": (Scope.COSTS_READ, Scope.COSTS_WRITE),
    "/v1/cost-to-serve": (Scope.COSTS_READ, Scope.COSTS_READ),
}
# An account's cost-to-serve is read with the costs scope, not the returns one.
COST_READS = {"/v1/accounts/{account_id}/cost-to-serve"}
# Reads that use POST: "can we promise this?" commits nothing.
READ_BY_POST = {("planning", "/v1/scenarios"), ("planning", "/v1/promises/check")}
# Any valid key passes, whatever its scopes (it learns only its own name and scopes); no key is still a 401.
ANY_KEY = "any key"
OPEN_TO_ANY_KEY = {"/v1/whoami"}
# People act on alerts with their own scope.
ALERT_ACTIONS = {"/v1/alerts/{alert_id}/acknowledge", "/v1/alerts/{alert_id}/resolve"}


def expected_scope(service: str, method: str, path: str) -> Scope | str | None:
    if path in PUBLIC:
        return None
    if path in OPEN_TO_ANY_KEY:
        return ANY_KEY
    if path in ALERT_ACTIONS:
        return Scope.ALERTS_WRITE
    if path in COST_READS:
        return Scope.COSTS_READ
    if service == "planning" and path.startswith("/v1/"):
        read = method == "GET" or (service, path) in READ_BY_POST
        return Scope.PLANNING_READ if read else Scope.PLANNING_WRITE
    for prefix, (read_scope, write_scope) in SCOPE_BY_PREFIX.items():
        if path == prefix or path.startswith(prefix + "/"):
            return read_scope if method == "GET" else write_scope
    raise AssertionError(f"{service}: no contract scope known for {method} {path}; map it in SCOPE_BY_PREFIX")


def endpoints(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app publishes in its OpenAPI document, plus the public documents."""
    found = [("GET", "/openapi.json"), ("GET", "/asyncapi.json"), ("GET", "/docs")]
    for path, operations in app.openapi()["paths"].items():
        found += [
            (method.upper(), path) for method in operations if method in {"get", "post", "put", "patch", "delete"}
        ]
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "X-1", path)


@pytest.fixture
def scoped_keys(tmp_path: Path) -> dict[str, Any]:
    keys = [
        {"name": s.value.replace(":", "-"), "key": f"sk_{secrets.token_urlsafe(20)}", "scopes": [s.value]}
        for s in Scope
    ]
    keys.append(
        {
            "name": "revoked",
            "key": f"sk_{secrets.token_urlsafe(20)}",
            "scopes": [s.value for s in Scope],
            "revoked": True,
        }
    )
    keys.append({"name": "admin", "key": f"sk_{secrets.token_urlsafe(20)}", "scopes": [s.value for s in Scope]})
    path = tmp_path / "scoped-keys.json"
    path.write_text(json.dumps({"keys": keys}))
    return {"path": path, **{k["name"]: k["key"] for k in keys}}


@pytest.fixture
async def system(
    settings: Settings, scoped_keys: dict[str, Any]
) -> AsyncIterator[tuple[dict[str, Any], dict[str, str]]]:
    limited = settings.model_copy(update={"api_keys_file": scoped_keys["path"], "max_request_bytes": 16 * 1024})
    apps = build_apps(limited)
    async with live_system(limited, apps) as urls:
        yield apps, urls


async def status_of(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> int:
    body = None if method in ("GET", "DELETE") else b"{}"
    request_headers = {**headers, "content-type": "application/json"}
    async with client.stream(method, url, content=body, headers=request_headers) as response:
        return response.status_code  # a stream's headers are enough


async def test_only_the_contract_scope_passes_every_endpoint(
    system: tuple[dict[str, Any], dict[str, str]], scoped_keys: dict[str, Any]
) -> None:
    apps, urls = system
    wrong: list[str] = []
    checked = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for service, app in apps.items():
            for method, path in endpoints(app):
                required = expected_scope(service, method, path)
                url = urls[service] + concrete(path)
                if required is None:
                    if method == "GET":
                        status = await status_of(client, method, url, {})
                        if status in (401, 403):
                            wrong.append(f"{service} {method} {path}: public endpoint answered {status}")
                    continue
                for label, key in (("no key", None), ("unknown key", "sk_" + "0" * 30), ("revoked key", "revoked")):
                    headers = {} if key is None else {"Authorization": f"Bearer {scoped_keys.get(key, key)}"}
                    status = await status_of(client, method, url, headers)
                    checked += 1
                    if status != 401:
                        wrong.append(f"{service} {method} {path} with {label}: {status}, expected 401")
                for scope in Scope:
                    key = scoped_keys[scope.value.replace(":", "-")]
                    status = await status_of(client, method, url, {"Authorization": f"Bearer {key}"})
                    checked += 1
                    passes = required == ANY_KEY or scope is required
                    if passes and status in (401, 403):
                        wrong.append(f"{service} {method} {path} with {scope}: {status}, expected to pass")
                    if not passes and status != 403:
                        wrong.append(f"{service} {method} {path} with {scope}: {status}, expected 403")
                    if status >= 500:
                        wrong.append(f"{service} {method} {path} with {scope}: {status}")
    REPORT.bad_inputs["access matrix requests"] += checked
    assert not wrong, "\n".join(wrong[:40])


async def test_bodies_over_the_limit_answer_413_declared_or_chunked(
    system: tuple[dict[str, Any], dict[str, str]], scoped_keys: dict[str, Any]
) -> None:
    apps, urls = system
    headers = {"Authorization": f"Bearer {scoped_keys['admin']}", "content-type": "application/json"}
    too_big = b'{"padding": "' + b"x" * (64 * 1024) + b'"}'

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 4096):
            yield too_big[start : start + 4096]

    async with httpx.AsyncClient(timeout=10) as client:
        for service, app in apps.items():
            paths = app.openapi()["paths"]
            writes = [(m, p) for m, p in endpoints(app) if "requestBody" in paths.get(p, {}).get(m.lower(), {})]
            assert writes, f"{service} has no endpoint taking a body"
            for method, path in writes:
                url = urls[service] + concrete(path)
                declared = await client.request(method, url, content=too_big, headers=headers)
                assert declared.status_code == 413, f"{service} {method} {path}: {declared.status_code}"
                streamed = await client.request(method, url, content=chunked(), headers=headers)
                assert streamed.status_code == 413, f"{service} {method} {path} chunked: {streamed.status_code}"
                assert streamed.headers["content-type"].startswith("application/problem+json")
                REPORT.bad_inputs["oversized bodies (declared and chunked)"] += 2
