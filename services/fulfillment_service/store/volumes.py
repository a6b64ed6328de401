"""SQL of reported volumes, spike verdicts and the copy of promotion windows.

`Store` here is the volume half of the package's `Store` protocol, `SqlStore` the volume half of its
`SqlStore` (see `__init__.py`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Row, Table, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.fulfillment_service import tables
from services.fulfillment_service.domain import DayVolume, PromotionWindow, Spike

volumes = tables.volumes
spikes = tables.spikes
promotion_windows = tables.promotion_windows
SCHEMA = tables.metadata.schema

DETECTED = "detected"
RETRACTED = "retracted"

# One statement for the whole batch: arrays in, one row out per line that changed anything. The WHERE
# keeps identical re-sends from touching rows, so RETURNING counts exactly the changed lines.
_UPSERT_VOLUMES = text(
    f"""
    INSERT INTO {SCHEMA}.volumes AS stored
        (warehouse_id, sku, day, units_ordered, units_shipped, units_backordered)
    SELECT CAST(:warehouse_id AS varchar), line.sku, line.day, line.units_ordered, line.units_shipped,
           line.units_backordered
    FROM unnest(CAST(:skus AS varchar[]), CAST(:days AS date[]), CAST(:ordered AS integer[]),
                CAST(:shipped AS integer[]), CAST(:backordered AS integer[]))
         AS line(sku, day, units_ordered, units_shipped, units_backordered)
    ON CONFLICT (warehouse_id, sku, day) DO UPDATE
        SET units_ordered = EXCLUDED.units_ordered,
            units_shipped = EXCLUDED.units_shipped,
            units_backordered = EXCLUDED.units_backordered,
            updated_at = now()
        WHERE (stored.units_ordered, stored.units_shipped, stored.units_backordered)
              IS DISTINCT FROM (EXCLUDED.units_ordered, EXCLUDED.units_shipped, EXCLUDED.units_backordered)
    RETURNING stored.sku, stored.day
    """
)

# Per-SKU advisory locks, taken in a fixed order, serialise reports touching the same SKU so spike
# verdicts and the order of its events follow the order of commits.
_LOCK_SKUS = text(
    """
    SELECT count(pg_advisory_xact_lock(lock_key)) FROM (
        SELECT DISTINCT hashtextextended(sku, 0) AS lock_key FROM unnest(CAST(:skus AS varchar[])) AS sku ORDER BY 1
    ) AS lock_keys
    """
)

_DAILY_TOTALS = text(
    f"""
    SELECT stored.sku, stored.day, sum(stored.units_ordered) AS ordered, sum(stored.units_shipped) AS shipped,
           sum(stored.units_backordered) AS backordered
    FROM {SCHEMA}.volumes stored
    JOIN unnest(CAST(:skus AS varchar[]), CAST(:days AS date[])) AS changed(sku, day)
      ON stored.sku = changed.sku AND stored.day = changed.day
    GROUP BY stored.sku, stored.day
    ORDER BY stored.sku, stored.day
    """
)

_ORDERED_SERIES = text(
    f"""
    SELECT stored.sku, stored.day, sum(stored.units_ordered) AS ordered
    FROM {SCHEMA}.volumes stored
    JOIN unnest(CAST(:skus AS varchar[]), CAST(:froms AS date[])) AS wanted(sku, from_day)
      ON stored.sku = wanted.sku AND stored.day >= wanted.from_day
    GROUP BY stored.sku, stored.day
    """
)

_FIRST_DAYS = text(
    f"""
    SELECT wanted.sku, (SELECT min(stored.day) FROM {SCHEMA}.volumes stored WHERE stored.sku = wanted.sku) AS first_day
    FROM unnest(CAST(:skus AS varchar[])) AS wanted(sku)
    """
)


@dataclass(frozen=True)
class DailyTotal:
    """One SKU's figures of a day, summed over every warehouse."""

    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int


@dataclass(frozen=True)
class StoredSpike:
    status: str
    spike: Spike

    @property
    def live(self) -> Spike | None:
        return self.spike if self.status == DETECTED else None


@dataclass(frozen=True)
class StoredWindow:
    window: PromotionWindow
    version: int


@dataclass(frozen=True)
class VolumeFilter:
    sku: str | None = None
    warehouse_id: str | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class SpikeFilter:
    sku: str | None = None
    since: date | None = None
    until: date | None = None
    include_retracted: bool = False


class Store(Protocol):
    """What the fulfillment handlers read and write."""

    async def lock_skus(self, skus: Collection[str]) -> None: ...

    async def save_volumes(self, warehouse_id: str, lines: Sequence[DayVolume]) -> dict[str, set[date]]: ...

    async def daily_totals(self, changed: Mapping[str, Collection[date]]) -> dict[str, list[DailyTotal]]: ...

    async def ordered_series(self, froms: Mapping[str, date]) -> dict[str, dict[date, float]]: ...

    async def live_windows(self, skus: Collection[str]) -> list[PromotionWindow]: ...

    async def spikes_from(self, skus: Collection[str], first_day: date) -> dict[tuple[str, date], StoredSpike]: ...

    async def save_detected(self, spike: Spike) -> None: ...

    async def retract(self, sku: str, day: date) -> None: ...

    async def detected_between(self, skus: Collection[str], first: date, last: date) -> list[Spike]: ...

    async def explain(self, sku: str, day: date, promotion_id: str | None) -> Spike: ...

    async def window(self, promotion_id: str) -> StoredWindow | None: ...

    async def save_window(self, window: PromotionWindow, version: int) -> None: ...


def _spike(row: Row[Any]) -> Spike:
    return Spike(
        day=row.day,
        units=row.units,
        baseline=row.baseline,
        seasonal_baseline=row.seasonal_baseline,
        level=row.level,
        sigma=row.sigma,
        ratio=row.ratio,
        excess_units=row.excess_units,
        z_score=row.z_score,
        sku=row.sku,
        explained_by_promotion_id=row.explained_by_promotion_id,
    )


def _equal(column: Any, value: Any) -> list[Any]:
    return [] if value is None else [column == value]


def _days(column: Any, since: date | None, until: date | None) -> list[Any]:
    return [*([] if since is None else [column >= since]), *([] if until is None else [column <= until])]


class SqlStore:
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------ volumes

    async def lock_skus(self, skus: Collection[str]) -> None:
        await self.session.execute(_LOCK_SKUS, {"skus": sorted(set(skus))})

    async def save_volumes(self, warehouse_id: str, lines: Sequence[DayVolume]) -> dict[str, set[date]]:
        """Store the lines (one per sku and day); returns the days per SKU whose figures were new or changed."""
        result = await self.session.execute(
            _UPSERT_VOLUMES,
            {
                "warehouse_id": warehouse_id,
                "skus": [line.sku for line in lines],
                "days": [line.day for line in lines],
                "ordered": [line.units_ordered for line in lines],
                "shipped": [line.units_shipped for line in lines],
                "backordered": [line.units_backordered for line in lines],
            },
        )
        changed: dict[str, set[date]] = defaultdict(set)
        for sku, day in result.all():
            changed[sku].add(day)
        return dict(changed)

    async def daily_totals(self, changed: Mapping[str, Collection[date]]) -> dict[str, list[DailyTotal]]:
        """The all-warehouse totals of the given days, per SKU in day order."""
        pairs = [(sku, day) for sku, days in changed.items() for day in days]
        rows = await self.session.execute(
            _DAILY_TOTALS, {"skus": [sku for sku, _ in pairs], "days": [day for _, day in pairs]}
        )
        totals: dict[str, list[DailyTotal]] = defaultdict(list)
        for row in rows:
            totals[row.sku].append(DailyTotal(row.day, int(row.ordered), int(row.shipped), int(row.backordered)))
        return dict(totals)

    async def ordered_series(self, froms: Mapping[str, date]) -> dict[str, dict[date, float]]:
        """Each SKU's daily units ordered (all warehouses) from its `froms` day on, as the spike rule reads it."""
        skus = sorted(froms)
        series: dict[str, dict[date, float]] = {sku: {} for sku in skus}
        rows = await self.session.execute(_ORDERED_SERIES, {"skus": skus, "froms": [froms[s] for s in skus]})
        for row in rows:
            series[row.sku][row.day] = float(row.ordered)
        for row in await self.session.execute(_FIRST_DAYS, {"skus": skus}):
            # History before `from` exists but was not loaded: mark the start as observed, so the rule does
            # not mistake the loaded slice for the SKU's first reports (inside the observed range, no row = 0).
            if row.first_day is not None and row.first_day < froms[row.sku]:
                series[row.sku].setdefault(froms[row.sku], 0.0)
        return series

    async def list_volumes(self, where: VolumeFilter, *, limit: int, after: Sequence[Any] | None) -> list[Any]:
        """Rows in (sku, day, warehouse_id) order, after that key when given."""
        conditions = [
            *_equal(volumes.c.sku, where.sku),
            *_equal(volumes.c.warehouse_id, where.warehouse_id),
            *_days(volumes.c.day, where.since, where.until),
        ]
        key = (volumes.c.sku, volumes.c.day, volumes.c.warehouse_id)
        return await self._page(volumes, conditions, key, limit=limit, after=after)

    async def _page(
        self, table: Table, conditions: list[Any], key: Sequence[Any], *, limit: int, after: Sequence[Any] | None
    ) -> list[Any]:
        """Keyset page: rows meeting the conditions in key order, after that key when given."""
        query = select(table).where(*conditions).order_by(*key).limit(limit)
        if after is not None:
            query = query.where(tuple_(*key) > tuple_(*after))
        return [row._mapping for row in (await self.session.execute(query)).all()]

    # ------------------------------------------------------------ spikes

    async def spikes_from(self, skus: Collection[str], first_day: date) -> dict[tuple[str, date], StoredSpike]:
        query = select(spikes).where(spikes.c.sku.in_(sorted(skus)), spikes.c.day >= first_day)
        rows = await self.session.execute(query)
        return {(row.sku, row.day): StoredSpike(row.status, _spike(row)) for row in rows}

    async def save_detected(self, spike: Spike) -> None:
        assert spike.sku is not None
        values = {
            "status": DETECTED,
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
        statement = insert(spikes).values(sku=spike.sku, day=spike.day, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[spikes.c.sku, spikes.c.day], set_={**values, "updated_at": func.now()}
            )
        )

    async def retract(self, sku: str, day: date) -> None:
        await self.session.execute(
            update(spikes)
            .where(spikes.c.sku == sku, spikes.c.day == day)
            .values(status=RETRACTED, updated_at=func.now())
        )

    async def detected_between(self, skus: Collection[str], first: date, last: date) -> list[Spike]:
        query = select(spikes).where(
            spikes.c.sku.in_(sorted(skus)), spikes.c.day.between(first, last), spikes.c.status == DETECTED
        )
        return [_spike(row) for row in (await self.session.execute(query)).all()]

    async def explain(self, sku: str, day: date, promotion_id: str | None) -> Spike:
        """Set (or clear) the promotion that explains a stored spike; returns the spike as now stored."""
        row = (
            await self.session.execute(
                update(spikes)
                .where(spikes.c.sku == sku, spikes.c.day == day)
                .values(explained_by_promotion_id=promotion_id, updated_at=func.now())
                .returning(*spikes.c)
            )
        ).one()
        return _spike(row)

    async def list_spikes(self, where: SpikeFilter, *, limit: int, after: Sequence[Any] | None) -> list[Any]:
        """Rows in (day, sku) order, after that key when given."""
        conditions = [
            *([] if where.include_retracted else [spikes.c.status == DETECTED]),
            *_equal(spikes.c.sku, where.sku),
            *_days(spikes.c.day, where.since, where.until),
        ]
        return await self._page(spikes, conditions, (spikes.c.day, spikes.c.sku), limit=limit, after=after)

    # ------------------------------------------------------------ promotion windows

    async def live_windows(self, skus: Collection[str]) -> list[PromotionWindow]:
        """The uncancelled promotion windows of any of the SKUs."""
        query = select(promotion_windows).where(
            promotion_windows.c.skus.overlap(sorted(set(skus))), promotion_windows.c.cancelled.is_(False)
        )
        return [
            PromotionWindow(
                promotion_id=row.promotion_id, skus=frozenset(row.skus), starts_on=row.starts_on, ends_on=row.ends_on
            )
            for row in await self.session.execute(query)
        ]

    async def window(self, promotion_id: str) -> StoredWindow | None:
        query = select(promotion_windows).where(promotion_windows.c.promotion_id == promotion_id)
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        window = PromotionWindow(row.promotion_id, frozenset(row.skus), row.starts_on, row.ends_on, row.cancelled)
        return StoredWindow(window, row.version)

    async def save_window(self, window: PromotionWindow, version: int) -> None:
        values = {
            "skus": sorted(window.skus),
            "starts_on": window.starts_on,
            "ends_on": window.ends_on,
            "cancelled": window.cancelled,
            "version": version,
        }
        statement = insert(promotion_windows).values(promotion_id=window.promotion_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[promotion_windows.c.promotion_id], set_={**values, "updated_at": func.now()}
            )
        )
