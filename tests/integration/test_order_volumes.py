"""Order volumes over HTTP: validation, auth, corrections, idempotency, one event per SKU, queries."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from services.fulfillment_service.app import build_app
from shared.events import EventType, OrderVolumeReportedData, Topic, parse_data, parse_envelope
from tests.support import bearer, read_topic_to_end, running

pytestmark = pytest.mark.asyncio

DAY = date(2026, 11, 20)


def line(
    sku: str = "SKU-1", day: date = DAY, ordered: int = 120, shipped: int = 110, backordered: int = 10
) -> dict[str, Any]:
    return {
        "sku": sku,
        "day": day.isoformat(),
        "units_ordered": ordered,
        "units_shipped": shipped,
        "units_backordered": backordered,
    }


def report(*lines: dict[str, Any], warehouse_id: str = "DC-EAST") -> dict[str, Any]:
    return {"warehouse_id": warehouse_id, "lines": list(lines)}


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


async def test_auth_is_required_and_scoped(settings, api_keys):
    async with running(build_app(settings)) as client:
        assert (await client.post("/v1/order-volumes", json=report(line()))).status_code == 401
        marketing = bearer(api_keys["marketing"])
        assert (await client.post("/v1/order-volumes", json=report(line()), headers=marketing)).status_code == 403
        assert (await client.get("/v1/order-volumes", headers=marketing)).status_code == 403
        assert (await client.get("/v1/spikes", headers=marketing)).status_code == 403
        planner = bearer(api_keys["planner"])  # reads volumes, cannot write them
        assert (await client.post("/v1/order-volumes", json=report(line()), headers=planner)).status_code == 403
        assert (await client.get("/v1/spikes", headers=planner)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (report(), "lines"),
        (report(line(ordered=-1)), "lines.0.units_ordered"),
        (report(line(), {**line(), "day": "2026-13-01"}), "lines.1.day"),
        (report(line(sku="")), "lines.0.sku"),
        (report(line(), warehouse_id=""), "warehouse_id"),
        ({"lines": [line()]}, "warehouse_id"),
        (report({**line(), "colour": "red"}), "lines.0.colour"),
        (report(line(shipped=3_000_000_000)), "lines.0.units_shipped"),
    ],
)
async def test_invalid_reports_are_rejected_naming_the_field(settings, api_keys, body, field):
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/order-volumes", json=body, headers=bearer(api_keys["warehouse"]))
        assert response.status_code == 422, response.json()
        assert field in fields(response)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b'{"warehouse_id": "DC-EAST", "lines": [', "application/json"),
        (json.dumps(report(line())).encode(), "text/plain"),
        (json.dumps(report(line())).encode(), None),
        (b"[1, 2]", "application/json"),
    ],
)
async def test_a_body_missing_not_json_or_not_declared_json_is_refused_naming_body(
    settings, api_keys, content, content_type
):
    headers = bearer(api_keys["warehouse"]) | ({"content-type": content_type} if content_type else {})
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/order-volumes", content=content, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert fields(response) == ["body"]
        assert response.json()["detail"].startswith("body: ")


async def test_a_declared_json_subtype_is_read_as_json(settings, api_keys):
    headers = bearer(api_keys["warehouse"]) | {"content-type": "application/vnd.salesops+json; charset=utf-8"}
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/order-volumes", content=json.dumps(report(line())), headers=headers)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "changed": 1}


async def test_more_than_ten_thousand_lines_is_refused_naming_lines(settings, api_keys):
    lines = [line(sku=f"SKU-{i % 500}", day=DAY - timedelta(days=i // 500)) for i in range(10_001)]
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/order-volumes", json=report(*lines), headers=bearer(api_keys["warehouse"]))
        assert response.status_code == 422
        assert fields(response) == ["lines"]


async def test_corrections_replace_and_resends_change_nothing(settings, broker, api_keys, db):
    headers = bearer(api_keys["warehouse"])
    async with running(build_app(settings)) as client:
        first = report(line("SKU-1", DAY, 120), line("SKU-1", DAY + timedelta(days=1), 80), line("SKU-2", DAY, 5))
        response = await client.post("/v1/order-volumes", json=first, headers=headers)
        assert response.status_code == 202
        assert response.json() == {"accepted": 3, "changed": 3}
        assert (await client.post("/v1/order-volumes", json=first, headers=headers)).json() == {
            "accepted": 3,
            "changed": 0,
        }
        west = report(line("SKU-1", DAY, 30, 30, 0), warehouse_id="DC-WEST")
        assert (await client.post("/v1/order-volumes", json=west, headers=headers)).json()["changed"] == 1
        # A correction replaces DC-EAST's figure; within a batch the last line of a key wins.
        correction = report(line("SKU-1", DAY, 999), line("SKU-1", DAY, 100, 95, 5), line("SKU-2", DAY, 5))
        assert (await client.post("/v1/order-volumes", json=correction, headers=headers)).json() == {
            "accepted": 3,
            "changed": 1,
        }
        stored = await db.fetch(
            "select warehouse_id, units_ordered from fulfillment.volumes where sku='SKU-1' and day=$1 order by 1",
            DAY,
        )
        assert [tuple(r) for r in stored] == [("DC-EAST", 100), ("DC-WEST", 30)]

    # Read after the shutdown drained the outbox: every message, so a duplicate would show.
    messages = await read_topic_to_end(broker.bootstrap_servers, Topic.ORDER_VOLUMES.value)
    reported: dict[bytes, list[dict[str, Any]]] = {}
    for message in messages:  # order holds per key (partition), not across keys
        event = json.loads(message.value)
        assert event["type"] == EventType.ORDER_VOLUME_REPORTED.value
        reported.setdefault(message.key, []).append(event["data"])
    assert sorted(reported) == [b"SKU-1", b"SKU-2"]
    assert [[d["day"] for d in data["days"]] for data in reported[b"SKU-1"]] == [
        ["2026-11-20", "2026-11-21"],
        ["2026-11-20"],
        ["2026-11-20"],
    ]
    assert [[d["day"] for d in data["days"]] for data in reported[b"SKU-2"]] == [["2026-11-20"]]
    # The totals are across warehouses: 120 (east) + 30 (west), then 100 + 30 after the correction.
    assert [data["days"][0]["units_ordered"] for data in reported[b"SKU-1"]] == [120, 150, 130]
    assert reported[b"SKU-1"][-1]["days"][0] == {
        "day": "2026-11-20",
        "units_ordered": 130,
        "units_shipped": 125,
        "units_backordered": 5,
    }


async def test_volumes_are_listed_with_filters_and_pages(settings, api_keys):
    headers = bearer(api_keys["warehouse"])
    async with running(build_app(settings)) as client:
        east = report(*(line("SKU-1", DAY + timedelta(days=i), 10 + i) for i in range(5)), line("SKU-2", DAY))
        await client.post("/v1/order-volumes", json=east, headers=headers)
        await client.post("/v1/order-volumes", json=report(line("SKU-1", DAY), warehouse_id="DC-WEST"), headers=headers)

        async def get(**params: Any) -> dict[str, Any]:
            response = await client.get("/v1/order-volumes", params=params, headers=headers)
            assert response.status_code == 200, response.json()
            return response.json()

        assert len((await get())["data"]) == 7
        assert [r["warehouse_id"] for r in (await get(sku="SKU-1", until=DAY.isoformat()))["data"]] == [
            "DC-EAST",
            "DC-WEST",
        ]
        assert (
            len((await get(sku="SKU-1", warehouse_id="DC-EAST", since=(DAY + timedelta(days=3)).isoformat()))["data"])
            == 2
        )
        page = await get(sku="SKU-1", limit=4)
        assert len(page["data"]) == 4 and page["next_cursor"]
        rest = await get(sku="SKU-1", limit=4, cursor=page["next_cursor"])
        assert len(rest["data"]) == 2 and rest["next_cursor"] is None
        seen = {(r["day"], r["warehouse_id"]) for r in page["data"] + rest["data"]}
        assert len(seen) == 6
        bad = await client.get("/v1/order-volumes", params={"cursor": "garbage"}, headers=headers)
        assert bad.status_code == 422 and fields(bad) == ["query.cursor"]
        bad_range = await client.get(
            "/v1/order-volumes", params={"since": "2026-11-02", "until": "2026-11-01"}, headers=headers
        )
        assert bad_range.status_code == 422 and fields(bad_range) == ["query.until"]
        bad_day = await client.get("/v1/order-volumes", params={"since": "yesterday"}, headers=headers)
        assert bad_day.status_code == 422 and fields(bad_day) == ["query.since"]


async def test_a_report_s_events_in_the_outbox_are_the_contract_s_documents(settings, api_keys, db):
    """Written in one statement from pre-encoded documents: each row reads back through the contract's models,
    a SKU with more than 1,000 changed days is announced in day order in events of at most 1,000 days."""
    headers = bearer(api_keys["warehouse"])
    start = date(2020, 1, 1)
    long = [line("SKU-OUTBOX-LONG", start + timedelta(days=i), 10 + i % 3, 9, 1) for i in range(1_200)]
    async with running(build_app(settings)) as client:
        west = report(line("SKU-OUTBOX-2", DAY, 7, 7, 0), warehouse_id="DC-WEST")
        assert (await client.post("/v1/order-volumes", json=west, headers=headers)).status_code == 202
        body = report(*long, line("SKU-OUTBOX-2", DAY, 5, 4, 1))
        response = await client.post("/v1/order-volumes", json=body, headers=headers)
        assert response.json() == {"accepted": 1_201, "changed": 1_201}
    rows = await db.fetch(
        "select id, event_id, event_type, topic, key, payload from fulfillment.outbox"
        " where key in ('SKU-OUTBOX-LONG', 'SKU-OUTBOX-2') order by id"
    )
    documents = []
    for row in rows:
        event = parse_envelope(row["payload"])
        assert (event.id, event.type, event.source) == (
            row["event_id"],
            row["event_type"],
            "salesops/fulfillment-service",
        )
        data = parse_data(event, row["topic"])
        assert isinstance(data, OrderVolumeReportedData) and data.sku == row["key"] == event.subject
        documents.append(data)
    assert [(d.sku, len(d.days)) for d in documents] == [
        ("SKU-OUTBOX-2", 1),
        ("SKU-OUTBOX-2", 1),
        ("SKU-OUTBOX-LONG", 1_000),
        ("SKU-OUTBOX-LONG", 200),
    ]
    assert documents[1].days[0].model_dump() == {
        "day": DAY,
        "units_ordered": 12,
        "units_shipped": 11,
        "units_backordered": 1,
    }
    days = [d.day for d in documents[2].days + documents[3].days]
    assert days == [start + timedelta(days=i) for i in range(1_200)]
    assert [d.units_ordered for d in documents[2].days[:4]] == [10, 11, 12, 10]


async def test_reports_two_centuries_apart_are_judged_without_dense_centuries(settings, api_keys, db):
    """Each SKU reported on the first and the last accepted day: judged within the dense budget or day by day."""
    headers = bearer(api_keys["warehouse"])
    skus = [f"SKU-WIDE-{i:03d}" for i in range(100)]
    body = report(*(line(sku, day, 10) for sku in skus for day in (date(2000, 1, 1), date(2199, 12, 31))))
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/order-volumes", json=body, headers=headers)
        assert response.json() == {"accepted": 200, "changed": 200}
        again = report(*(line(sku, date(2199, 12, 31), 400) for sku in skus))
        assert (await client.post("/v1/order-volumes", json=again, headers=headers)).json()["changed"] == 100
    reported = await db.fetchval(
        "select count(*) from fulfillment.outbox where key like 'SKU-WIDE-%' and event_type = $1",
        EventType.ORDER_VOLUME_REPORTED.value,
    )
    assert reported == 200
