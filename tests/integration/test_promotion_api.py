"""Promotion API: validation, auth, idempotency, revisions, cancellation, launches, filters."""

from __future__ import annotations

from typing import Any

import pytest

from services.promotion_service.app import build_app
from tests.support import bearer, running

pytestmark = pytest.mark.asyncio


def promotion(promotion_id: str = "BF-2026", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "promotion_id": promotion_id,
        "name": "Black Friday",
        "starts_on": "2026-11-27",
        "ends_on": "2026-11-30",
        "items": [{"sku": "SKU-1", "uplift_pct": 50}],
        "post_promo_dip_pct": 20,
        "post_promo_dip_weeks": 2,
        "cannibalized": [{"sku": "SKU-2", "pct": 10}],
        "channel": "retail",
        "regions": ["EU"],
        "account_segments": ["strategic"],
    }
    body.update(changes)
    return body


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


async def test_auth_is_required_and_scoped(settings, api_keys):
    async with running(build_app(settings)) as client:
        assert (await client.post("/v1/promotions", json=promotion())).status_code == 401
        unknown = await client.get("/v1/promotions", headers=bearer("sk_nobody_" + "x" * 20))
        assert unknown.status_code == 401
        revoked = await client.post("/v1/promotions", json=promotion(), headers=bearer(api_keys["revoked"]))
        assert revoked.status_code == 401
        crm = bearer(api_keys["crm"])  # may read promotions, not write them
        assert (await client.post("/v1/promotions", json=promotion(), headers=crm)).status_code == 403
        assert (await client.patch("/v1/promotions/X", json={}, headers=crm)).status_code == 403
        assert (await client.post("/v1/promotions/X/cancel", headers=crm)).status_code == 403
        launch = {"launch_id": "L1", "sku": "NEW", "launch_on": "2026-12-01", "reference_sku": "OLD"}
        assert (await client.post("/v1/launches", json=launch, headers=crm)).status_code == 403
        assert (await client.get("/v1/launches", headers=bearer(api_keys["warehouse"]))).status_code == 403
        assert (await client.get("/v1/promotions", headers=crm)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (promotion(ends_on="2026-11-01"), "ends_on"),
        (promotion(starts_on="27/11/2026"), "starts_on"),
        (promotion(items=[]), "items"),
        (promotion(items=[{"sku": "SKU-1", "uplift_pct": -100}]), "items.0.uplift_pct"),
        (
            promotion(items=[{"sku": "SKU-1", "uplift_pct": 5}, {"sku": "SKU-1", "uplift_pct": 6}]),
            "items.1.sku",
        ),
        (promotion(cannibalized=[{"sku": "SKU-1", "pct": 5}]), "cannibalized.0.sku"),
        (promotion(post_promo_dip_pct=101), "post_promo_dip_pct"),
        (promotion(promotion_id=""), "promotion_id"),
        (promotion(colour="red"), "colour"),
    ],
)
async def test_create_rejects_invalid_bodies_naming_the_field(settings, api_keys, body, field):
    async with running(build_app(settings)) as client:
        response = await client.post("/v1/promotions", json=body, headers=bearer(api_keys["marketing"]))
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in fields(response)


async def test_create_is_idempotent_and_conflicts_on_a_different_body(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        first = await client.post("/v1/promotions", json=promotion(), headers=headers)
        assert first.status_code == 201
        assert first.json()["status"] == "planned" and first.json()["version"] == 1
        again = await client.post("/v1/promotions", json=promotion(), headers=headers)
        assert again.status_code == 200
        assert again.json()["version"] == 1
        different = await client.post("/v1/promotions", json=promotion(name="Other"), headers=headers)
        assert different.status_code == 409


async def test_overlapping_promotions_are_allowed_with_a_warning(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        assert (await client.post("/v1/promotions", json=promotion(), headers=headers)).json()["warnings"] == []
        second = await client.post(
            "/v1/promotions",
            json=promotion("CYBER", starts_on="2026-11-30", ends_on="2026-12-02", cannibalized=[]),
            headers=headers,
        )
        assert second.status_code == 201
        assert [(w["code"], w["sku"], w["promotion_id"]) for w in second.json()["warnings"]] == [
            ("overlapping-promotion", "SKU-1", "BF-2026")
        ]
        # Moving it out of the window removes the warning.
        moved = await client.patch(
            "/v1/promotions/CYBER", json={"starts_on": "2026-12-05", "ends_on": "2026-12-06"}, headers=headers
        )
        assert moved.status_code == 200 and moved.json()["warnings"] == []


async def test_revise_merges_fields_bumps_version_and_validates(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        await client.post("/v1/promotions", json=promotion(), headers=headers)
        revised = await client.patch(
            "/v1/promotions/BF-2026",
            json={"items": [{"sku": "SKU-1", "uplift_pct": 80}], "channel": None},
            headers=headers,
        )
        assert revised.status_code == 200
        body = revised.json()
        assert body["version"] == 2 and body["items"][0]["uplift_pct"] == 80
        assert body["channel"] is None and body["name"] == "Black Friday"
        unchanged = await client.patch("/v1/promotions/BF-2026", json={"name": "Black Friday"}, headers=headers)
        assert unchanged.json()["version"] == 2

        cases = [
            ({"ends_on": "2026-11-01"}, "ends_on"),
            ({"starts_on": "2026-12-24"}, "ends_on"),
            ({"items": []}, "items"),
            ({"name": None}, "name"),
            ({"items": [{"sku": "A", "uplift_pct": 1}, {"sku": "A", "uplift_pct": 2}]}, "items.1.sku"),
            ({"promotion_id": "OTHER"}, "promotion_id"),
            ({"post_promo_dip_weeks": -1}, "post_promo_dip_weeks"),
        ]
        for change, field in cases:
            response = await client.patch("/v1/promotions/BF-2026", json=change, headers=headers)
            assert response.status_code == 422, change
            assert field in fields(response), (change, response.json())
        missing = await client.patch("/v1/promotions/NOPE", json={"name": "x"}, headers=headers)
        assert missing.status_code == 404
        stored = await client.get("/v1/promotions/BF-2026", headers=headers)
        assert stored.json()["version"] == 2


async def test_cancel_is_idempotent_and_final(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        await client.post("/v1/promotions", json=promotion(), headers=headers)
        first = await client.post("/v1/promotions/BF-2026/cancel", headers=headers)
        assert first.status_code == 200
        assert first.json()["status"] == "cancelled" and first.json()["version"] == 2
        second = await client.post("/v1/promotions/BF-2026/cancel", headers=headers)
        assert second.status_code == 200 and second.json()["version"] == 2
        revise = await client.patch("/v1/promotions/BF-2026", json={"name": "late"}, headers=headers)
        assert revise.status_code == 409
        assert (await client.post("/v1/promotions/NOPE/cancel", headers=headers)).status_code == 404


async def test_list_filters_by_status_sku_and_dates(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    async with running(build_app(settings)) as client:
        await client.post("/v1/promotions", json=promotion("A"), headers=headers)
        await client.post(
            "/v1/promotions",
            json=promotion(
                "B", starts_on="2026-12-10", ends_on="2026-12-20", items=[{"sku": "SKU-9", "uplift_pct": 5}]
            ),
            headers=headers,
        )
        await client.post("/v1/promotions", json=promotion("C"), headers=headers)
        await client.post("/v1/promotions/C/cancel", headers=headers)

        async def ids(**params: str) -> list[str]:
            response = await client.get("/v1/promotions", params=params, headers=headers)
            assert response.status_code == 200, response.json()
            return [p["promotion_id"] for p in response.json()["data"]]

        assert await ids() == ["A", "B", "C"]
        assert await ids(status="cancelled") == ["C"]
        assert await ids(sku="SKU-9") == ["B"]
        assert await ids(active_on="2026-11-28") == ["A", "C"]
        assert await ids(since="2026-12-01") == ["B"]
        assert await ids(until="2026-12-01") == ["A", "C"]
        assert await ids(since="2026-11-30", until="2026-12-10") == ["A", "B", "C"]
        page = (await client.get("/v1/promotions", params={"limit": 2}, headers=headers)).json()
        assert [p["promotion_id"] for p in page["data"]] == ["A", "B"] and page["next_after"] == "B"
        assert await ids(after="B") == ["C"]
        bad = await client.get("/v1/promotions", params={"status": "paused"}, headers=headers)
        assert bad.status_code == 422 and "query.status" in fields(bad)
        bad_dates = await client.get(
            "/v1/promotions", params={"since": "2026-12-02", "until": "2026-12-01"}, headers=headers
        )
        assert bad_dates.status_code == 422 and "query.until" in fields(bad_dates)
        assert (await client.get("/v1/promotions/NOPE", headers=headers)).status_code == 404


async def test_launches_are_idempotent_and_validated(settings, api_keys):
    headers = bearer(api_keys["marketing"])
    launch = {
        "launch_id": "L-1",
        "sku": "NEW-1",
        "launch_on": "2026-12-01",
        "reference_sku": "OLD-1",
        "scale_pct": 80,
        "ramp_weeks": 4,
    }
    async with running(build_app(settings)) as client:
        created = await client.post("/v1/launches", json=launch, headers=headers)
        assert created.status_code == 201 and created.json()["scale_pct"] == 80
        assert (await client.post("/v1/launches", json=launch, headers=headers)).status_code == 200
        other = await client.post("/v1/launches", json={**launch, "scale_pct": 90}, headers=headers)
        assert other.status_code == 409
        same_sku = await client.post(
            "/v1/launches", json={**launch, "launch_id": "L-2", "reference_sku": "NEW-1"}, headers=headers
        )
        assert same_sku.status_code == 422 and "reference_sku" in fields(same_sku)
        for change, field in [
            ({"scale_pct": 0}, "scale_pct"),
            ({"ramp_weeks": -1}, "ramp_weeks"),
            ({"launch_on": "soon"}, "launch_on"),
        ]:
            response = await client.post("/v1/launches", json={**launch, "launch_id": "L-3", **change}, headers=headers)
            assert response.status_code == 422 and field in fields(response)
        assert (await client.get("/v1/launches/L-1", headers=headers)).json()["sku"] == "NEW-1"
        assert (await client.get("/v1/launches/NOPE", headers=headers)).status_code == 404
        listed = await client.get("/v1/launches", params={"sku": "NEW-1"}, headers=headers)
        assert [item["launch_id"] for item in listed.json()["data"]] == ["L-1"]
