"""SQL of reported volumes, spike verdicts and the copy of promotion windows.

`Store` here is the volume half of the package's `Store` protocol, `SqlStore` the volume half of its
`SqlStore` (see `__init__.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.fulfillment_service import tables
from services.fulfillment_service.domain import DayVolume, PromotionWindow, SparseSeries, Spike
from shared.outbox import EncodedEvent, record_encoded_events

volumes = tables.volumes
spikes = tables.spikes
promotion_windows = tables.promotion_windows
SCHEMA = tables.metadata.schema

DETECTED = "detected"
RETRACTED = "retracted"

# The hot statements of a report after its first go to the session's asyncpg connection as they are (`$n`
# parameters, records out): prepared once per connection, no SQLAlchemy statement or row machinery per report.

# The per-SKU advisory locks of the SKUs `:skus`, to the end of the transaction, taken in a fixed order (by key), so
# that two writers of overlapping SKUs never wait for each other in a cycle: every writer of a SKU's volumes or
# spikes takes them first (`save_volumes`, `lock_skus`).
_SKU_LOCKS = """
    SELECT count(pg_advisory_xact_lock(lock_key)) AS locks FROM (
        SELECT DISTINCT hashtextextended(sku, 0) AS lock_key FROM unnest(CAST(:skus AS varchar[])) AS sku ORDER BY 1
    ) AS lock_keys"""
_LOCK_SKUS = text(_SKU_LOCKS)

# A report's first statement, for the whole batch: arrays in, per SKU the days whose lines changed anything out.
# It first takes per-SKU advisory locks in a fixed order (the join with `locked` has them taken before any line is
# written), which serialise reports touching the same SKU, so spike verdicts and the order of its events follow
# the order of commits; the upsert itself always meets the latest committed rows. The WHERE keeps identical
# re-sends from touching rows, so RETURNING holds exactly the changed lines. It goes through the session: that
# begins the transaction the following statements on its connection run in.
_SAVE_VOLUMES = text(
    f"""
    WITH locked AS MATERIALIZED ({_SKU_LOCKS}),
    changed AS (
        INSERT INTO {SCHEMA}.volumes AS stored
            (warehouse_id, sku, day, units_ordered, units_shipped, units_backordered)
        SELECT CAST(:warehouse_id AS varchar), line.sku, line.day, line.units_ordered, line.units_shipped,
               line.units_backordered
        FROM locked
        CROSS JOIN unnest(CAST(:skus AS varchar[]), CAST(:days AS date[]), CAST(:ordered AS integer[]),
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
    )
    SELECT sku, array_agg(day) AS days FROM changed GROUP BY sku
    """
)

# What a report's re-check reads, in one statement, per wanted SKU:
# - its rows (all warehouses) from its `from_day` on: how many, the first one's day after `from_day`, and whether
#   it has reports before `from_day` (then its series starts at `from_day`); their days after `from_day` and their
#   three figures, in no particular order (the store sums them per day), each column packed as 4-byte big-endian
#   integers (`int4send`), which numpy reads as they are, where arrays would make a Python int of every value;
# - the uncancelled promotion windows naming it (id, first and last day);
# - its stored spikes (any status) from `$3` on, a column per array.
_REPORT_STATE = f"""
    WITH windows AS MATERIALIZED (
        SELECT promotion_id, skus, starts_on, ends_on FROM {SCHEMA}.promotion_windows
        WHERE skus && $1::varchar[] AND NOT cancelled
    )
    SELECT wanted.sku,
           EXISTS (SELECT FROM {SCHEMA}.volumes earlier
                   WHERE earlier.sku = wanted.sku AND earlier.day < wanted.from_day) AS earlier,
           loaded.count, loaded.first_offset, loaded.offsets, loaded.ordered, loaded.shipped, loaded.backordered,
           covering.promotion_ids, covering.starts_on, covering.ends_on,
           stored.day, stored.status, stored.units, stored.baseline, stored.seasonal_baseline, stored.level,
           stored.sigma, stored.ratio, stored.excess_units, stored.z_score, stored.explained_by_promotion_id
    FROM unnest($1::varchar[], $2::date[]) AS wanted(sku, from_day)
    CROSS JOIN LATERAL (
        SELECT count(*) AS count, min(volume.day) - wanted.from_day AS first_offset,
               string_agg(int4send(volume.day - wanted.from_day), '') AS offsets,
               string_agg(int4send(volume.units_ordered), '') AS ordered,
               string_agg(int4send(volume.units_shipped), '') AS shipped,
               string_agg(int4send(volume.units_backordered), '') AS backordered
        FROM {SCHEMA}.volumes volume
        WHERE volume.sku = wanted.sku AND volume.day >= wanted.from_day
    ) AS loaded
    CROSS JOIN LATERAL (
        SELECT array_agg(w.promotion_id) AS promotion_ids, array_agg(w.starts_on) AS starts_on,
               array_agg(w.ends_on) AS ends_on
        FROM windows w
        WHERE wanted.sku = ANY(w.skus)
    ) AS covering
    CROSS JOIN LATERAL (
        SELECT array_agg(spike.day) AS day, array_agg(spike.status) AS status, array_agg(spike.units) AS units,
               array_agg(spike.baseline) AS baseline, array_agg(spike.seasonal_baseline) AS seasonal_baseline,
               array_agg(spike.level) AS level, array_agg(spike.sigma) AS sigma, array_agg(spike.ratio) AS ratio,
               array_agg(spike.excess_units) AS excess_units, array_agg(spike.z_score) AS z_score,
               array_agg(spike.explained_by_promotion_id) AS explained_by_promotion_id
        FROM {SCHEMA}.spikes spike
        WHERE spike.sku = wanted.sku AND spike.day >= $3::date
    ) AS stored
"""

_SAVE_SPIKES = f"""
    INSERT INTO {SCHEMA}.spikes AS stored
        (sku, day, status, units, baseline, seasonal_baseline, level, sigma, ratio, excess_units, z_score,
         explained_by_promotion_id)
    SELECT spike.sku, spike.day, '{DETECTED}', spike.units, spike.baseline, spike.seasonal_baseline, spike.level,
           spike.sigma, spike.ratio, spike.excess_units, spike.z_score, spike.explained_by_promotion_id
    FROM unnest($1::varchar[], $2::date[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
                $8::float8[], $9::float8[], $10::float8[], $11::varchar[])
         AS spike(sku, day, units, baseline, seasonal_baseline, level, sigma, ratio, excess_units, z_score,
                  explained_by_promotion_id)
    ON CONFLICT (sku, day) DO UPDATE
        SET status = EXCLUDED.status, units = EXCLUDED.units, baseline = EXCLUDED.baseline,
            seasonal_baseline = EXCLUDED.seasonal_baseline, level = EXCLUDED.level, sigma = EXCLUDED.sigma,
            ratio = EXCLUDED.ratio, excess_units = EXCLUDED.excess_units, z_score = EXCLUDED.z_score,
            explained_by_promotion_id = EXCLUDED.explained_by_promotion_id, updated_at = now()
"""

_RETRACT_SPIKES = f"""
    UPDATE {SCHEMA}.spikes AS stored SET status = '{RETRACTED}', updated_at = now()
    FROM unnest($1::varchar[], $2::date[]) AS gone(sku, day)
    WHERE stored.sku = gone.sku AND stored.day = gone.day
"""

_LIVE_WINDOWS = f"""
    SELECT promotion_id, skus, starts_on, ends_on FROM {SCHEMA}.promotion_windows
    WHERE skus && $1::varchar[] AND NOT cancelled
"""


Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class DailyTotal(NamedTuple):
    """One SKU's figures of a day, summed over every warehouse."""

    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int


@dataclass(frozen=True, slots=True)
class DailyVolumes:
    """A SKU's figures summed over every warehouse, per day with a report: day ordinal `first + at[i]` (`at`
    ascending); `first` is where its observed history starts. What the spike rule reads (`ordered`) and what a
    `reported` event announces."""

    first: int
    at: Ints
    ordered: Floats
    shipped: Floats
    backordered: Floats

    @property
    def series(self) -> SparseSeries:
        return SparseSeries(self.first, self.at, self.ordered)

    def totals(self, days: Sequence[date]) -> list[DailyTotal]:
        """The totals of these days (each one with a report), in the order given."""
        return list(map(DailyTotal, days, *changed_totals([self], [days])))

    @classmethod
    def of(
        cls,
        first: int,
        at: Sequence[int],
        ordered: Sequence[int],
        shipped: Sequence[int],
        backordered: Sequence[int],
    ) -> DailyVolumes:
        """From rows of any number of warehouses: `at[i]` is the row's day minus `first` (summed per day)."""
        days, which = np.unique(np.asarray(at, dtype=np.int64), return_inverse=True)

        def summed(column: Sequence[int]) -> Floats:
            weights = np.asarray(column, dtype=np.float64)
            return np.bincount(which, weights=weights, minlength=len(days)).astype(np.float64)

        return cls(first, days, summed(ordered), summed(shipped), summed(backordered))


def changed_totals(
    volumes: Sequence[DailyVolumes], days: Sequence[Sequence[date]]
) -> tuple[list[int], list[int], list[int]]:
    """Units ordered, shipped and backordered of `days[i]` (each one with a report) of `volumes[i]`, for every
    i, one after the other: a handful of array operations for all of a report's SKUs rather than some per SKU."""
    counts = [len(v.at) for v in volumes]
    owner = np.repeat(np.arange(len(volumes), dtype=np.int64) << 32, counts)
    keys = np.concatenate([v.at for v in volumes]).astype(np.int64) + owner  # ascending: per SKU, `at` ascends
    wanted = [
        (i << 32) + day.toordinal() - v.first for i, (v, of) in enumerate(zip(volumes, days, strict=True)) for day in of
    ]
    index = np.searchsorted(keys, np.array(wanted, dtype=np.int64))
    figures = np.stack([np.concatenate([getattr(v, name) for v in volumes]) for name in _FIGURES])
    # Whole numbers, summed exactly in float64: one conversion for the three columns.
    ordered, shipped, backordered = figures[:, index].astype(np.int64).tolist()
    return ordered, shipped, backordered


_FIGURES = ("ordered", "shipped", "backordered")


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
class ReportState:
    """What re-checking a report reads, all at once: each SKU's figures from its first day to read (`volumes`,
    only SKUs with reports from there on); the uncancelled promotion windows naming any of the SKUs, each with
    the report's SKUs among its own (all an explanation of their spikes asks of a window); the SKUs' stored
    spikes, any status, from a day on."""

    volumes: dict[str, DailyVolumes]
    windows: list[PromotionWindow]
    spikes: dict[tuple[str, date], StoredSpike]


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

    async def save_volumes(self, warehouse_id: str, lines: Sequence[DayVolume]) -> dict[str, list[date]]: ...

    async def report_state(self, froms: Mapping[str, date], spikes_from: date) -> ReportState: ...

    async def live_windows(self, skus: Collection[str]) -> list[PromotionWindow]: ...

    async def lock_skus(self, skus: Collection[str]) -> None: ...

    async def save_spikes(self, detected: Sequence[Spike]) -> None: ...

    async def retract_spikes(self, keys: Sequence[tuple[str, date]]) -> None: ...

    async def record_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None: ...

    async def detected_between(self, skus: Collection[str], first: date, last: date) -> list[Spike]: ...

    async def explain(self, sku: str, day: date, promotion_id: str | None) -> Spike: ...

    async def window(self, promotion_id: str) -> StoredWindow | None: ...

    async def save_window(self, window: PromotionWindow, version: int) -> None: ...


def _spike(row: Any) -> Spike:
    """A spike from a row of `spikes` (an SQLAlchemy row's mapping or an asyncpg record)."""
    return Spike(
        day=row["day"],
        units=row["units"],
        baseline=row["baseline"],
        seasonal_baseline=row["seasonal_baseline"],
        level=row["level"],
        sigma=row["sigma"],
        ratio=row["ratio"],
        excess_units=row["excess_units"],
        z_score=row["z_score"],
        sku=row["sku"],
        explained_by_promotion_id=row["explained_by_promotion_id"],
    )


def _equal(column: Any, value: Any) -> list[Any]:
    return [] if value is None else [column == value]


def _days(column: Any, since: date | None, until: date | None) -> list[Any]:
    return [*([] if since is None else [column >= since]), *([] if until is None else [column <= until])]


def _stored_spikes(sku: str, columns: Sequence[Any]) -> dict[tuple[str, date], StoredSpike]:
    """A SKU's stored spikes from the arrays of `_REPORT_STATE` (a column each, from `day` on)."""
    stored = {}
    for day, status, *figures, promotion_id in zip(*columns, strict=True):
        units, baseline, seasonal_baseline, level, sigma, ratio, excess_units, z_score = figures
        spike = Spike(
            day, units, baseline, seasonal_baseline, level, sigma, ratio, excess_units, z_score, sku, promotion_id
        )
        stored[(sku, day)] = StoredSpike(status, spike)
    return stored


def _summed(
    found: list[str], firsts: list[int], starts: list[int], counts: list[int], columns: Sequence[npt.NDArray[Any]]
) -> dict[str, DailyVolumes]:
    """Per SKU of `found`, its rows (`counts[i]` of them, one after the other in `columns`: day offsets from its
    first day to read, then the three figures) summed per day, its series starting at `firsts[i]` (offset
    `starts[i]`)."""
    if not found:
        return {}
    owner = np.repeat(np.arange(len(found), dtype=np.int64), counts)
    at = columns[0].astype(np.int64) - np.repeat(np.array(starts, dtype=np.int64), counts)
    keys, which = np.unique((owner << 32) + at, return_inverse=True)
    ordered, shipped, backordered = (
        np.bincount(which, weights=column.astype(np.float64), minlength=len(keys)).astype(np.float64)
        for column in columns[1:]
    )
    bounds = np.searchsorted(keys >> 32, np.arange(len(found) + 1)).tolist()
    days = keys & 0xFFFFFFFF
    return {
        sku: DailyVolumes(
            firsts[i],
            days[bounds[i] : bounds[i + 1]],
            ordered[bounds[i] : bounds[i + 1]],
            shipped[bounds[i] : bounds[i + 1]],
            backordered[bounds[i] : bounds[i + 1]],
        )
        for i, sku in enumerate(found)
    }


class SqlStore:
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------ volumes

    async def _driver(self) -> Any:
        """The session's asyncpg connection, inside the unit of work's transaction."""
        connection = await self.session.connection()
        driver: Any = (await connection.get_raw_connection()).driver_connection
        if not driver.is_in_transaction():
            # The transaction begins with the session's first statement: make sure it has.
            await self.session.execute(text("SELECT 1"))
        return driver

    async def save_volumes(self, warehouse_id: str, lines: Sequence[DayVolume]) -> dict[str, list[date]]:
        """Lock the lines' SKUs (until the transaction ends), then store the lines (one per sku and day); returns,
        per SKU, the days (in order) whose figures were new or changed."""
        if not lines:
            return {}
        skus, days, ordered, shipped, backordered = (list(column) for column in zip(*lines, strict=True))
        values = {"skus": skus, "days": days, "ordered": ordered, "shipped": shipped, "backordered": backordered}
        result = await self.session.execute(_SAVE_VOLUMES, {"warehouse_id": warehouse_id, **values})
        return {sku: sorted(changed) for sku, changed in result}

    async def report_state(self, froms: Mapping[str, date], spikes_from: date) -> ReportState:
        """Each SKU's figures (all warehouses) from its `froms` day on, as the spike rule and the `reported` events
        read them: a day inside the observed range without a report is 0; when the SKU has reports before `from`,
        the series starts at `from` (so the rule does not mistake the loaded slice for its first reports). With
        them, in the same statement, the promotion windows and the stored spikes from `spikes_from` on of the SKUs
        (see `ReportState`)."""
        skus = sorted(froms)
        rows = await (await self._driver()).fetch(_REPORT_STATE, skus, [froms[sku] for sku in skus], spikes_from)
        # Every SKU's rows in flat arrays, summed per (SKU, day) in one pass (no numpy calls per SKU).
        found: list[str] = []
        firsts: list[int] = []
        starts: list[int] = []
        counts: list[int] = []
        packed: tuple[list[bytes], list[bytes], list[bytes], list[bytes]] = ([], [], [], [])
        covered: dict[str, tuple[set[str], date, date]] = {}
        stored: dict[tuple[str, date], StoredSpike] = {}
        for row in rows:
            (
                sku,
                earlier,
                count,
                first_offset,
                offsets,
                ordered,
                shipped,
                backordered,
                promotion_ids,
                starts_on,
                ends_on,
            ) = (row[i] for i in range(11))
            if promotion_ids:
                for promotion_id, first_day, last_day in zip(promotion_ids, starts_on, ends_on, strict=True):
                    covered.setdefault(promotion_id, (set(), first_day, last_day))[0].add(sku)
            if row[11]:
                stored.update(_stored_spikes(sku, [row[i] for i in range(11, len(row))]))
            if not count:
                continue
            start = 0 if earlier else first_offset
            found.append(sku)
            firsts.append(froms[sku].toordinal() + start)
            starts.append(start)
            counts.append(count)
            for column, values in zip(packed, (offsets, ordered, shipped, backordered), strict=True):
                column.append(values)
        figures = tuple(np.frombuffer(b"".join(column), dtype=">i4") for column in packed)
        # `string_agg` skips NULLs: a packed column would come up short, and its values land on other days. The
        # columns are NOT NULL; should that ever change, this says so rather than mis-summing.
        if any(len(column) != sum(counts) for column in figures):
            raise RuntimeError(f"packed volume columns of {len(found)} SKUs do not hold {sum(counts)} rows each")
        windows = [
            PromotionWindow(promotion_id, frozenset(named), first_day, last_day)
            for promotion_id, (named, first_day, last_day) in sorted(covered.items())
        ]
        return ReportState(_summed(found, firsts, starts, counts, figures), windows, stored)

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

    async def save_spikes(self, detected: Sequence[Spike]) -> None:
        """Store the spikes as detected (new ones, or the new figures and explanation of stored ones)."""
        if not detected:
            return
        await (await self._driver()).execute(
            _SAVE_SPIKES,
            [spike.sku for spike in detected],
            [spike.day for spike in detected],
            [spike.units for spike in detected],
            [spike.baseline for spike in detected],
            [spike.seasonal_baseline for spike in detected],
            [spike.level for spike in detected],
            [spike.sigma for spike in detected],
            [spike.ratio for spike in detected],
            [spike.excess_units for spike in detected],
            [spike.z_score for spike in detected],
            [spike.explained_by_promotion_id for spike in detected],
        )

    async def retract_spikes(self, keys: Sequence[tuple[str, date]]) -> None:
        """Mark the stored spikes of these (sku, day) retracted (kept for audit)."""
        if keys:
            await (await self._driver()).execute(_RETRACT_SPIKES, [sku for sku, _ in keys], [day for _, day in keys])

    async def record_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None:
        """Write encoded events to the outbox in one statement, in the caller's transaction and in their order;
        an event the producer would refuse stores nothing (`EventTooLarge`, see `record_encoded_events`)."""
        await record_encoded_events(self.session, tables.outbox, events, max_bytes=max_bytes)

    async def detected_between(self, skus: Collection[str], first: date, last: date) -> list[Spike]:
        query = select(spikes).where(
            spikes.c.sku.in_(sorted(skus)), spikes.c.day.between(first, last), spikes.c.status == DETECTED
        )
        return [_spike(row._mapping) for row in (await self.session.execute(query)).all()]

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
        return _spike(row._mapping)

    async def list_spikes(self, where: SpikeFilter, *, limit: int, after: Sequence[Any] | None) -> list[Any]:
        """Rows in (day, sku) order, after that key when given."""
        conditions = [
            *([] if where.include_retracted else [spikes.c.status == DETECTED]),
            *_equal(spikes.c.sku, where.sku),
            *_days(spikes.c.day, where.since, where.until),
        ]
        return await self._page(spikes, conditions, (spikes.c.day, spikes.c.sku), limit=limit, after=after)

    # ------------------------------------------------------------ promotion windows

    async def lock_skus(self, skus: Collection[str]) -> None:
        """Take the SKUs' locks, as a report storing their lines takes them, until the transaction ends: what is
        read after it includes every report of those SKUs committed before, and none commits meanwhile."""
        await self.session.execute(_LOCK_SKUS, {"skus": sorted(set(skus))})

    async def live_windows(self, skus: Collection[str]) -> list[PromotionWindow]:
        """The uncancelled promotion windows of any of the SKUs."""
        return [
            PromotionWindow(promotion_id=row[0], skus=frozenset(row[1]), starts_on=row[2], ends_on=row[3])
            for row in await (await self._driver()).fetch(_LIVE_WINDOWS, sorted(set(skus)))
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
