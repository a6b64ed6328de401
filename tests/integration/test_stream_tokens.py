"""Alert streams a browser can open: a short-lived stream token in the URL instead of an API key (EventSource
cannot send headers), refused once forged, expired, for another scope or when its key is revoked; and CORS
answered only for the configured origins."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.auth import ApiKey, key_fingerprint
from shared.settings import Settings
from shared.stream_tokens import StreamTokens
from tests.sse_support import connected, next_events, serving
from tests.support import bearer, running

SECRET = "s" * 32
CRM_KEY = "sk_crm_" + "c" * 24
DESK_KEY = "sk_desk_" + "d" * 24


def write_keys(path: Path, *, crm_revoked: bool = False) -> None:
    keys = [
        {"name": "crm", "key": CRM_KEY, "scopes": ["alerts:read"], "revoked": crm_revoked},
        {"name": "desk", "key": DESK_KEY, "scopes": ["returns:write"]},
    ]
    path.write_text(json.dumps({"keys": keys}))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    write_keys(path)
    return path


@pytest.fixture
def returns_settings(settings: Settings, keys_file: Path) -> ReturnsSettings:
    overrides = {"api_keys_file": keys_file, "stream_token_secret": SECRET, "sse_poll_interval_s": 0.2}
    return ReturnsSettings(**{**settings.model_dump(), **overrides})


def complaint(n: int) -> dict[str, Any]:
    return {
        "complaint_id": f"C-{n}",
        "account_id": "ACME",
        "category": "quality",
        "severity": "critical",
        "description": "burning smell",
        "received_on": "2026-11-29",
    }


async def test_an_eventsource_with_a_stream_token_receives_named_events(returns_settings) -> None:
    async with serving(build_app(returns_settings)) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        issued = await http.post("/v1/alerts/stream-tokens", headers=bearer(CRM_KEY))
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]
        expires_in = datetime.fromisoformat(issued.json()["expires_at"]) - datetime.now(UTC)
        assert timedelta(seconds=290) < expires_in <= timedelta(seconds=300)
        assert CRM_KEY not in token
        assert (await http.post("/v1/alerts/stream-tokens", headers=bearer(DESK_KEY))).status_code == 403

        # As EventSource does: a plain GET with the URL only, no Authorization header.
        async with http.stream("GET", "/v1/alerts/stream", params={"token": token}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            await connected(lines)
            assert (await http.post("/v1/complaints", json=complaint(1), headers=bearer(DESK_KEY))).status_code == 201
            [event] = await next_events(lines, 1)
        assert event.event == "sales-alert.raised"
        assert event.data["type"] == "sales-alert.critical-complaint"
        assert event.data["data"]["details"]["complaint_id"] == "C-1"

        # The token opens the stream and nothing else.
        assert (await http.get("/v1/alerts", params={"token": token})).status_code == 401
        assert (await http.get("/v1/alerts", headers=bearer(token))).status_code == 401


def forged_tokens(valid: str) -> dict[str, str]:
    signer = StreamTokens(SECRET.encode(), ttl_s=300)
    fingerprint = key_fingerprint_of(CRM_KEY)
    expired, _ = signer.issue(name="crm", key_fingerprint=fingerprint, scope="alerts:read", now=time.time() - 301)
    other_scope, _ = signer.issue(name="crm", key_fingerprint=fingerprint, scope="webhooks:manage")
    other_key, _ = signer.issue(name="crm", key_fingerprint="0" * 32, scope="alerts:read")
    foreign, _ = StreamTokens(b"another-server-secret", ttl_s=300).issue(
        name="crm", key_fingerprint=fingerprint, scope="alerts:read"
    )
    payload, _, signature = valid.partition(".")[2].partition(".")
    return {
        "expired": expired,
        "signed for another scope": other_scope,
        "issued to another issue of the key": other_key,
        "signed by another secret": foreign,
        "signature altered": f"st1.{payload}.{altered(signature)}",
        "payload altered": f"st1.{altered(payload)}.{signature}",
        "not a token": "hello",
    }


def altered(text: str) -> str:
    """`text` with its first character changed: always a different string, and a different value once decoded
    (the last character of unpadded base64 may carry bits a decoder ignores, so changing it may not be)."""
    return ("B" if text[0] == "A" else "A") + text[1:]


def key_fingerprint_of(secret: str) -> str:
    return key_fingerprint(ApiKey(name="crm", key=secret, scopes=[]))


async def test_forged_expired_and_foreign_tokens_answer_401(returns_settings) -> None:
    async with running(build_app(returns_settings)) as client:
        valid = (await client.post("/v1/alerts/stream-tokens", headers=bearer(CRM_KEY))).json()["token"]
        for label, token in forged_tokens(valid).items():
            async with asyncio.timeout(10):  # a token let through opens a stream that never ends
                response = await client.get("/v1/alerts/stream", params={"token": token})
            assert response.status_code == 401, label
            assert response.headers["content-type"].startswith("application/problem+json"), label


async def test_revoking_the_key_ends_its_tokens(returns_settings, keys_file: Path) -> None:
    async with serving(build_app(returns_settings)) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        token = (await http.post("/v1/alerts/stream-tokens", headers=bearer(CRM_KEY))).json()["token"]
        async with http.stream("GET", "/v1/alerts/stream", params={"token": token}) as stream:
            lines = stream.aiter_lines()
            await connected(lines)
            write_keys(keys_file, crm_revoked=True)
            async with asyncio.timeout(15):  # the key file is re-read every 2 s, the stream checks every poll
                rest = [line async for line in lines]
        assert ": key revoked" in rest
        assert (await http.get("/v1/alerts/stream", params={"token": token})).status_code == 401


async def test_cors_preflight_is_answered_for_a_configured_origin_only(returns_settings) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    configured = returns_settings.model_copy(update={"cors_origins": ["https://crm.example.com"]})
    async with running(build_app(configured)) as client:
        allowed = await client.options(
            "/v1/alerts/stream-tokens", headers={**preflight, "Origin": "https://crm.example.com"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://crm.example.com"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "POST" in allowed.headers["access-control-allow-methods"]

        refused = await client.options(
            "/v1/alerts/stream-tokens", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        simple = await client.get("/v1/alerts", headers={**bearer(CRM_KEY), "Origin": "https://crm.example.com"})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == "https://crm.example.com"

    async with running(build_app(returns_settings)) as client:  # no origins configured: no CORS at all
        unconfigured = await client.options(
            "/v1/alerts/stream-tokens", headers={**preflight, "Origin": "https://crm.example.com"}
        )
        assert "access-control-allow-origin" not in unconfigured.headers
        assert unconfigured.status_code in (401, 405)
