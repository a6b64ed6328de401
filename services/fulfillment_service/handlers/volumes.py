"""Fulfillment commands and event handlers: store volume reports (a correction replaces), announce the
changed daily totals, keep spike verdicts current, and keep a copy of promotion windows.

Handlers take the store and the unit of work's publisher as parameters; only the boundary commits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from typing import Any, Protocol

from services.fulfillment_service.domain import (
    Detection,
    PromotionWindow,
    ReportVolumes,
    Retraction,
    Spike,
    SpikeRule,
    explain_spike,
    explaining_promotion,
    judge_report,
    latest_lines,
    shift_days,
    spike_update,
)
from services.fulfillment_service.store import DailyTotal, DailyVolumes, ReportState, changed_totals
from services.fulfillment_service.store import VolumeStore as Store
from shared.events import (
    MAX_REPORTED_DAYS,
    CloudEvent,
    EventType,
    InvalidEvent,
    OrderSpikeData,
    PromotionData,
    topic_of,
)
from shared.outbox import EncodedEvent
from shared.ports import Publisher


class EventSource(Protocol):
    """The unit of work as a report's handler uses it: a report's events are built as plain documents and
    written to the outbox in one statement through the store, under the unit of work's source and trace; the
    unit of work wakes the relay once it commits."""

    @property
    def source(self) -> str: ...

    @property
    def traceparent(self) -> str | None: ...

    def wrote_outbox(self) -> None:
        """The relay is to be woken once the unit of work commits."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# A string as JSON, exactly as `_json` writes one (what `json.dumps` itself calls for a string), without building
# an encoder per call.
_string = encode_basestring

_IDS_PER_READ = 64


def random_ids() -> Iterator[str]:
    """Random (version 4) UUIDs in the text `str(uuid.uuid4())` writes, 64 from each read of the OS's random
    source rather than one read and one `UUID` object per id."""
    while True:
        raw = bytearray(os.urandom(16 * _IDS_PER_READ))
        for at in range(0, len(raw), 16):
            raw[at + 6] = raw[at + 6] & 0x0F | 0x40  # version 4
            raw[at + 8] = raw[at + 8] & 0x3F | 0x80  # the RFC 4122 variant
        digits = raw.hex()
        for at in range(0, len(digits), 32):
            yield (
                f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-{digits[at + 12 : at + 16]}"
                f"-{digits[at + 16 : at + 20]}-{digits[at + 20 : at + 32]}"
            )


class EventBatch:
    """A report's events as the outbox stores them, in order: CloudEvents encoded from plain values, byte for
    byte the documents `shared.events.new_event(...).to_json()` makes of the contract's models (a test holds
    them to it), without a model per event or per day."""

    def __init__(self, source: str, traceparent: str | None) -> None:
        time = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self._source = f',"source":{_string(source)},"type":"'
        self._time = f'","time":"{time}","subject":'
        self._trace = "}" if traceparent is None else f',"traceparent":{_string(traceparent)}}}'
        # Per event type, its value and topic (an enum's `.value` is a descriptor call each time).
        self._types: dict[EventType, tuple[str, str]] = {}
        self.rows: list[EncodedEvent] = []
        self._ids = random_ids()

    def add(self, event_type: EventType, *, key: str, subject: str, data: str) -> None:
        """Add an event whose `data` is already encoded JSON."""
        self.add_encoded(event_type, key=key, subject_json=_string(subject), data=data)

    def add_encoded(self, event_type: EventType, *, key: str, subject_json: str, data: str) -> None:
        """`add` with the subject already encoded as a JSON string."""
        names = self._types.get(event_type)
        if names is None:
            names = self._types[event_type] = (event_type.value, topic_of(event_type).value)
        event_id = next(self._ids)
        payload = (
            f'{{"specversion":"1.0","id":"{event_id}"{self._source}{names[0]}{self._time}{subject_json}'
            f',"datacontenttype":"application/json","data":{data}{self._trace}'
        )
        self.rows.append(EncodedEvent(event_id, names[0], names[1], key, payload.encode()))


# One day of `OrderVolumeReportedData` (dates and whole numbers need no escaping).
_DAY = '{{"day":"{}","units_ordered":{},"units_shipped":{},"units_backordered":{}}}'.format


def reported_data(sku: str, totals: Iterable[DailyTotal]) -> str:
    """`OrderVolumeReportedData`, encoded."""
    days = ",".join(
        _DAY(day.isoformat(), ordered, shipped, backordered) for day, ordered, shipped, backordered in totals
    )
    return f'{{"sku":{_string(sku)},"days":[{days}]}}'


def spike_json(spike: Spike, sku: str, status: str) -> str:
    """`OrderSpikeData`, encoded."""
    return _json(spike_data(spike, sku, status))


def spike_data(spike: Spike, sku: str, status: str) -> dict[str, Any]:
    """`OrderSpikeData` as a plain dict."""
    return {
        "sku": sku,
        "day": spike.day.isoformat(),
        "units": spike.units,
        "baseline": spike.baseline,
        "ratio": spike.ratio,
        "explained_by_promotion_id": spike.explained_by_promotion_id,
        "z_score": spike.z_score,
        "excess_units": spike.excess_units,
        "status": status,
    }


async def record_volumes(
    store: Store,
    publisher: EventSource,
    command: ReportVolumes,
    rule: SpikeRule,
    *,
    max_event_bytes: int | None = None,
) -> tuple[int, int]:
    """Store a report; returns (accepted, changed). Within a batch the last line of a key wins. The report's
    events (changed totals, spike verdicts) are written to the outbox in one statement; an event over
    `max_event_bytes` refuses the whole report (`EventTooLarge`)."""
    lines = latest_lines(command.lines)
    changed = await store.save_volumes(command.warehouse_id, lines)  # locks the report's SKUs first
    if changed:
        # One read for all: the totals of the changed days, every day the spike rule needs around them, and the
        # promotion windows and stored spikes the verdicts meet.
        froms = {sku: shift_days(days[0], -rule.window_days) for sku, days in changed.items()}
        state = await store.report_state(froms, min(days[0] for days in changed.values()))
        events = EventBatch(publisher.source, publisher.traceparent)
        _announce_totals(events, changed, state.volumes)
        detected, retracted = reevaluate_spikes(events, changed, state, rule)
        await store.retract_spikes(retracted)
        await store.save_spikes(detected)
        await store.record_events(events.rows, max_bytes=max_event_bytes)
        if events.rows:
            publisher.wrote_outbox()
    return len(command.lines), sum(len(days) for days in changed.values())


def _announce_totals(
    events: EventBatch, changed: Mapping[str, Sequence[date]], loaded: Mapping[str, DailyVolumes]
) -> None:
    """A `reported` event per SKU with the new all-warehouse totals of the days that changed (several when
    more than `MAX_REPORTED_DAYS` days changed, so that a long backfill never makes an oversized event)."""
    skus = [sku for sku in sorted(changed) if sku in loaded]
    if not skus:
        return
    ordered, shipped, backordered = changed_totals([loaded[sku] for sku in skus], [changed[sku] for sku in skus])
    iso: dict[date, str] = {}  # a report's SKUs mostly share their days: each day's text is made once
    start = 0
    for sku in skus:
        days = changed[sku]
        texts = [iso.get(day) or iso.setdefault(day, day.isoformat()) for day in days]
        sku_json = _string(sku)
        for first in range(0, len(days), MAX_REPORTED_DAYS):
            last = min(first + MAX_REPORTED_DAYS, len(days))
            at, end = start + first, start + last
            encoded = ",".join(map(_DAY, texts[first:last], ordered[at:end], shipped[at:end], backordered[at:end]))
            data = f'{{"sku":{sku_json},"days":[{encoded}]}}'
            events.add_encoded(EventType.ORDER_VOLUME_REPORTED, key=sku, subject_json=sku_json, data=data)
        start += len(days)


def _spike_event(events: EventBatch, event_type: EventType, spike: Spike, sku: str, status: str) -> None:
    events.add(event_type, key=sku, subject=f"{sku}/{spike.day.isoformat()}", data=spike_json(spike, sku, status))


def reevaluate_spikes(
    events: EventBatch, changed: Mapping[str, Sequence[date]], state: ReportState, rule: SpikeRule
) -> tuple[list[Spike], list[tuple[str, date]]]:
    """Re-judge every day a change can move (all SKUs of the report at once, on `state.volumes`: each SKU's daily
    units ordered from `window_days` before its first changed day) against the stored spikes and promotion
    windows of `state`; publish new spikes, changed ones, and retractions. Returns the spikes to store as
    detected and the (sku, day) of those to mark retracted."""
    verdicts = judge_report({sku: volumes.series for sku, volumes in state.volumes.items()}, changed, rule)
    stored = state.spikes
    # Each judged day with a verdict or a stored spike, in (sku, day) order as the events go out.
    days = sorted({*verdicts.spikes, *(key for key in stored if verdicts.judged(*key))})
    detected: list[Spike] = []
    retracted: list[tuple[str, date]] = []
    for sku, day in days:
        previous = stored.get((sku, day))
        verdict = verdicts.spikes.get((sku, day))
        explained = explain_spike(verdict, sku, state.windows) if verdict is not None else None
        update = spike_update(previous.live if previous else None, explained)
        if isinstance(update, Retraction):
            retracted.append((sku, day))
            _spike_event(events, EventType.ORDER_SPIKE_RETRACTED, update.spike, sku, "retracted")
        elif isinstance(update, Detection):
            detected.append(update.spike)
            _spike_event(events, EventType.ORDER_SPIKE_DETECTED, update.spike, sku, "detected")
    return detected, retracted


def _spike_payload(spike: Spike, sku: str, status: str) -> OrderSpikeData:
    return OrderSpikeData.model_validate(spike_data(spike, sku, status))


def _publish_spike(publisher: Publisher, event_type: EventType, spike: Spike, sku: str, status: str) -> None:
    publisher.publish(
        event_type, key=sku, subject=f"{sku}/{spike.day.isoformat()}", data=_spike_payload(spike, sku, status)
    )


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
    """Re-explain the detected spikes of the SKUs between the days by the live windows. The SKUs' locks come first:
    a report of one of them committing meanwhile has judged its days against the windows it saw, without this
    transaction's window; its spikes are read here once it has committed."""
    if not skus:
        return
    await store.lock_skus(skus)
    windows = await store.live_windows(skus)
    for spike in await store.detected_between(skus, first, last):
        assert spike.sku is not None
        explained_by = explaining_promotion(spike.sku, spike.day, windows)
        if explained_by == spike.explained_by_promotion_id:
            continue
        updated = await store.explain(spike.sku, spike.day, explained_by)
        _publish_spike(publisher, EventType.ORDER_SPIKE_DETECTED, updated, spike.sku, "detected")
