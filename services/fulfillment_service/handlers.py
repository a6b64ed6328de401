"""Fulfillment commands and event handlers: store volume reports (a correction replaces), announce the
changed daily totals, keep spike verdicts current, and keep a copy of promotion windows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from services.fulfillment_service import tables
from services.fulfillment_service.domain import (
    PromotionWindow,
    Spike,
    SpikeRule,
    days_to_reevaluate,
    detect_spikes,
    explain_spike,
    explaining_promotion,
    shift_days,
)
from services.fulfillment_service.schemas import OrderVolumeReport, VolumeLineIn
from shared.db import UnitOfWork
from shared.events import (
    MAX_REPORTED_DAYS,
    CloudEvent,
    DailyTotalData,
    EventType,
    InvalidEvent,
    OrderSpikeData,
    OrderVolumeReportData,
    OrderVolumeReportedData,
    PromotionData,
)

log = structlog.get_logger("salesops.fulfillment")

S = tables.spikes
W = tables.promotion_windows
SCHEMA = tables.metadata.schema

# One statement for the whole batch: arrays in, one row out per line that changed anything. The WHERE
# keeps identical re-sends from touching rows, so RETURNING counts exactly the changed lines.
_UPSERT = text(
    f"""
    INSERT INTO {SCHEMA}.volumes AS v
        (warehouse_id, sku, day, units_ordered, units_shipped, units_backordered)
    SELECT CAST(:warehouse_id AS varchar), l.sku, l.day, l.units_ordered, l.units_shipped, l.units_backordered
    FROM unnest(CAST(:skus AS varchar[]), CAST(:days AS date[]), CAST(:ordered AS integer[]),
                CAST(:shipped AS integer[]), CAST(:backordered AS integer[]))
         AS l(sku, day, units_ordered, units_shipped, units_backordered)
    ON CONFLICT (warehouse_id, sku, day) DO UPDATE
        SET units_ordered = EXCLUDED.units_ordered,
            units_shipped = EXCLUDED.units_shipped,
            units_backordered = EXCLUDED.units_backordered,
            updated_at = now()
        WHERE (v.units_ordered, v.units_shipped, v.units_backordered)
              IS DISTINCT FROM (EXCLUDED.units_ordered, EXCLUDED.units_shipped, EXCLUDED.units_backordered)
    RETURNING v.sku, v.day
    """
)

# Per-SKU advisory locks, taken in a fixed order, serialise reports touching the same SKU so spike
# verdicts and the order of its events follow the order of commits.
_LOCK_SKUS = text(
    """
    SELECT count(pg_advisory_xact_lock(k)) FROM (
        SELECT DISTINCT hashtextextended(s, 0) AS k FROM unnest(CAST(:skus AS varchar[])) AS s ORDER BY 1
    ) AS keys
    """
)

_DAILY_TOTALS = text(
    f"""
    SELECT v.sku, v.day, sum(v.units_ordered) AS ordered, sum(v.units_shipped) AS shipped,
           sum(v.units_backordered) AS backordered
    FROM {SCHEMA}.volumes v
    JOIN unnest(CAST(:skus AS varchar[]), CAST(:days AS date[])) AS c(sku, day)
      ON v.sku = c.sku AND v.day = c.day
    GROUP BY v.sku, v.day
    ORDER BY v.sku, v.day
    """
)

_SERIES = text(
    f"""
    SELECT v.sku, v.day, sum(v.units_ordered) AS ordered
    FROM {SCHEMA}.volumes v
    JOIN unnest(CAST(:skus AS varchar[]), CAST(:froms AS date[])) AS r(sku, from_day)
      ON v.sku = r.sku AND v.day >= r.from_day
    GROUP BY v.sku, v.day
    """
)

_FIRST_DAYS = text(
    f"""
    SELECT s.sku, (SELECT min(v.day) FROM {SCHEMA}.volumes v WHERE v.sku = s.sku) AS first_day
    FROM unnest(CAST(:skus AS varchar[])) AS s(sku)
    """
)


async def record_volumes(
    uow: UnitOfWork, warehouse_id: str, lines: Sequence[VolumeLineIn], rule: SpikeRule
) -> tuple[int, int]:
    """Store a report; returns (accepted, changed). Within a batch the last line of a key wins."""
    latest: dict[tuple[str, date], VolumeLineIn] = {}
    for line in lines:
        latest[(line.sku, line.day)] = line
    batch = list(latest.values())
    skus = [line.sku for line in batch]
    await uow.session.execute(_LOCK_SKUS, {"skus": sorted(set(skus))})
    result = await uow.session.execute(
        _UPSERT,
        {
            "warehouse_id": warehouse_id,
            "skus": skus,
            "days": [line.day for line in batch],
            "ordered": [line.units_ordered for line in batch],
            "shipped": [line.units_shipped for line in batch],
            "backordered": [line.units_backordered for line in batch],
        },
    )
    changed: dict[str, set[date]] = defaultdict(set)
    for sku, day in result.all():
        changed[sku].add(day)
    if changed:
        await _announce_totals(uow, changed)
        await reevaluate_spikes(uow, changed, rule)
    return len(lines), sum(len(days) for days in changed.values())


async def _announce_totals(uow: UnitOfWork, changed: dict[str, set[date]]) -> None:
    """A `reported` event per SKU with the new all-warehouse totals of the days that changed (several when
    more than `MAX_REPORTED_DAYS` days changed, so that a long backfill never makes an oversized event)."""
    pairs = [(sku, day) for sku, days in changed.items() for day in days]
    rows = await uow.session.execute(_DAILY_TOTALS, {"skus": [p[0] for p in pairs], "days": [p[1] for p in pairs]})
    by_sku: dict[str, list[DailyTotalData]] = defaultdict(list)
    for row in rows:
        by_sku[row.sku].append(
            DailyTotalData(
                day=row.day,
                units_ordered=int(row.ordered),
                units_shipped=int(row.shipped),
                units_backordered=int(row.backordered),
            )
        )
    for sku in sorted(by_sku):
        days = by_sku[sku]
        for first in range(0, len(days), MAX_REPORTED_DAYS):
            uow.publish(
                EventType.ORDER_VOLUME_REPORTED,
                key=sku,
                subject=sku,
                data=OrderVolumeReportedData(sku=sku, days=days[first : first + MAX_REPORTED_DAYS]),
            )


async def _series(uow: UnitOfWork, froms: dict[str, date]) -> dict[str, dict[date, float]]:
    """Each SKU's daily units ordered (all warehouses) from its `froms` day on."""
    skus = sorted(froms)
    series: dict[str, dict[date, float]] = {sku: {} for sku in skus}
    rows = await uow.session.execute(_SERIES, {"skus": skus, "froms": [froms[s] for s in skus]})
    for row in rows:
        series[row.sku][row.day] = float(row.ordered)
    first_days = await uow.session.execute(_FIRST_DAYS, {"skus": skus})
    for row in first_days:
        # History before `from` exists but was not loaded: mark the start as observed, so the rule does
        # not mistake the loaded slice for the SKU's first reports (inside the observed range, no row = 0).
        if row.first_day is not None and row.first_day < froms[row.sku]:
            series[row.sku].setdefault(froms[row.sku], 0.0)
    return series


async def _windows(uow: UnitOfWork, skus: Iterable[str]) -> list[PromotionWindow]:
    rows = await uow.session.execute(select(W).where(W.c.skus.overlap(sorted(set(skus))), W.c.cancelled.is_(False)))
    return [
        PromotionWindow(promotion_id=r.promotion_id, skus=frozenset(r.skus), starts_on=r.starts_on, ends_on=r.ends_on)
        for r in rows
    ]


def _spike_data(row: Spike | Row[Any], sku: str, status: str) -> OrderSpikeData:
    return OrderSpikeData(
        sku=sku,
        day=row.day,
        units=row.units,
        baseline=row.baseline,
        ratio=row.ratio,
        explained_by_promotion_id=row.explained_by_promotion_id,
        z_score=row.z_score,
        excess_units=row.excess_units,
        status=status,
    )


def _published_view(spike: Spike | Row[Any]) -> tuple[float, float, str | None]:
    # What consumers act on; other figures may drift slightly without a new event.
    return (spike.units, round(spike.baseline, 3), spike.explained_by_promotion_id)


async def reevaluate_spikes(uow: UnitOfWork, changed: dict[str, set[date]], rule: SpikeRule) -> None:
    """Re-judge every day a change can move; publish new spikes, changed ones, and retractions."""
    froms = {sku: shift_days(min(days), -rule.window_days) for sku, days in changed.items()}
    series = await _series(uow, froms)
    windows = await _windows(uow, changed)
    stored_rows = await uow.session.execute(
        select(S).where(S.c.sku.in_(sorted(changed)), S.c.day >= min(min(d) for d in changed.values()))
    )
    stored = {(r.sku, r.day): r for r in stored_rows}
    for sku in sorted(changed):
        totals = series[sku]
        if not totals:
            continue
        verdicts = detect_spikes(totals, days_to_reevaluate(changed[sku], rule, until=max(totals)), rule, sku=sku)
        for day, verdict in verdicts.items():
            await _apply_verdict(uow, sku, day, verdict, windows, stored.get((sku, day)))


async def _apply_verdict(
    uow: UnitOfWork,
    sku: str,
    day: date,
    verdict: Spike | None,
    windows: Sequence[PromotionWindow],
    stored: Row[Any] | None,
) -> None:
    live = stored is not None and stored.status == "detected"
    if verdict is None:
        if live:
            await uow.session.execute(
                update(S).where(S.c.sku == sku, S.c.day == day).values(status="retracted", updated_at=func.now())
            )
            assert stored is not None
            uow.publish(
                EventType.ORDER_SPIKE_RETRACTED,
                key=sku,
                subject=f"{sku}/{day.isoformat()}",
                data=_spike_data(stored, sku, "retracted"),
            )
        return
    spike = explain_spike(verdict, sku, windows)
    if live and stored is not None and _published_view(stored) == _published_view(spike):
        return
    values = {
        "status": "detected",
        "units": spike.units,
        "baseline": spike.baseline,
        "seasonal_baseline": spike.seasonal_baseline,
        "level": spike.level,
        "sigma": spike.sigma,
        "ratio": spike.ratio,
        "excess_units": spike.excess_units,
        "z_score": spike.z_score,
        "explained_by_promotion_id": spike.explained_by_promotion_id,
    }
    statement = insert(S).values(sku=sku, day=day, **values)
    await uow.session.execute(
        statement.on_conflict_do_update(index_elements=[S.c.sku, S.c.day], set_={**values, "updated_at": func.now()})
    )
    uow.publish(
        EventType.ORDER_SPIKE_DETECTED,
        key=sku,
        subject=f"{sku}/{day.isoformat()}",
        data=_spike_data(spike, sku, "detected"),
    )


# ---------------------------------------------------------------- incoming events


def make_report_handler(rule: SpikeRule) -> Any:
    """The handler of `salesops.order-volume.report.v1`: the same body and rules as the HTTP endpoint."""

    async def on_order_volume_report(uow: UnitOfWork, event: CloudEvent, data: OrderVolumeReportData) -> None:
        try:
            report = OrderVolumeReport.model_validate(data.model_dump(mode="json"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "data"
            raise InvalidEvent("invalid-data", f"data.{where}: {first['msg']}") from exc
        accepted, changed = await record_volumes(uow, report.warehouse_id, report.lines, rule)
        log.info("warehouse report stored", warehouse_id=report.warehouse_id, accepted=accepted, changed=changed)

    return on_order_volume_report


async def on_promotion_event(uow: UnitOfWork, event: CloudEvent, promotion: PromotionData) -> None:
    """Keep the newest window of the promotion, then re-explain the spikes it may (no longer) explain."""
    previous = (await uow.session.execute(select(W).where(W.c.promotion_id == promotion.promotion_id))).first()
    if previous is not None and previous.version > promotion.version:
        return  # an older version arriving late changes nothing
    skus = sorted({item.sku for item in promotion.items})
    cancelled = event.type == EventType.PROMOTION_CANCELLED or promotion.status == "cancelled"
    values = {
        "skus": skus,
        "starts_on": promotion.starts_on,
        "ends_on": promotion.ends_on,
        "cancelled": cancelled,
        "version": promotion.version,
    }
    statement = insert(W).values(promotion_id=promotion.promotion_id, **values)
    await uow.session.execute(
        statement.on_conflict_do_update(index_elements=[W.c.promotion_id], set_={**values, "updated_at": func.now()})
    )
    affected_skus = set(skus) | set(previous.skus if previous else [])
    first = min(promotion.starts_on, previous.starts_on if previous else promotion.starts_on)
    last = max(promotion.ends_on, previous.ends_on if previous else promotion.ends_on)
    await _reexplain(uow, affected_skus, first, last)


async def _reexplain(uow: UnitOfWork, skus: set[str], first: date, last: date) -> None:
    if not skus:
        return
    windows = await _windows(uow, skus)
    rows = await uow.session.execute(
        select(S).where(S.c.sku.in_(sorted(skus)), S.c.day.between(first, last), S.c.status == "detected")
    )
    for row in rows.all():
        explained_by = explaining_promotion(row.sku, row.day, windows)
        if explained_by == row.explained_by_promotion_id:
            continue
        updated = (
            await uow.session.execute(
                update(S)
                .where(S.c.sku == row.sku, S.c.day == row.day)
                .values(explained_by_promotion_id=explained_by, updated_at=func.now())
                .returning(*S.c)
            )
        ).one()
        uow.publish(
            EventType.ORDER_SPIKE_DETECTED,
            key=row.sku,
            subject=f"{row.sku}/{row.day.isoformat()}",
            data=_spike_data(updated, row.sku, "detected"),
        )
