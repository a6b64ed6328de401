"""Fulfillment commands and event handlers: store volume reports (a correction replaces), announce the
changed daily totals, keep spike verdicts current, and keep a copy of promotion windows.

Handlers take the store and the unit of work's publisher as parameters; only the boundary commits.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date

from services.fulfillment_service.domain import (
    Detection,
    PromotionWindow,
    ReportVolumes,
    Retraction,
    Spike,
    SpikeRule,
    days_to_reevaluate,
    detect_spikes,
    explain_spike,
    explaining_promotion,
    latest_lines,
    shift_days,
    spike_update,
)
from services.fulfillment_service.store import VolumeStore as Store
from shared.events import (
    MAX_REPORTED_DAYS,
    CloudEvent,
    DailyTotalData,
    EventType,
    InvalidEvent,
    OrderSpikeData,
    OrderVolumeReportedData,
    PromotionData,
)
from shared.ports import Publisher


async def record_volumes(
    store: Store, publisher: Publisher, command: ReportVolumes, rule: SpikeRule
) -> tuple[int, int]:
    """Store a report; returns (accepted, changed). Within a batch the last line of a key wins."""
    lines = latest_lines(command.lines)
    await store.lock_skus({line.sku for line in lines})
    changed = await store.save_volumes(command.warehouse_id, lines)
    if changed:
        await _announce_totals(store, publisher, changed)
        await reevaluate_spikes(store, publisher, changed, rule)
    return len(command.lines), sum(len(days) for days in changed.values())


async def _announce_totals(store: Store, publisher: Publisher, changed: Mapping[str, Collection[date]]) -> None:
    """A `reported` event per SKU with the new all-warehouse totals of the days that changed (several when
    more than `MAX_REPORTED_DAYS` days changed, so that a long backfill never makes an oversized event)."""
    totals = await store.daily_totals(changed)
    for sku in sorted(totals):
        days = [
            DailyTotalData(
                day=total.day,
                units_ordered=total.units_ordered,
                units_shipped=total.units_shipped,
                units_backordered=total.units_backordered,
            )
            for total in totals[sku]
        ]
        for first in range(0, len(days), MAX_REPORTED_DAYS):
            publisher.publish(
                EventType.ORDER_VOLUME_REPORTED,
                key=sku,
                subject=sku,
                data=OrderVolumeReportedData(sku=sku, days=days[first : first + MAX_REPORTED_DAYS]),
            )


def _spike_data(spike: Spike, sku: str, status: str) -> OrderSpikeData:
    return OrderSpikeData(
        sku=sku,
        day=spike.day,
        units=spike.units,
        baseline=spike.baseline,
        ratio=spike.ratio,
        explained_by_promotion_id=spike.explained_by_promotion_id,
        z_score=spike.z_score,
        excess_units=spike.excess_units,
        status=status,
    )


def _publish_spike(publisher: Publisher, event_type: EventType, spike: Spike, sku: str, status: str) -> None:
    publisher.publish(
        event_type, key=sku, subject=f"{sku}/{spike.day.isoformat()}", data=_spike_data(spike, sku, status)
    )


async def reevaluate_spikes(
    store: Store, publisher: Publisher, changed: Mapping[str, Collection[date]], rule: SpikeRule
) -> None:
    """Re-judge every day a change can move; publish new spikes, changed ones, and retractions."""
    froms = {sku: shift_days(min(days), -rule.window_days) for sku, days in changed.items()}
    series = await store.ordered_series(froms)
    windows = await store.live_windows(changed)
    stored = await store.spikes_from(changed, min(min(days) for days in changed.values()))
    for sku in sorted(changed):
        totals = series[sku]
        if not totals:
            continue
        verdicts = detect_spikes(totals, days_to_reevaluate(changed[sku], rule, until=max(totals)), rule, sku=sku)
        for day, verdict in verdicts.items():
            previous = stored.get((sku, day))
            explained = explain_spike(verdict, sku, windows) if verdict is not None else None
            update = spike_update(previous.live if previous else None, explained)
            if isinstance(update, Retraction):
                await store.retract(sku, day)
                _publish_spike(publisher, EventType.ORDER_SPIKE_RETRACTED, update.spike, sku, "retracted")
            elif isinstance(update, Detection):
                await store.save_detected(update.spike)
                _publish_spike(publisher, EventType.ORDER_SPIKE_DETECTED, update.spike, sku, "detected")


async def on_promotion_event(store: Store, publisher: Publisher, event: CloudEvent, promotion: PromotionData) -> None:
    """Keep the newest window of the promotion, then re-explain the spikes it may (no longer) explain."""
    if promotion.ends_on < promotion.starts_on:
        raise InvalidEvent("invalid-data", "data.ends_on: is before starts_on")
    previous = await store.window(promotion.promotion_id)
    if previous is not None and previous.version > promotion.version:
        return  # an older version arriving late changes nothing
    window = PromotionWindow(
        promotion_id=promotion.promotion_id,
        skus=frozenset(item.sku for item in promotion.items),
        starts_on=promotion.starts_on,
        ends_on=promotion.ends_on,
        cancelled=event.type == EventType.PROMOTION_CANCELLED or promotion.status == "cancelled",
    )
    await store.save_window(window, promotion.version)
    before = previous.window if previous else window
    affected_skus = set(window.skus) | set(before.skus)
    first = min(window.starts_on, before.starts_on)
    last = max(window.ends_on, before.ends_on)
    await _reexplain(store, publisher, affected_skus, first, last)


async def _reexplain(store: Store, publisher: Publisher, skus: set[str], first: date, last: date) -> None:
    if not skus:
        return
    windows = await store.live_windows(skus)
    for spike in await store.detected_between(skus, first, last):
        assert spike.sku is not None
        explained_by = explaining_promotion(spike.sku, spike.day, windows)
        if explained_by == spike.explained_by_promotion_id:
            continue
        updated = await store.explain(spike.sku, spike.day, explained_by)
        _publish_spike(publisher, EventType.ORDER_SPIKE_DETECTED, updated, spike.sku, "detected")
