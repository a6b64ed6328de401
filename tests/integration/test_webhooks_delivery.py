"""Webhook delivery to a real HTTP receiver on loopback: Standard Webhooks signatures, retries with an
attempt log, persistence across a restart of the service, and the SSRF guard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook

from salesops.infra import free_port
from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from services.returns_service.webhooks.dispatcher import LEASE_MARGIN_S
from shared.settings import Settings
from tests.support import bearer, eventually, running

TODAY = date(2026, 11, 30)


@dataclass
class Receiver:
    """A CRM stand-in: records every request and answers with the next scripted status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 and yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server), timeout=10, message="server started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(
        **settings.model_dump(),
        clock_today=TODAY,
        webhook_allow_private_targets=True,
        webhook_backoff_initial_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_poll_interval_s=0.05,
        webhook_timeout_s=2,
    )


def critical(complaint_id: str) -> dict[str, Any]:
    return {
        "complaint_id": complaint_id,
        "account_id": "ACME",
        "sku": "SKU-1",
        "category": "quality",
        "severity": "critical",
        "description": "smoke from the unit",
        "received_on": "2026-11-29",
    }


async def register(client: httpx.AsyncClient, key: str, url: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/webhooks", json={"url": url, **extra}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def deliveries(client: httpx.AsyncClient, key: str, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=bearer(key))
    return list(response.json()["data"])


async def test_signed_delivery_verifies_with_standard_webhooks(returns_settings, api_keys) -> None:
    receiver = Receiver()
    async with serving(receiver) as base, running(build_app(returns_settings)) as client:
        hook = await register(client, api_keys["crm"], f"{base}/hooks", event_types=["sales-alert.critical-complaint"])
        assert hook["secret"].startswith("whsec_")
        listed = (await client.get("/v1/webhooks", headers=bearer(api_keys["crm"]))).json()["data"]
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
        await client.post("/v1/complaints", json=critical("C-1"), headers=bearer(api_keys["returns-desk"]))
        await eventually(lambda: _count(receiver.requests, 1), message="webhook received")

    body, headers = receiver.requests[0]
    payload = Webhook(hook["secret"]).verify(body, headers)
    assert payload["type"] == "sales-alert.critical-complaint"
    assert payload["data"]["details"]["complaint_id"] == "C-1"
    assert payload["data"]["priority"] == "high"
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=").verify(body, headers)


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_failing_receiver_is_retried_until_delivered_once(returns_settings, api_keys) -> None:
    receiver = Receiver(statuses=[500, 503])
    key = api_keys["crm"]
    async with serving(receiver) as base, running(build_app(returns_settings)) as client:
        hook = await register(client, key, f"{base}/hooks")
        await client.post("/v1/complaints", json=critical("C-2"), headers=bearer(api_keys["returns-desk"]))

        async def delivered() -> list[dict[str, Any]] | None:
            found = await deliveries(client, key, hook["id"])
            return found if found and found[0]["status"] == "delivered" else None

        [delivery] = await eventually(delivered, message="delivered after retries")
        assert delivery["attempts"] == 3
        log = delivery["attempt_log"]
        assert [a["status_code"] for a in log] == [500, 503, 200]
        assert [a["error"] for a in log] == ["HTTP 500", "HTTP 503", None]
        assert all(a["duration_ms"] >= 0 for a in log)
        endpoint = (await client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(key))).json()
        assert (endpoint["status"], endpoint["consecutive_failures"]) == ("enabled", 0)
        metrics = (await client.get("/metrics")).text
        assert f'salesops_webhook_attempts_total{{endpoint="{hook["id"]}",outcome="failed"}} 2.0' in metrics
        assert f'salesops_webhook_attempts_total{{endpoint="{hook["id"]}",outcome="delivered"}} 1.0' in metrics

    assert len(receiver.requests) == 3
    assert len({h["webhook-id"] for _, h in receiver.requests}) == 1  # one message, retried
    for body, headers in receiver.requests:
        Webhook(hook["secret"]).verify(body, headers)


async def test_pending_deliveries_survive_a_restart(returns_settings, api_keys) -> None:
    key = api_keys["crm"]
    down = Receiver(statuses=[503] * 1000)
    port = free_port()
    async with serving(down, port) as base, running(build_app(returns_settings)) as client:
        hook = await register(client, key, f"{base}/hooks")
        await client.post("/v1/complaints", json=critical("C-3"), headers=bearer(api_keys["returns-desk"]))
        await eventually(lambda: _count(down.requests, 1), message="first attempt made")
    # The receiver and the service are both down now; the delivery is pending in the database.
    up = Receiver()
    async with serving(up, port), running(build_app(returns_settings)) as client:
        # At once when the stopping service recorded or released its attempt; at the latest when its lease lapses
        # (seen once under a loaded machine: an attempt neither recorded nor released at the stop).
        lease_s = returns_settings.webhook_timeout_s + LEASE_MARGIN_S
        await eventually(
            lambda: _count(up.requests, 1), timeout=lease_s + 15, message="delivered by the restarted service"
        )

        async def delivered() -> bool:
            found = await deliveries(client, key, hook["id"])
            return bool(found and found[0]["status"] == "delivered")

        await eventually(delivered, message="delivery marked delivered")
        [delivery] = await deliveries(client, key, hook["id"])
        # Every attempt the first service recorded counts, and the restarted one's: an attempt still waiting for its
        # answer when the first service stopped was abandoned (made again at once by the next), not counted.
        assert len(down.requests) <= delivery["attempts"] <= len(down.requests) + 1
    payload = Webhook(hook["secret"]).verify(*up.requests[0])
    assert payload["data"]["details"]["complaint_id"] == "C-3"


async def test_webhook_endpoint_management(returns_settings, api_keys) -> None:
    key = bearer(api_keys["crm"])
    async with running(build_app(returns_settings)) as client:
        hook = await register(client, api_keys["crm"], "http://127.0.0.1:9/hooks")
        bad = await client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/", "event_types": ["sales-alert.nope"]},
            headers=key,
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"].startswith("event_types")
        assert (
            await client.post("/v1/webhooks", json={"url": "http://x"}, headers=bearer(api_keys["returns-desk"]))
        ).status_code == 403
        assert (await client.delete(f"/v1/webhooks/{hook['id']}", headers=key)).status_code == 204
        assert (await client.delete(f"/v1/webhooks/{hook['id']}", headers=key)).status_code == 404
        assert (await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=key)).status_code == 404


REFUSED_URLS = [
    "http://127.0.0.1:8080/hooks",
    "http://localhost/hooks",
    "http://[::1]/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    "http://10.1.2.3/hooks",
    "http://192.168.0.10/hooks",
    "http://100.64.0.1/hooks",
    "http://169.254.169.254/latest/meta-data",
    "http://224.0.0.1/hooks",
    "http://0.0.0.0/hooks",
    "file:///etc/passwd",
    "ftp://example.com/hooks",
    "gopher://example.com/",
    "http://user:pw@example.com/",
    "not a url",
]


async def test_ssrf_guard_refuses_private_and_non_http_targets(settings, api_keys) -> None:
    guarded = ReturnsSettings(**settings.model_dump(), webhook_allow_private_targets=False)
    async with running(build_app(guarded)) as client:
        for url in REFUSED_URLS:
            response = await client.post("/v1/webhooks", json={"url": url}, headers=bearer(api_keys["crm"]))
            assert response.status_code == 422, (url, response.text)
            assert response.json()["errors"][0]["field"] == "url", url
        listed = await client.get("/v1/webhooks", headers=bearer(api_keys["crm"]))
    assert listed.json()["data"] == []


async def test_loopback_is_allowed_only_when_configured(returns_settings, api_keys) -> None:
    async with running(build_app(returns_settings)) as client:
        assert (await register(client, api_keys["crm"], "http://127.0.0.1:9/hooks"))["status"] == "enabled"
        refused = await client.post("/v1/webhooks", json={"url": "file:///etc/passwd"}, headers=bearer(api_keys["crm"]))
        assert refused.status_code == 422
    assert json.loads(refused.text)["errors"][0]["field"] == "url"
