"""Realistic event payloads shared by the relay and consumer measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.events import DailyTotalData, EventType, OrderVolumeReportedData, new_event

# Recent history (the last 16 weeks), so every event moves the weekly history planning forecasts from.
HISTORY_DAYS = 112


def order_volume_event(index: int, skus: int) -> tuple[str, bytes]:
    """(key, CloudEvent JSON) of an `order-volume.reported` event: one SKU's daily total for one day."""
    sku = f"SKU-{index % skus:04d}"
    data = OrderVolumeReportedData(
        sku=sku,
        days=[
            DailyTotalData(
                day=datetime.now(UTC).date() - timedelta(days=1 + index // skus % HISTORY_DAYS),
                units_ordered=90 + index % 20,
                units_shipped=85 + index % 20,
                units_backordered=index % 5,
            )
        ],
    )
    event = new_event(EventType.ORDER_VOLUME_REPORTED, source="salesops/bench", subject=sku, data=data)
    return sku, event.to_json()
