"""Webhooks against hostile names, hanging receivers and other keys, with real receivers on loopback and the real
database: delivery goes to the address the guard checked, hanging endpoints do not hold back a healthy one, and
a key manages only the endpoints it registered."""

from __future__ import annotations

import ipaddress
import json
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from salesops.infra import free_port
from services.returns_service.app import build_app
from services.returns_service.webhooks.ssrf import Guard, IPAddress
from shared.settings import Settings
from tests.support import bearer, eventually, running
from tests.webhook_support import (
    Receiver,
    critical,
    deliveries,
    hanging_endpoint,
    register,
    serving,
    settings_for,
)

# On loopback, 127.0.0.2 stands for the CRM's public address and 127.0.0.1 for the internal network a
# rebinding name turns to: the guard under test treats only 127.0.0.2 as public.
CRM_ADDRESS = "127.0.0.2"


def loopback_guard(*answers: list[str]) -> tuple[Guard, list[str]]:
    """A guard whose resolver answers the given lists in turn (the last one from then on)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    def crm_only(address: IPAddress) -> bool:
        return address == ipaddress.ip_address(CRM_ADDRESS)

    return Guard(allow_private=False, resolve=resolve, is_allowed=crm_only), asked


def free_on_both_addresses() -> int:
    for _ in range(50):
        port = free_port()
        if free_port(port, host=CRM_ADDRESS) == port:
            return port
    raise RuntimeError("no port free on both loopback addresses")


async def test_delivery_goes_to_the_checked_address_though_the_name_resolves_to_loopback(
    settings: Settings, api_keys: dict[str, Any]
) -> None:
    """`localhost` resolves to 127.0.0.1 for anyone who asks the system; the guard's resolver answered the
    public address. The attempt must reach the address the guard checked, under the name it was given."""
    guard, asked = loopback_guard([CRM_ADDRESS])
    port = free_on_both_addresses()
    crm, internal = Receiver(), Receiver()
    returns_settings = settings_for(settings, webhook_allow_private_targets=False)
    async with (
        serving(crm, CRM_ADDRESS, port),
        serving(internal, "127.0.0.1", port),
        running(build_app(returns_settings, guard=guard)) as client,
    ):
        hook = await register(client, api_keys["crm"], f"http://localhost:{port}/hooks")
        for n in (1, 2):
            await client.post("/v1/complaints", json=critical(f"C-{n}"), headers=bearer(api_keys["returns-desk"]))

        async def both_delivered() -> bool:
            found = await deliveries(client, api_keys["crm"], hook)
            return len(found) == 2 and all(d["status"] == "delivered" for d in found)

        await eventually(both_delivered, message="both deliveries made")
    assert len(crm.requests) == 2 and internal.requests == []
    assert {r["host"] for r in crm.requests} == {f"localhost:{port}"}
    assert len(asked) >= 3  # registration, then each attempt checks again


async def test_a_name_rebound_to_loopback_after_registration_is_refused(
    settings: Settings, api_keys: dict[str, Any]
) -> None:
    guard, _ = loopback_guard([CRM_ADDRESS], ["127.0.0.1"])
    port = free_on_both_addresses()
    crm, internal = Receiver(), Receiver()
    returns_settings = settings_for(settings, webhook_allow_private_targets=False, webhook_max_attempts=2)
    async with (
        serving(crm, CRM_ADDRESS, port),
        serving(internal, "127.0.0.1", port),
        running(build_app(returns_settings, guard=guard)) as client,
    ):
        hook = await register(client, api_keys["crm"], f"http://crm.rebind.example:{port}/hooks")
        await client.post("/v1/complaints", json=critical("C-9"), headers=bearer(api_keys["returns-desk"]))

        async def given_up() -> list[dict[str, Any]] | None:
            found = await deliveries(client, api_keys["crm"], hook)
            return found if found and found[0]["status"] == "failed" else None

        [delivery] = await eventually(given_up, message="delivery refused until given up")
    assert [a["error"].split(":")[0] for a in delivery["attempt_log"]] == ["refused", "refused"]
    assert "127.0.0.1" in delivery["attempt_log"][0]["error"]
    assert crm.requests == [] and internal.requests == []


async def test_hanging_endpoints_do_not_hold_back_a_healthy_one(
    settings: Settings, api_keys: dict[str, Any], db: asyncpg.Connection
) -> None:
    """20 endpoints accept and never answer; their attempts end only at the 30 s timeout. Every delivery to
    the healthy endpoint arrives while all of theirs are still in flight, none recorded yet."""
    healthy = Receiver()
    port = free_port()
    returns_settings = settings_for(settings, webhook_timeout_s=30)
    key, desk = api_keys["crm"], bearer(api_keys["returns-desk"])
    async with AsyncExitStack() as stack:
        hanging = [await stack.enter_async_context(hanging_endpoint()) for _ in range(20)]
        await stack.enter_async_context(serving(healthy, "127.0.0.1", port))
        client = await stack.enter_async_context(running(build_app(returns_settings)))
        hanging_ids = [await register(client, key, url) for url, _ in hanging]
        healthy_id = await register(client, key, f"http://127.0.0.1:{port}/hooks")
        for n in range(6):
            response = await client.post("/v1/complaints", json=critical(f"C-{n}"), headers=desk)
            assert response.status_code == 201

        async def healthy_has_all() -> bool:
            return len(healthy.requests) == 6

        await eventually(healthy_has_all, timeout=20, message="the healthy endpoint received every delivery")
        recorded_hanging = await db.fetchval(
            "SELECT count(*) FROM returns.webhook_attempts a JOIN returns.webhook_deliveries d USING (delivery_id)"
            " WHERE d.endpoint_id = ANY($1::text[])",
            hanging_ids,
        )
        assert recorded_hanging == 0, "a hanging attempt ended before the healthy deliveries were made"

        async def every_hanging_endpoint_tried() -> bool:
            return all(held for _, held in hanging)

        await eventually(every_hanging_endpoint_tried, message="every hanging endpoint was being attempted")
        # A receiver that never answered holds one attempt at a time, not one per delivery it has due.
        assert max(len(held) for _, held in hanging) == 1

        async def healthy_recorded() -> bool:
            # Results are recorded in batches, shortly after the attempts end.
            return [d["status"] for d in await deliveries(client, key, healthy_id)] == ["delivered"] * 6

        await eventually(healthy_recorded, message="the healthy endpoint's deliveries were recorded as delivered")


async def test_a_key_manages_only_the_endpoints_it_registered(settings: Settings, tmp_path: Any) -> None:
    keys = {
        "crm-a": ["webhooks:manage"],
        "crm-b": ["webhooks:manage"],
        "ops": ["webhooks:manage", "webhooks:admin"],
    }
    secrets_by_name = {name: f"sk_{name}_{'x' * 24}" for name in keys}
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps({"keys": [{"name": n, "key": secrets_by_name[n], "scopes": s} for n, s in keys.items()]})
    )
    a, b, ops = (bearer(secrets_by_name[n]) for n in ("crm-a", "crm-b", "ops"))
    returns_settings = settings_for(settings.model_copy(update={"api_keys_file": path}))
    async with running(build_app(returns_settings)) as client:
        hook_a = await register(client, secrets_by_name["crm-a"], "http://127.0.0.1:9/a")
        hook_b = await register(client, secrets_by_name["crm-b"], "http://127.0.0.1:9/b")

        async def listed(headers: dict[str, str]) -> list[str]:
            response = await client.get("/v1/webhooks", headers=headers)
            return [h["id"] for h in response.json()["data"]]

        assert await listed(a) == [hook_a]
        assert await listed(b) == [hook_b]
        assert sorted(await listed(ops)) == sorted([hook_a, hook_b])
        for method, path_ in [
            ("GET", f"/v1/webhooks/{hook_a}"),
            ("GET", f"/v1/webhooks/{hook_a}/deliveries"),
            ("POST", f"/v1/webhooks/{hook_a}/enable"),
            ("DELETE", f"/v1/webhooks/{hook_a}"),
        ]:
            other = await client.request(method, path_, headers=b)
            assert other.status_code == 404, (method, path_, other.status_code)
            assert other.headers["content-type"].startswith("application/problem+json")
            own = await client.request(method, path_.replace(hook_a, hook_b), headers=b)
            assert own.status_code in (200, 204), (method, path_, own.status_code)
        assert await listed(a) == [hook_a]  # b's attempts changed nothing
        assert (await client.delete(f"/v1/webhooks/{hook_a}", headers=ops)).status_code == 204
        assert await listed(ops) == []
