"""Fulfillment commands and event handlers; each takes the store (through its protocol) and the unit of
work's publisher, and only the boundary commits.

- `volumes.py`  warehouse reports, spike verdicts, promotion windows
- `orders.py`   sales orders (book, change, cancel, ship) and the accounts events
"""

from services.fulfillment_service.handlers.orders import (
    WrittenOrder,
    WrittenShipment,
    book_order,
    cancel_order,
    change_order,
    on_account_changed,
    order_data,
    record_shipment,
    refused,
)
from services.fulfillment_service.handlers.volumes import on_promotion_event, record_volumes, reevaluate_spikes

__all__ = [
    "WrittenOrder",
    "WrittenShipment",
    "book_order",
    "cancel_order",
    "change_order",
    "on_account_changed",
    "on_promotion_event",
    "order_data",
    "record_shipment",
    "record_volumes",
    "reevaluate_spikes",
    "refused",
]
