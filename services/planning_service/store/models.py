"""Fitted baseline models: which SKUs need a fit, what a fit reads (items, the whole history window, its
spikes and promotions), storing the models, and noting reports that change a fitted history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import BaselineModel, Promotion, SkuInputs, Spike
from services.planning_service.domain.history import MAX_HISTORY_WEEKS
from services.planning_service.domain.refit import HistoryDigest
from services.planning_service.store.inputs import InputSql, item_from_row

# Each report counts once for the SKU's model if its earliest day is before the model's origin.
NOTE_HISTORY_CHANGES = text(
    f"""
    UPDATE {tables.baseline_models.fullname} AS m
    SET history_changes = m.history_changes + c.reports
    FROM (
        SELECT u.sku, count(*) AS reports
        FROM unnest(CAST(:skus AS varchar[]), CAST(:days AS date[])) AS u (sku, earliest)
        JOIN {tables.baseline_models.fullname} AS b ON b.sku = u.sku AND b.origin > u.earliest
        GROUP BY u.sku
    ) AS c
    WHERE m.sku = c.sku
    """
)


@dataclass(frozen=True)
class StoredModel:
    sku: str
    model: BaselineModel | None  # None: the history was too short, the smoothing serves
    origin: date
    digest: HistoryDigest
    history_changes: int
    checked_changes: int
    fitted_at: Any = None


@dataclass(frozen=True)
class FittedModel:
    """A fit's result as stored: `checked_changes` is the count of history changes the fit read."""

    sku: str
    model: BaselineModel | None
    origin: date
    digest: HistoryDigest
    checked_changes: int


@dataclass
class FittingInputs:
    inputs: list[SkuInputs] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    stored: dict[str, StoredModel] = field(default_factory=dict)


def model_from_json(data: Any) -> BaselineModel | None:
    return None if data is None else BaselineModel.from_json(data)


def _stored(row: Any) -> StoredModel:
    return StoredModel(
        row.sku,
        model_from_json(row.model),
        row.origin,
        HistoryDigest.from_json(row.history_digest),
        row.history_changes,
        row.checked_changes,
        row.fitted_at,
    )


def _needing_fit(horizon_start: date) -> Select[tuple[str]]:
    items, models = tables.items, tables.baseline_models
    return (
        select(items.c.sku)
        .select_from(items.outerjoin(models, models.c.sku == items.c.sku))
        .where(
            or_(
                models.c.sku.is_(None),
                models.c.origin != horizon_start,
                models.c.history_changes > models.c.checked_changes,
            )
        )
        .order_by(items.c.sku)
    )


class ModelSql(InputSql):
    session: AsyncSession

    async def lease_skus_to_fit(self, horizon_start: date, limit: int, *, holder: str, lease_s: float) -> list[str]:
        """Lease up to `limit` SKUs needing a fit (an item whose model is missing, was fitted for another week, or
        whose history changed since it was last checked) that no other fitter holds, for `lease_s` seconds, in
        SKU order; a lease of `holder` itself is renewed. Two fitters racing for the same SKUs:
        the second waits for the first's commit and gets none of them. Commit to make the lease visible."""
        leases = tables.fit_leases
        due = (
            _needing_fit(horizon_start)
            .where(
                ~select(leases.c.sku)
                .where(
                    leases.c.sku == tables.items.c.sku, leases.c.leased_until > func.now(), leases.c.holder != holder
                )
                .exists()
            )
            .limit(limit)
            .cte("due")
        )
        take = insert(leases).from_select(
            ["sku", "holder", "leased_until"],
            select(due.c.sku, literal(holder), func.now() + literal(timedelta(seconds=lease_s))),
        )
        statement = take.on_conflict_do_update(
            index_elements=[leases.c.sku],
            set_={"holder": take.excluded.holder, "leased_until": take.excluded.leased_until},
            where=or_(leases.c.leased_until <= func.now(), leases.c.holder == take.excluded.holder),
        ).returning(leases.c.sku)
        return sorted((await self.session.scalars(statement)).all())

    async def release_fit_leases(self, skus: Collection[str], *, holder: str) -> None:
        leases = tables.fit_leases
        await self.session.execute(delete(leases).where(leases.c.holder == holder, leases.c.sku.in_(list(skus))))

    async def stored_models(self, skus: Collection[str] | None) -> dict[str, StoredModel]:
        models = tables.baseline_models
        query = select(models)
        if skus is not None:
            query = query.where(models.c.sku.in_(list(skus)))
        return {row.sku: _stored(row) for row in (await self.session.execute(query)).all()}

    async def fitting_inputs(self, skus: Collection[str], horizon_start: date) -> FittingInputs:
        """What fitting the SKUs' models reads: their items, the history window before the horizon, every
        spike in it (one-off spike days are cleaned out) and the promotions that touched them."""
        items, spikes = tables.items, tables.spikes
        wanted = sorted(skus)
        rows = (await self.session.execute(select(items).where(items.c.sku.in_(wanted)).order_by(items.c.sku))).all()
        found = [item_from_row(row) for row in rows]
        if not found:
            return FittingInputs()
        planned = [item.sku for item in found]
        history = await self.planning_history(planned, horizon_start)
        by_sku: dict[str, list[Spike]] = defaultdict(list)
        spike_rows = await self.session.execute(
            select(spikes).where(
                spikes.c.sku.in_(planned),
                spikes.c.status == "detected",
                spikes.c.day >= horizon_start - timedelta(weeks=MAX_HISTORY_WEEKS),
                spikes.c.day < horizon_start,
            )
        )
        for row in spike_rows.all():
            by_sku[row.sku].append(
                Spike(row.sku, row.day, row.units, row.baseline, row.explained_by_promotion_id is not None)
            )
        return FittingInputs(
            inputs=[
                SkuInputs(item=item, history=history.get(item.sku, {}), spikes=tuple(by_sku.get(item.sku, ())))
                for item in found
            ],
            promotions=await self.active_promotions(planned),
            stored=await self.stored_models(planned),
        )

    async def save_models(self, fitted: Sequence[FittedModel]) -> None:
        """Store fitted models (replacing a SKU's earlier one); history changes reported while the fit ran
        stay counted, so the SKU is checked again."""
        if not fitted:
            return
        models = tables.baseline_models
        statement = insert(models).values(
            [
                {
                    "sku": f.sku,
                    "method": f.model.method.value if f.model else "smoothing",
                    "model": f.model.to_json() if f.model else None,
                    "origin": f.origin,
                    "history_digest": f.digest.to_json(),
                    "checked_changes": f.checked_changes,
                }
                for f in fitted
            ]
        )
        excluded = statement.excluded
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[models.c.sku],
                set_={
                    "method": excluded.method,
                    "model": excluded.model,
                    "origin": excluded.origin,
                    "history_digest": excluded.history_digest,
                    "fitted_at": func.now(),
                    "checked_changes": func.greatest(models.c.checked_changes, excluded.checked_changes),
                },
            )
        )

    async def mark_checked(self, checked: dict[str, int]) -> None:
        """History changes found immaterial: the model stays, the changes are counted as seen."""
        models = tables.baseline_models
        for sku, seen in checked.items():
            await self.session.execute(
                update(models)
                .where(models.c.sku == sku)
                .values(checked_changes=func.greatest(models.c.checked_changes, seen))
            )

    async def note_history_changes(self, reports: Sequence[tuple[str, date]]) -> None:
        """Reports of days before a model's origin change the history it was fitted on: count them. One
        (sku, earliest reported day) per report, all of them in one statement."""
        if reports:
            await self.session.execute(
                NOTE_HISTORY_CHANGES,
                {"skus": [sku for sku, _ in reports], "days": [day for _, day in reports]},
            )
