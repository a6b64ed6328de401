"""The fulfillment service's store in dictionaries: the same answers as `SqlStore` for what handlers ask
(`FakeFulfillmentStore` for volumes, `FakeOrderStore` for sales orders)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from services.fulfillment_service.domain import (
    DayVolume,
    OrderLine,
    PromotionWindow,
    RecordShipment,
    SalesOrder,
    Spike,
)
from services.fulfillment_service.store import (
    DETECTED,
    RETRACTED,
    DailyVolumes,
    ReportState,
    StoredOrder,
    StoredShipment,
    StoredSpike,
    StoredWindow,
)
from shared.events import CloudEvent, EventType, parse_data, topic_of
from shared.outbox import EncodedEvent
from tests.fakes import Published

Figures = tuple[int, int, int]


@dataclass
class FakeFulfillmentStore:
    volumes: dict[tuple[str, str, date], Figures] = field(default_factory=dict)
    spikes: dict[tuple[str, date], StoredSpike] = field(default_factory=dict)
    windows: dict[str, StoredWindow] = field(default_factory=dict)
    locked: list[set[str]] = field(default_factory=list)
    outbox: list[EncodedEvent] = field(default_factory=list)

    async def save_volumes(self, warehouse_id: str, lines: Sequence[DayVolume]) -> dict[str, list[date]]:
        if lines:
            self.locked.append({line.sku for line in lines})
        changed: dict[str, set[date]] = defaultdict(set)
        for line in lines:
            figures = (line.units_ordered, line.units_shipped, line.units_backordered)
            key = (warehouse_id, line.sku, line.day)
            if self.volumes.get(key) != figures:
                self.volumes[key] = figures
                changed[line.sku].add(line.day)
        return {sku: sorted(days) for sku, days in changed.items()}

    def _sums(self, sku: str) -> dict[date, list[int]]:
        sums: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        for (_, volume_sku, day), figures in self.volumes.items():
            if volume_sku == sku:
                sums[day] = [total + units for total, units in zip(sums[day], figures, strict=True)]
        return sums

    async def report_state(self, froms: Mapping[str, date], spikes_from: date) -> ReportState:
        windows = [
            replace(window, skus=window.skus & set(froms))
            for window in sorted(await self.live_windows(froms), key=lambda window: window.promotion_id)
        ]
        spikes = {key: stored for key, stored in self.spikes.items() if key[0] in froms and key[1] >= spikes_from}
        return ReportState(await self.daily_volumes(froms), windows, spikes)

    async def daily_volumes(self, froms: Mapping[str, date]) -> dict[str, DailyVolumes]:
        loaded: dict[str, DailyVolumes] = {}
        for sku, start in froms.items():
            sums = self._sums(sku)
            rows = {day: figures for day, figures in sums.items() if day >= start}
            if not rows:
                continue
            first = start if min(sums) < start else min(rows)
            at = [day.toordinal() - first.toordinal() for day in rows]
            ordered, shipped, backordered = ([figures[i] for figures in rows.values()] for i in range(3))
            loaded[sku] = DailyVolumes.of(first.toordinal(), at, ordered, shipped, backordered)
        return loaded

    async def live_windows(self, skus: Collection[str]) -> list[PromotionWindow]:
        return [
            stored.window
            for stored in self.windows.values()
            if not stored.window.cancelled and stored.window.skus & set(skus)
        ]

    async def lock_skus(self, skus: Collection[str]) -> None:
        self.locked.append(set(skus))

    async def save_spikes(self, detected: Sequence[Spike]) -> None:
        for spike in detected:
            assert spike.sku is not None
            self.spikes[(spike.sku, spike.day)] = StoredSpike(DETECTED, spike)

    async def retract_spikes(self, keys: Sequence[tuple[str, date]]) -> None:
        for key in keys:
            self.spikes[key] = replace(self.spikes[key], status=RETRACTED)

    async def record_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None:
        self.outbox.extend(events)

    def take_events(self) -> list[Published]:
        """The events written to the outbox since the last call, read back through the contract's models."""
        taken, self.outbox = self.outbox, []
        published = []
        for row in taken:
            event = CloudEvent.model_validate_json(row.payload)
            assert (event.id, event.type, topic_of(EventType(event.type)).value) == (
                row.event_id,
                row.event_type,
                row.topic,
            )
            assert event.subject is not None
            data = parse_data(event, row.topic)
            published.append(Published(EventType(event.type), row.key, event.subject, data))
        return published

    async def detected_between(self, skus: Collection[str], first: date, last: date) -> list[Spike]:
        assert set(skus) <= set().union(*self.locked), "spikes are read under their SKUs' locks"
        return [
            stored.spike
            for (sku, day), stored in sorted(self.spikes.items())
            if sku in skus and first <= day <= last and stored.status == DETECTED
        ]

    async def explain(self, sku: str, day: date, promotion_id: str | None) -> Spike:
        stored = self.spikes[(sku, day)]
        spike = replace(stored.spike, explained_by_promotion_id=promotion_id)
        self.spikes[(sku, day)] = replace(stored, spike=spike)
        return spike

    async def window(self, promotion_id: str) -> StoredWindow | None:
        return self.windows.get(promotion_id)

    async def save_window(self, window: PromotionWindow, version: int) -> None:
        self.windows[window.promotion_id] = StoredWindow(window, version)


@dataclass
class FakeOrderStore:
    """Sales orders, shipments and account tiers in dictionaries, answering like `SqlStore`."""

    orders: dict[str, StoredOrder] = field(default_factory=dict)
    shipments: dict[str, StoredShipment] = field(default_factory=dict)
    tiers: dict[str, tuple[str, int]] = field(default_factory=dict)
    locked: list[str] = field(default_factory=list)
    clock: datetime = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    async def insert_order(self, order: SalesOrder, *, request_hash: str) -> StoredOrder | None:
        if order.order_id in self.orders:
            return None
        now = self._tick()
        stored = StoredOrder(order, request_hash, booked_at=now, updated_at=now)
        self.orders[order.order_id] = stored
        return stored

    async def order(self, order_id: str, *, lock: bool = False) -> StoredOrder | None:
        if lock:
            self.locked.append(order_id)
        return self.orders.get(order_id)

    async def save_order(self, order: SalesOrder, lines: Sequence[OrderLine]) -> StoredOrder:
        current = self.orders[order.order_id]
        # Only the lines handed over are written, as the SQL store does: a line left out keeps its old state.
        written = {line.line_id: line for line in lines}
        kept = {line.line_id: line for line in current.order.lines}
        merged = tuple(
            written[line.line_id] if line.line_id in written else kept[line.line_id]
            for line in order.lines
            if line.line_id in written or line.line_id in kept
        )
        stored = replace(current, order=replace(order, lines=merged), updated_at=self._tick())
        self.orders[order.order_id] = stored
        return stored

    async def shipment(self, shipment_id: str) -> StoredShipment | None:
        return self.shipments.get(shipment_id)

    async def insert_shipment(
        self, shipment: RecordShipment, *, request_hash: str, order_version: int
    ) -> StoredShipment | None:
        if shipment.shipment_id in self.shipments:
            return None
        stored = StoredShipment(
            shipment.shipment_id,
            shipment.order_id,
            shipment.shipped_on,
            shipment.lines,
            request_hash,
            order_version,
            self._tick(),
        )
        self.shipments[shipment.shipment_id] = stored
        return stored

    async def account_tier(self, account_id: str) -> tuple[str, int] | None:
        return self.tiers.get(account_id)

    async def save_account_tier(self, account_id: str, *, segment: str, version: int, changed_at: datetime) -> bool:
        held = self.tiers.get(account_id)
        if held is not None and held[1] >= version:
            return False
        self.tiers[account_id] = (segment, version)
        return True
