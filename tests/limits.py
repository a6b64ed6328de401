"""The worst cases of the documented request bounds: the widest SKU, the largest promotion, and the budget an
event must stay within."""

from __future__ import annotations

from typing import Any

from shared.events import (
    MAX_CANNIBALIZED,
    MAX_PROMOTION_ITEMS,
    MAX_PROMOTION_LABELS,
    EventData,
    EventType,
    new_event,
)

# aiokafka's default max_request_size is 1 MiB for the whole request; events are kept to three quarters of it,
# leaving room for the record batch, headers and attributes added to the envelope later.
EVENT_BUDGET = 768 * 1024

WIDE = "\U0001f600"  # four bytes of UTF-8: the most a character a SKU may hold can cost in JSON
ESCAPED = "\x01"  # six bytes in JSON (\u0001): the most a character of a free-text field can cost


def widest_sku(index: int) -> str:
    suffix = f"{index:05d}"
    return WIDE * (100 - len(suffix)) + suffix


def event_bytes(event_type: EventType, data: EventData) -> int:
    event = new_event(
        event_type,
        source="salesops/some-service-name",
        subject="S" * 200,
        data=data,
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    return len(event.to_json())


def largest_promotion() -> dict[str, Any]:
    return {
        "promotion_id": "P" * 100,
        "name": ESCAPED * 200,
        "starts_on": "2199-12-01",
        "ends_on": "2199-12-31",
        "items": [{"sku": widest_sku(i), "uplift_pct": -99.99999999999999} for i in range(MAX_PROMOTION_ITEMS)],
        "post_promo_dip_pct": 99.99999999999999,
        "post_promo_dip_weeks": 52,
        "cannibalized": [
            {"sku": widest_sku(MAX_PROMOTION_ITEMS + i), "pct": 99.99999999999999} for i in range(MAX_CANNIBALIZED)
        ],
        "channel": ESCAPED * 100,
        "regions": [ESCAPED * 50] * MAX_PROMOTION_LABELS,
        "account_segments": [ESCAPED * 50] * MAX_PROMOTION_LABELS,
    }
