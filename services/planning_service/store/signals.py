"""Planning's own copy of what other services announced (promotions, launches, daily volumes, spikes,
returns), its item master, and the driver log: every event or command that shaped a plan."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import Item
from services.planning_service.store.inputs import item_from_row

SAVE_DAILY_VOLUMES = text(
    f"""
    INSERT INTO {tables.daily_volumes.fullname} AS v (sku, day, units_ordered, units_shipped, units_backordered)
    SELECT * FROM unnest(
        CAST(:skus AS varchar[]), CAST(:days AS date[]), CAST(:ordered AS integer[]),
        CAST(:shipped AS integer[]), CAST(:backordered AS integer[])
    )
    ON CONFLICT (sku, day) DO UPDATE SET
        units_ordered = excluded.units_ordered, units_shipped = excluded.units_shipped,
        units_backordered = excluded.units_backordered
    """
)

# Each driver's SKUs travel as one JSON array (arrays of arrays cannot be unnested row by row).
RECORD_DRIVERS = text(
    f"""
    INSERT INTO {tables.drivers.fullname} (event_id, event_type, subject, skus, summary, occurred_at)
    SELECT d.event_id, d.event_type, d.subject, ARRAY(SELECT jsonb_array_elements_text(CAST(d.skus AS jsonb))),
        d.summary, d.occurred_at
    FROM unnest(
        CAST(:event_ids AS varchar[]), CAST(:event_types AS varchar[]), CAST(:subjects AS varchar[]),
        CAST(:skus AS text[]), CAST(:summaries AS text[]), CAST(:occurred AS timestamptz[])
    ) AS d (event_id, event_type, subject, skus, summary, occurred_at)
    ON CONFLICT DO NOTHING
    """
)


@dataclass(frozen=True)
class DailyVolume:
    """One SKU's totals of one day, as fulfillment last reported them."""

    sku: str
    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int


@dataclass(frozen=True)
class Driver:
    event_id: str
    event_type: str
    subject: str | None
    skus: Sequence[str]
    summary: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class StoredItem:
    item: Item
    revision: int
    row: Mapping[str, Any]  # every column, as the API shows the item


@dataclass(frozen=True)
class SpikeReport:
    """The newest report about a (sku, day) spike, as planning keeps it."""

    sku: str
    day: date
    units: float
    baseline: float
    explained_by_promotion_id: str | None
    retracted: bool
    event_id: str
    event_time: datetime | None


@dataclass(frozen=True)
class SpikeState:
    status: str
    explained_by_promotion_id: str | None


# A return is kept once: the first record of a return id wins (a redelivery or a later copy changes nothing).
SAVE_RETURNS = text(
    f"""
    INSERT INTO {tables.returns.fullname} (return_id, sku, quantity, condition, resolution, returned_on)
    SELECT r.return_id, r.sku, r.quantity, r.condition, r.resolution, r.returned_on
    FROM unnest(
        CAST(:return_ids AS varchar[]), CAST(:skus AS varchar[]), CAST(:quantities AS integer[]),
        CAST(:conditions AS varchar[]), CAST(:resolutions AS varchar[]), CAST(:returned_on AS date[])
    ) AS r (return_id, sku, quantity, condition, resolution, returned_on)
    ON CONFLICT (return_id) DO NOTHING
    """
)


@dataclass(frozen=True)
class ReturnRecord:
    return_id: str
    sku: str
    quantity: int
    condition: str
    resolution: str | None
    returned_on: date


class SignalSql:
    session: AsyncSession

    async def promotion_body(self, promotion_id: str) -> dict[str, Any] | None:
        promotions = tables.promotions
        row = (
            await self.session.execute(select(promotions.c.body).where(promotions.c.promotion_id == promotion_id))
        ).first()
        return dict(row.body) if row else None

    async def save_promotion(
        self, promotion_id: str, *, version: int, status: str, body: Mapping[str, Any], event_id: str
    ) -> None:
        """Keep the newest version; a cancellation wins over a plain event of the same version."""
        promotions = tables.promotions
        statement = insert(promotions).values(
            promotion_id=promotion_id, version=version, status=status, body=dict(body), last_event_id=event_id
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[promotions.c.promotion_id],
                set_={k: statement.excluded[k] for k in ("version", "status", "body", "last_event_id")}
                | {"updated_at": datetime.now().astimezone()},
                where=(promotions.c.version < statement.excluded.version)
                | ((promotions.c.version == statement.excluded.version) & (promotions.c.status != "cancelled")),
            )
        )

    async def save_launch(self, launch_id: str, *, sku: str, body: Mapping[str, Any], event_id: str) -> None:
        launches = tables.launches
        statement = insert(launches).values(launch_id=launch_id, sku=sku, body=dict(body), last_event_id=event_id)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[launches.c.launch_id],
                set_={k: statement.excluded[k] for k in ("sku", "body", "last_event_id")},
            )
        )

    async def save_daily_volumes(self, days: Sequence[DailyVolume]) -> None:
        """Each (sku, day)'s totals replace the stored day, all of them in one statement (a (sku, day) appears
        once: the caller keeps the newest report of each)."""
        if days:
            await self.session.execute(
                SAVE_DAILY_VOLUMES,
                {
                    "skus": [d.sku for d in days],
                    "days": [d.day for d in days],
                    "ordered": [d.units_ordered for d in days],
                    "shipped": [d.units_shipped for d in days],
                    "backordered": [d.units_backordered for d in days],
                },
            )

    async def spike_state(self, sku: str, day: date) -> SpikeState | None:
        spikes = tables.spikes
        query = select(spikes.c.status, spikes.c.explained_by_promotion_id).where(
            spikes.c.sku == sku, spikes.c.day == day
        )
        row = (await self.session.execute(query)).first()
        return SpikeState(row.status, row.explained_by_promotion_id) if row else None

    async def save_spike(self, report: SpikeReport) -> None:
        spikes = tables.spikes
        statement = insert(spikes).values(
            sku=report.sku,
            day=report.day,
            units=report.units,
            baseline=report.baseline,
            explained_by_promotion_id=report.explained_by_promotion_id,
            status="retracted" if report.retracted else "detected",
            event_id=report.event_id,
            event_time=report.event_time,
        )
        keep = ("units", "baseline", "explained_by_promotion_id", "status", "event_id", "event_time")
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[spikes.c.sku, spikes.c.day],
                set_={k: statement.excluded[k] for k in keep},
                # a late, older event about the same day must not undo a newer one
                where=(spikes.c.event_time.is_(None))
                | (statement.excluded.event_time.is_(None))
                | (spikes.c.event_time <= statement.excluded.event_time),
            )
        )

    async def save_return(self, returned: ReturnRecord) -> None:
        await self.save_returns([returned])

    async def save_returns(self, returned: Sequence[ReturnRecord]) -> None:
        """Keep each return once (the first record of a return id), all of them in one statement."""
        if not returned:
            return
        first = list({r.return_id: r for r in reversed(returned)}.values())
        await self.session.execute(
            SAVE_RETURNS,
            {
                "return_ids": [r.return_id for r in first],
                "skus": [r.sku for r in first],
                "quantities": [r.quantity for r in first],
                "conditions": [r.condition for r in first],
                "resolutions": [r.resolution for r in first],
                "returned_on": [r.returned_on for r in first],
            },
        )

    async def record_driver(self, driver: Driver) -> None:
        """Log a driver once (a redelivered event keeps its first entry)."""
        await self.record_drivers([driver])

    async def record_drivers(self, drivers: Sequence[Driver]) -> None:
        """Log drivers once each (a redelivered event keeps its first entry), all of them in one statement."""
        if drivers:
            await self.session.execute(
                RECORD_DRIVERS,
                {
                    "event_ids": [d.event_id for d in drivers],
                    "event_types": [d.event_type for d in drivers],
                    "subjects": [d.subject for d in drivers],
                    "skus": [json.dumps(sorted(set(d.skus))) for d in drivers],
                    "summaries": [d.summary for d in drivers],
                    "occurred": [d.occurred_at for d in drivers],
                },
            )

    async def item(self, sku: str) -> StoredItem | None:
        items = tables.items
        row = (await self.session.execute(select(items).where(items.c.sku == sku))).first()
        return StoredItem(item_from_row(row), row.revision, dict(row._mapping)) if row else None

    async def save_item(self, item: Item, revision: int) -> StoredItem:
        items = tables.items
        values = {k: v for k, v in asdict(item).items() if k != "sku"}
        statement = insert(items).values(sku=item.sku, revision=revision, **values)
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[items.c.sku],
                    set_={k: statement.excluded[k] for k in [*values, "revision"]}
                    | {"updated_at": datetime.now().astimezone()},
                ).returning(*items.c)
            )
        ).one()
        return StoredItem(item_from_row(row), row.revision, dict(row._mapping))
