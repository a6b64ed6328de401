"""Realistic event payloads shared by the relay, consumer and promising measures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.events import DailyTotalData, EventType, OrderVolumeReportedData, SalesOrderData, new_event

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


def sales_order_event(index: int, skus: int, monday: date) -> tuple[str, bytes]:
    """(key, CloudEvent JSON) of a `sales-order.booked` event: a new one-line order for one of `skus` SKUs,
    promised within the next eight weeks, by one of a few hundred accounts."""
    sku = f"SKU-{index % skus:04d}"
    order_id = f"SO-BENCH-{index:06d}"
    promised = monday + timedelta(days=7 + index % 56)
    data = SalesOrderData.model_validate(
        {
            "order_id": order_id,
            "account_id": f"ACC-{index % 400:04d}",
            "tier": ("strategic", "integrated", "emerging", "stable")[index % 4],
            "ordered_on": monday.isoformat(),
            "status": "open",
            "version": 1,
            "booked_at": datetime.now(UTC).isoformat(),
            "lines": [
                {
                    "line_id": "1",
                    "sku": sku,
                    "quantity": 5 + index % 40,
                    "requested_on": promised.isoformat(),
                    "promised_on": promised.isoformat(),
                    "shipped_quantity": 0,
                    "open_quantity": 5 + index % 40,
                }
            ],
        }
    )
    event = new_event(EventType.SALES_ORDER_BOOKED, source="salesops/bench", subject=order_id, data=data)
    return order_id, event.to_json()
