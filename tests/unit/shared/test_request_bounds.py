"""The documented bounds of requests: the largest body each endpoint accepts still makes events far below the
broker's message limit, and dates outside 2000-01-01 … 2199-12-31 are refused where they enter a service."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.fulfillment_service.schemas import MAX_LINES, OrderVolumeReport
from services.planning_service.schemas import MAX_SCENARIO_SKUS, ScenarioRequest
from services.promotion_service.schemas import LaunchCreate, PromotionCreate, PromotionRevise
from services.returns_service.schemas import ComplaintCreate, ReturnCreate, WebhookCreate
from shared.events import (
    MAX_CANNIBALIZED,
    MAX_PROMOTION_ITEMS,
    MAX_PROMOTION_LABELS,
    MAX_REPORTED_DAYS,
    CloudEvent,
    ComplaintData,
    EventType,
    InvalidEvent,
    LaunchData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
    Topic,
    new_event,
    parse_data,
)
from shared.types import MAX_DATE, MIN_DATE, PlanDate, PlanDateTime, Sku
from tests.limits import ESCAPED, EVENT_BUDGET, event_bytes, largest_promotion, widest_sku


def test_the_widest_sku_is_a_valid_sku() -> None:
    assert TypeAdapter(Sku).validate_python(widest_sku(1)) == widest_sku(1)
    with pytest.raises(ValidationError):
        TypeAdapter(Sku).validate_python("SKU\x00-1")
    with pytest.raises(ValidationError):
        TypeAdapter(Sku).validate_python("S" * 101)


def test_the_largest_promotion_makes_an_event_within_budget() -> None:
    body = PromotionCreate.model_validate(largest_promotion())
    # As the promotion service publishes it: the stored body with its status and a (very high) version.
    data = PromotionData.model_validate({**body.model_dump(mode="json"), "status": "at_risk", "version": 2**31})
    size = event_bytes(EventType.PROMOTION_REVISED, data)
    assert size < EVENT_BUDGET, size


@pytest.mark.parametrize(
    ("field", "length"),
    [
        ("items", MAX_PROMOTION_ITEMS + 1),
        ("cannibalized", MAX_CANNIBALIZED + 1),
        ("regions", MAX_PROMOTION_LABELS + 1),
        ("account_segments", MAX_PROMOTION_LABELS + 1),
    ],
)
def test_a_promotion_list_beyond_its_bound_is_refused_naming_it(field: str, length: int) -> None:
    entry = {"items": {"sku": "S", "uplift_pct": 1}, "cannibalized": {"sku": "C", "pct": 1}}.get(field, "EU")
    for model in (PromotionCreate, PromotionRevise):
        body = {**largest_promotion(), field: [entry] * length}
        if model is PromotionRevise:
            body = {field: body[field]}
        with pytest.raises(ValidationError) as raised:
            model.model_validate(body)
        assert [e["loc"] for e in raised.value.errors()] == [(field,)]


def test_the_largest_launch_return_and_complaint_make_events_within_budget() -> None:
    launch = LaunchCreate.model_validate(
        {"launch_id": "L" * 100, "sku": widest_sku(1), "launch_on": "2199-12-31", "reference_sku": widest_sku(2)}
    )
    assert event_bytes(EventType.LAUNCH_PLANNED, LaunchData.model_validate(launch.model_dump(mode="json"))) < 4096
    returned = ReturnCreate.model_validate(
        {
            "return_id": "R" * 100,
            "sku": widest_sku(1),
            "quantity": 1_000_000,
            "account_id": "A" * 100,
            "reason": "defective",
            "condition": "resellable",
            "returned_on": "2199-12-31",
            "order_id": "O" * 100,
        }
    )
    assert event_bytes(EventType.RETURN_RECORDED, ReturnData.model_validate(returned.model_dump(mode="json"))) < 4096
    complaint = ComplaintCreate.model_validate(
        {
            "complaint_id": "C" * 100,
            "account_id": "A" * 100,
            "sku": widest_sku(1),
            "category": "quality",
            "severity": "critical",
            "description": ESCAPED * 5000,
            "received_on": "2199-12-31",
        }
    )
    data = ComplaintData.model_validate(complaint.model_dump(mode="json"))
    assert event_bytes(EventType.COMPLAINT_RECORDED, data) < 64 * 1024


def test_one_reported_event_of_the_most_days_and_largest_totals_is_within_budget() -> None:
    # Totals sum every warehouse's figures of a day: give them the most digits a PostgreSQL bigint has.
    days = [
        {
            "day": (MIN_DATE + timedelta(days=i)).isoformat(),
            "units_ordered": 2**63 - 1,
            "units_shipped": 2**63 - 1,
            "units_backordered": 2**63 - 1,
        }
        for i in range(MAX_REPORTED_DAYS)
    ]
    data = OrderVolumeReportedData.model_validate({"sku": widest_sku(1), "days": days})
    assert event_bytes(EventType.ORDER_VOLUME_REPORTED, data) < EVENT_BUDGET


def test_an_order_volume_report_is_bounded_to_its_documented_lines() -> None:
    line = {"sku": "S", "day": "2026-01-01", "units_ordered": 1, "units_shipped": 1, "units_backordered": 0}
    OrderVolumeReport.model_validate({"warehouse_id": "W", "lines": [line] * MAX_LINES})
    with pytest.raises(ValidationError) as raised:
        OrderVolumeReport.model_validate({"warehouse_id": "W", "lines": [line] * (MAX_LINES + 1)})
    assert [e["loc"] for e in raised.value.errors()] == [("lines",)]


def test_webhook_event_types_are_bounded() -> None:
    types = ["sales-alert.return-surge"] * 21
    with pytest.raises(ValidationError) as raised:
        WebhookCreate.model_validate({"url": "https://crm.example/hook", "event_types": types})
    assert [e["loc"] for e in raised.value.errors()] == [("event_types",)]


def scenario(promotions: int, skus_each: int) -> dict[str, Any]:
    return {
        "promotions": [
            {
                "promotion_id": f"P{p}",
                "name": "what if",
                "starts_on": "2026-12-01",
                "ends_on": "2026-12-07",
                "items": [{"sku": f"SKU-{p}-{i}", "uplift_pct": 10} for i in range(skus_each)],
            }
            for p in range(promotions)
        ]
    }


def test_a_scenario_names_at_most_its_documented_skus_and_promotions() -> None:
    ScenarioRequest.model_validate(scenario(20, MAX_SCENARIO_SKUS // 20))
    with pytest.raises(ValidationError) as raised:
        ScenarioRequest.model_validate(scenario(20, MAX_SCENARIO_SKUS // 20 + 1))
    assert [e["loc"] for e in raised.value.errors()] == [("promotions",)]
    with pytest.raises(ValidationError) as raised:
        ScenarioRequest.model_validate(scenario(21, 1))
    assert [e["loc"] for e in raised.value.errors()] == [("promotions",)]


# ---------------------------------------------------------------- the date range


class Dated(BaseModel):
    day: PlanDate
    at: PlanDateTime | None = None


@pytest.mark.parametrize("day", [MIN_DATE, MAX_DATE, date(2026, 11, 27)])
def test_dates_inside_the_range_are_accepted(day: date) -> None:
    assert Dated.model_validate({"day": day.isoformat(), "at": f"{day.isoformat()}T23:59:59-12:00"}).day == day


@pytest.mark.parametrize(
    "value",
    ["0001-01-01", "1999-12-31", "2200-01-01", "9999-12-31"],
)
def test_dates_outside_the_range_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Dated.model_validate({"day": value})
    assert [e["loc"] for e in raised.value.errors()] == [("day",)]
    # Converting a timestamp at the end of time to UTC would itself overflow: it must still be a plain refusal.
    with pytest.raises(ValidationError) as raised:
        Dated.model_validate({"day": "2026-01-01", "at": f"{value}T23:00:00-05:00"})
    assert [e["loc"] for e in raised.value.errors()] == [("at",)]


def promotion_event(**dates: str) -> CloudEvent:
    body = {
        "promotion_id": "P",
        "name": "p",
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-02",
        "items": [{"sku": "S", "uplift_pct": 5}],
    }
    data = PromotionData.model_validate({**body, **dates})
    return new_event(EventType.PROMOTION_PLANNED, source="test", subject="P", data=data)


def test_a_consumed_event_dated_outside_the_range_is_invalid_data() -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_data(promotion_event(ends_on="9999-12-31"), Topic.PROMOTIONS.value)
    assert raised.value.reason == "invalid-data"
    assert raised.value.detail.startswith("data.ends_on:")
    parsed = parse_data(promotion_event(starts_on="2000-01-01", ends_on="2199-12-31"), Topic.PROMOTIONS.value)
    assert isinstance(parsed, PromotionData) and parsed.ends_on == MAX_DATE


def test_a_stored_copy_dated_outside_the_range_stays_readable() -> None:
    # Copies a service stored before the range existed are read without the consumer's context.
    stored = PromotionData.model_validate(promotion_event(ends_on="9999-12-31").data)
    assert stored.ends_on == date.max


def test_timestamps_in_range_keep_their_offset() -> None:
    parsed = Dated.model_validate({"day": "2026-01-01", "at": "2199-12-31T23:00:00-05:00"}).at
    assert parsed == datetime.fromisoformat("2199-12-31T23:00:00-05:00")
