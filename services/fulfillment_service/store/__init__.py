"""All of the fulfillment service's SQL. Handlers see it through two protocols, `VolumeStore` and `OrderStore`
(tests pass in-memory fakes); the read side uses the same `SqlStore`, which is both.

- `volumes.py`  reported volumes, spike verdicts, the copy of promotion windows
- `orders.py`   sales orders, their lines and shipments, the copy of account tiers
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.fulfillment_service.store import volumes
from services.fulfillment_service.store.orders import (
    ListedOrder,
    OrderFilter,
    OrderSql,
    OrderStore,
    StoredOrder,
    StoredShipment,
)
from services.fulfillment_service.store.volumes import (
    DETECTED,
    RETRACTED,
    DailyTotal,
    DailyVolumes,
    ReportState,
    SpikeFilter,
    StoredSpike,
    StoredWindow,
    VolumeFilter,
    changed_totals,
)

VolumeStore = volumes.Store

__all__ = [
    "DETECTED",
    "RETRACTED",
    "DailyTotal",
    "DailyVolumes",
    "ListedOrder",
    "OrderFilter",
    "OrderStore",
    "ReportState",
    "SpikeFilter",
    "SqlStore",
    "StoredOrder",
    "StoredShipment",
    "StoredSpike",
    "StoredWindow",
    "VolumeFilter",
    "VolumeStore",
    "changed_totals",
]


class SqlStore(volumes.SqlStore, OrderSql):
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
