"""Returns, complaints and accounts over HTTP: idempotent creates, validation, auth, published events."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from services.returns_service.app import build_app
from services.returns_service.settings import ReturnsSettings
from shared.settings import Settings
from tests.support import bearer, read_topic_to_end, running

TODAY = date(2026, 11, 30)


@pytest.fixture
def returns_settings(settings: Settings) -> ReturnsSettings:
    return ReturnsSettings(**settings.model_dump(), clock_today=TODAY)


def a_return(**overrides: Any) -> dict[str, Any]:
    body = {
        "return_id": "R-1",
        "sku": "SKU-1",
        "quantity": 2,
        "account_id": "ACME",
        "reason": "defective",
        "condition": "scrap",
        "returned_on": "2026-11-28",
        "resolution": "refund",
    }
    return {**body, **overrides}


async def test_return_is_created_once_and_published_once(returns_settings, broker, api_keys) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        first = await client.post("/v1/returns", json=a_return(), headers=desk)
        assert first.status_code == 201, first.text
        assert first.headers["location"] == "/v1/returns/R-1"
        retry = await client.post("/v1/returns", json=a_return(), headers=desk)
        assert retry.status_code == 200
        assert retry.json() == first.json()
        changed = await client.post("/v1/returns", json=a_return(quantity=3), headers=desk)
        assert changed.status_code == 409
        assert changed.headers["content-type"].startswith("application/problem+json")
        fetched = await client.get("/v1/returns/R-1", headers=desk)
        assert fetched.json()["quantity"] == 2
        listed = await client.get("/v1/returns", params={"sku": "SKU-1"}, headers=desk)
        assert [r["return_id"] for r in listed.json()["data"]] == ["R-1"]

    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.returns")
    assert len(messages) == 1
    event = json.loads(messages[0].value)
    assert event["type"] == "salesops.return.recorded.v1"
    assert messages[0].key == b"SKU-1"
    assert event["data"]["return_id"] == "R-1"


async def test_a_return_no_alert_depends_on_is_stored_with_its_event_once(
    returns_settings, broker, api_keys, db
) -> None:
    """Stored with its event by one statement: a retry writes no second event, a different body is refused and
    changes nothing, and the answer is the stored return as GET shows it."""
    desk = bearer(api_keys["returns-desk"])
    body = a_return(return_id="R-7", reason="wrong_item", account_id="ACME-7")
    async with running(build_app(returns_settings)) as client:
        first = await client.post("/v1/returns", json=body, headers=desk)
        assert first.status_code == 201, first.text
        assert first.headers["location"] == "/v1/returns/R-7"
        assert first.headers["content-type"] == "application/json"
        fetched = await client.get("/v1/returns/R-7", headers=desk)
        assert first.json() == fetched.json()
        assert first.json()["reason"] == "wrong_item"
        assert first.json()["order_id"] is None
        retry = await client.post("/v1/returns", json=body, headers=desk)
        assert retry.status_code == 200
        assert retry.json() == first.json()
        changed = await client.post("/v1/returns", json={**body, "quantity": 3}, headers=desk)
        assert changed.status_code == 409
        assert changed.json()["return_id"] == "R-7"
    stored = await db.fetch("select quantity from returns.returns where return_id = 'R-7'")
    assert [row["quantity"] for row in stored] == [2]
    outbox = await db.fetch("select event_type, topic, key from returns.outbox")
    assert [tuple(row) for row in outbox] == [("salesops.return.recorded.v1", "salesops.returns", "SKU-1")]

    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.returns")
    assert len(messages) == 1
    event = json.loads(messages[0].value)
    assert event["type"] == "salesops.return.recorded.v1"
    assert event["subject"] == "R-7"
    assert event["data"]["return_id"] == "R-7"
    assert event["data"]["reason"] == "wrong_item"
    assert event["traceparent"].split("-")[1] == first.headers["traceparent"].split("-")[1]


async def test_a_return_whose_event_is_too_large_is_refused_and_stores_nothing(returns_settings, api_keys, db) -> None:
    small = returns_settings.model_copy(update={"kafka_max_request_bytes": 200})
    async with running(build_app(small)) as client:
        for reason in ("wrong_item", "defective"):
            body = a_return(return_id=f"R-{reason}", reason=reason)
            response = await client.post("/v1/returns", json=body, headers=bearer(api_keys["returns-desk"]))
            assert response.status_code == 413, response.text
            assert response.json()["errors"][0]["field"] == "body"
    assert await db.fetchval("select count(*) from returns.returns") == 0
    assert await db.fetchval("select count(*) from returns.outbox") == 0


def a_complaint(**overrides: Any) -> dict[str, Any]:
    body = {
        "complaint_id": "C-1",
        "account_id": "ACME",
        "sku": "SKU-1",
        "category": "service",
        "severity": "low",
        "description": "slow answers",
        "received_on": "2026-11-28",
    }
    return {**body, **overrides}


@pytest.mark.parametrize(
    ("path", "body", "other", "new"),
    [
        ("/v1/returns", a_return(), a_return(quantity=3), a_return(return_id="R-2")),
        ("/v1/returns", a_return(reason="wrong_item"), a_return(reason="wrong_item", quantity=3), None),
        ("/v1/complaints", a_complaint(), a_complaint(description="slower"), a_complaint(complaint_id="C-2")),
        ("/v1/complaints", a_complaint(severity="critical"), a_complaint(severity="high"), None),
    ],
)
async def test_a_stored_record_answers_its_retries_as_stored_once_its_event_no_longer_fits(
    returns_settings, api_keys, db, path, body, other, new
) -> None:
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        first = await client.post(path, json=body, headers=desk)
        assert first.status_code == 201, first.text
    stored = {table: await db.fetchval(f"select count(*) from returns.{table}") for table in ("returns", "complaints")}
    published = await db.fetchval("select count(*) from returns.outbox")
    # The broker's limit lowered below the size of the event that announced it.
    small = returns_settings.model_copy(update={"kafka_max_request_bytes": 200})
    async with running(build_app(small)) as client:
        retry = await client.post(path, json=body, headers=desk)
        assert retry.status_code == 200, retry.text
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        conflicting = await client.post(path, json=other, headers=desk)
        assert conflicting.status_code == 409, conflicting.text
        if new is not None:
            refused = await client.post(path, json=new, headers=desk)
            assert refused.status_code == 413, refused.text
            assert refused.json()["errors"][0]["field"] == "body"
    assert {table: await db.fetchval(f"select count(*) from returns.{table}") for table in stored} == stored
    assert await db.fetchval("select count(*) from returns.outbox") == published


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (a_return(reason="broken"), "reason"),
        (a_return(condition="new"), "condition"),
        (a_return(quantity=0), "quantity"),
        (a_return(returned_on="2026-13-01"), "returned_on"),
        (a_return(returned_on="2027-01-05"), "returned_on"),
        (a_return(resolution="voucher"), "resolution"),
        ({k: v for k, v in a_return().items() if k != "sku"}, "sku"),
        (a_return(return_id="bad id with spaces"), "return_id"),
        (a_return(unexpected=1), "unexpected"),
    ],
)
async def test_invalid_return_names_the_field(returns_settings, api_keys, body, field) -> None:
    async with running(build_app(returns_settings)) as client:
        response = await client.post("/v1/returns", json=body, headers=bearer(api_keys["returns-desk"]))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_auth_is_required_and_scoped(returns_settings, api_keys) -> None:
    async with running(build_app(returns_settings)) as client:
        assert (await client.post("/v1/returns", json=a_return())).status_code == 401
        unknown = await client.post("/v1/returns", json=a_return(), headers=bearer("sk_unknown_" + "x" * 20))
        assert unknown.status_code == 401
        crm = await client.post("/v1/returns", json=a_return(), headers=bearer(api_keys["crm"]))
        assert crm.status_code == 403
        assert (await client.get("/v1/alerts", headers=bearer(api_keys["returns-desk"]))).status_code == 403
        assert (await client.get("/v1/webhooks", headers=bearer(api_keys["returns-desk"]))).status_code == 403


async def test_complaint_without_sku_is_keyed_by_its_id(returns_settings, broker, api_keys) -> None:
    body = {
        "complaint_id": "C-1",
        "account_id": "BOLT",
        "category": "billing",
        "severity": "low",
        "description": "invoice twice",
        "received_on": "2026-11-29",
    }
    desk = bearer(api_keys["returns-desk"])
    async with running(build_app(returns_settings)) as client:
        assert (await client.post("/v1/complaints", json=body, headers=desk)).status_code == 201
        assert (await client.post("/v1/complaints", json=body, headers=desk)).status_code == 200
        other = await client.post("/v1/complaints", json={**body, "severity": "high"}, headers=desk)
        assert other.status_code == 409
        bad = await client.post("/v1/complaints", json={**body, "complaint_id": "C-2", "severity": "x"}, headers=desk)
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["severity"]
    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.returns")
    assert [(m.key, json.loads(m.value)["type"]) for m in messages] == [(b"C-1", "salesops.complaint.recorded.v1")]


async def test_account_put_creates_then_updates(returns_settings, api_keys) -> None:
    desk = bearer(api_keys["returns-desk"])
    body = {"name": "Acme", "segment": "strategic", "owner_email": "kim@example.com"}
    async with running(build_app(returns_settings)) as client:
        created = await client.put("/v1/accounts/ACME", json=body, headers=desk)
        assert created.status_code == 201, created.text
        updated = await client.put("/v1/accounts/ACME", json={**body, "segment": "stable"}, headers=desk)
        assert updated.status_code == 200
        assert (await client.get("/v1/accounts/ACME", headers=desk)).json()["segment"] == "stable"
        bad = await client.put("/v1/accounts/ACME", json={**body, "segment": "gold"}, headers=desk)
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["segment"]
        email = await client.put("/v1/accounts/ACME", json={**body, "owner_email": "nope"}, headers=desk)
        assert [e["field"] for e in email.json()["errors"]] == ["owner_email"]
        assert (await client.get("/v1/accounts/NOPE", headers=desk)).status_code == 404


async def test_every_account_change_publishes_its_next_version_and_an_identical_put_nothing(
    returns_settings, broker, api_keys
) -> None:
    desk = bearer(api_keys["returns-desk"])
    body = {"name": "Acme", "segment": "stable", "owner_email": "kim@example.com"}
    async with running(build_app(returns_settings)) as client:
        assert (await client.put("/v1/accounts/ACME", json=body, headers=desk)).json()["version"] == 1
        same = await client.put("/v1/accounts/ACME", json=body, headers=desk)
        assert (same.status_code, same.json()["version"]) == (200, 1)
        tier = await client.put("/v1/accounts/ACME", json={**body, "segment": "strategic"}, headers=desk)
        assert tier.json()["version"] == 2
        owner = await client.put(
            "/v1/accounts/ACME", json={**body, "segment": "strategic"} | {"owner_email": None}, headers=desk
        )
        assert owner.json()["version"] == 3
        await client.put("/v1/accounts/ACME", json={**body, "segment": "strategic"}, headers=desk)  # owner back: 4
        await client.put("/v1/accounts/ACME", json={**body, "segment": "strategic"}, headers=desk)  # identical
    messages = await read_topic_to_end(broker.bootstrap_servers, "salesops.accounts")
    events = [json.loads(m.value) for m in messages]
    assert {m.key for m in messages} == {b"ACME"}
    assert {e["type"] for e in events} == {"salesops.account.changed.v1"}
    assert [(e["data"]["version"], e["data"]["segment"], e["data"].get("owner_email")) for e in events] == [
        (1, "stable", "kim@example.com"),
        (2, "strategic", "kim@example.com"),
        (3, "strategic", None),
        (4, "strategic", "kim@example.com"),
    ]
