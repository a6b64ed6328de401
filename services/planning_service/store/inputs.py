"""Loading the planning core's inputs from planning's own tables (items, history, signals, promotions), and
the stored forms of a plan and a promotion as domain values."""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import ARRAY, Text, any_, bindparam, cast, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import (
    BaselineModel,
    Cannibalization,
    Item,
    Launch,
    PlanException,
    PlanWeek,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    Spike,
    baseline_level,
)
from services.planning_service.domain.forecast import MAX_HISTORY_WEEKS
from services.planning_service.store.customers import open_order_lines
from shared.events import LaunchData, PromotionData

# Every uncancelled promotion with the SKUs it names (items and cannibalized), its body as JSON text.
_ACTIVE_PROMOTIONS = text(
    """
    SELECT p.body::text AS body,
           ARRAY(SELECT e->>'sku' FROM jsonb_array_elements(coalesce(p.body->'items', '[]'::jsonb)
                                                            || coalesce(p.body->'cannibalized', '[]'::jsonb)) AS e)
               AS skus
    FROM planning.promotions AS p
    WHERE p.status <> 'cancelled'
    """
)
# Which versions of which promotions are uncancelled, as one digest: each stored version of a promotion is one
# event's (`last_event_id`), so any promotion stored, revised or cancelled since changes it. Reading it costs the
# server a pass over the promotions' ids, none of their bodies.
_ACTIVE_MARK = """
    SELECT md5(coalesce(string_agg(a.promotion_id || ' ' || a.version || ' ' || a.last_event_id, ','
                                   ORDER BY a.promotion_id COLLATE "C"), '')) AS mark
    FROM planning.promotions AS a
    WHERE a.status <> 'cancelled'
"""
_ACTIVE_PROMOTIONS_MARK = text(_ACTIVE_MARK)
# `_ACTIVE_PROMOTIONS` with the digest they have, in one statement (so from one snapshot): a row with a null body
# when there is none.
_ACTIVE_PROMOTIONS_MARKED = text(
    f"""
    SELECT m.mark, p.body::text AS body,
           ARRAY(SELECT e->>'sku' FROM jsonb_array_elements(coalesce(p.body->'items', '[]'::jsonb)
                                                            || coalesce(p.body->'cannibalized', '[]'::jsonb)) AS e)
               AS skus
    FROM ({_ACTIVE_MARK}) AS m
    LEFT JOIN planning.promotions AS p ON p.status <> 'cancelled'
    """
)


@functools.cache
def _weekly_units_sql(of_skus: bool, until: bool) -> str:
    """`InputSql.weekly_units`'s statement: $1 the first day, then the SKUs (when `of_skus`), then the day the
    weeks end before (when `until`). A day's week is its Monday, in date arithmetic (`date_trunc('week', ...)`
    goes through a timestamp with time zone per row); 1970-01-05 was a Monday."""
    where = ["v.day >= $1"]
    if of_skus:
        where.append("v.sku = ANY($2::text[])")
    if until:
        where.append(f"v.day < ${len(where) + 1}")
    return f"""
        SELECT w.sku, array_agg(w.week ORDER BY w.week) AS weeks, array_agg(w.units ORDER BY w.week) AS units
        FROM (SELECT v.sku, v.day - ((v.day - DATE '1970-01-05') % 7 + 7) % 7 AS week,
                     sum(v.units_ordered)::float8 AS units
              FROM planning.daily_volumes AS v
              WHERE {" AND ".join(where)}
              GROUP BY 1, 2) AS w
        GROUP BY w.sku
    """


# Sensing looks at most a few weeks back from the horizon; older spikes cannot move any week.
SPIKE_LOOKBACK_DAYS = 8 * 7


@dataclass(frozen=True)
class StoredPlan:
    sku: str
    plan_version: int
    plan: SkuPlan
    exceptions: list[dict[str, Any]]


@dataclass
class ActivePromotions:
    """The uncancelled promotions as a full re-plan's chunks read them: decoded once, with the SKUs each names,
    and read again only when the digest of which promotion versions are uncancelled (`mark`) has changed since.
    A chunk reads the digest under its SKUs' locks, as it would read the promotions themselves, so each chunk
    still plans with the promotions as they are when it runs; what the replan saves is reading and decoding
    every promotion once per chunk."""

    mark: str | None = None
    promotions: list[tuple[Promotion, frozenset[str]]] = field(default_factory=list)
    reads: int = 0  # how often the promotions were read and decoded whole


@dataclass
class PlanningInputs:
    """What `plan_many` needs for a set of SKUs, plus the plans currently stored for them."""

    inputs: list[SkuInputs] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    reference_baselines: dict[str, float] = field(default_factory=dict)
    stored: dict[str, StoredPlan] = field(default_factory=dict)


def item_from_row(row: Any) -> Item:
    return Item(
        sku=row.sku,
        name=row.name,
        on_hand=row.on_hand,
        safety_stock=row.safety_stock,
        lot_size=row.lot_size,
        weekly_capacity=row.weekly_capacity,
        frozen_weeks=row.frozen_weeks,
        baseline_weekly_demand=row.baseline_weekly_demand,
    )


def promotion_from_data(data: PromotionData, *, cancelled: bool = False) -> Promotion:
    return Promotion(
        promotion_id=data.promotion_id,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        items=tuple(PromotionItem(i.sku, i.uplift_pct) for i in data.items),
        post_promo_dip_pct=data.post_promo_dip_pct,
        post_promo_dip_weeks=data.post_promo_dip_weeks,
        cannibalized=tuple(Cannibalization(c.sku, c.pct) for c in data.cannibalized),
        cancelled=cancelled,
    )


def promotion_skus(promotion: Promotion | PromotionData) -> set[str]:
    return {i.sku for i in promotion.items} | {c.sku for c in promotion.cannibalized}


def launch_from_data(data: LaunchData) -> Launch:
    return Launch(data.launch_id, data.sku, data.launch_on, data.reference_sku, data.scale_pct, data.ramp_weeks)


def plan_from_json(sku: str, weeks: Any) -> SkuPlan:
    """A plan's stored weeks as domain values: the compact form `encode_plan_weeks` writes, or the list of one
    object per week that plans stored before it (and `plan_weeks_json`) have."""
    if isinstance(weeks, dict):
        return SkuPlan(sku, _weeks_from_rows({**weeks, "rows": [list(row) for row in weeks["rows"]]}))
    return SkuPlan(
        sku,
        tuple(PlanWeek(**{**w, "week_start": date.fromisoformat(w["week_start"])}) for w in weeks),
    )


def _plan_from_decoded(sku: str, weeks: Any) -> SkuPlan:
    """`plan_from_json` of weeks decoded for it alone (their rows or dicts are reused)."""
    if isinstance(weeks, dict):
        return SkuPlan(sku, _weeks_from_rows(weeks))
    fromisoformat = date.fromisoformat
    week_of_dict = _week_of_dict
    plan_weeks = []
    for w in weeks:
        w["week_start"] = fromisoformat(w["week_start"])
        plan_weeks.append(week_of_dict(w))
    return SkuPlan(sku, tuple(plan_weeks))


_WEEK_OF_DICT = operator.itemgetter(*PlanWeek._fields)
_WEEK_WIDTH = len(PlanWeek._fields)
# `PlanWeek._make` of values known to be one per field, without its Python frame and length check.
_NEW_WEEK = functools.partial(tuple.__new__, PlanWeek)


def _week_of_dict(week: dict[str, Any]) -> PlanWeek:
    """`PlanWeek(**week)`: a week with every field (as every plan since the promising fields is stored) is
    read by position, without the keyword arguments' cost; any other goes through the keywords (a missing
    field takes its default, an unknown one is an error)."""
    if len(week) == _WEEK_WIDTH:
        try:
            return _NEW_WEEK(_WEEK_OF_DICT(week))
        except KeyError:
            pass  # as many keys, not the same ones: the keywords say which is unknown
    return PlanWeek(**week)


def plan_weeks_json(plan: SkuPlan) -> list[dict[str, Any]]:
    return [{**w._asdict(), "week_start": w.week_start.isoformat()} for w in plan.weeks]


_WEEK_FIELDS = PlanWeek._fields
_WEEK_FIELD_LIST = list(_WEEK_FIELDS)


def encode_plan_weeks(weeks: Sequence[PlanWeek]) -> bytes:
    """What `plans.weeks` stores: the field names once and one array of values per week
    (`{"fields": [...], "rows": [["2026-11-30", 12.5, ...], ...]}`), under half the size of an object per
    week and encoded in one call; `plan_from_json` reads it back to the same weeks."""
    return orjson.dumps({"fields": _WEEK_FIELDS, "rows": list(map(tuple, weeks))})


def week_values(weeks: Sequence[PlanWeek]) -> list[bytes]:
    """Every value of the weeks as orjson writes it, week by week and field by field, all encoded in one call:
    what `encode_expanded_plan_weeks` fills in, and where a first plan's changes can take their numbers from."""
    # [12.5,"2026-11-30",null,...]: no value holds a comma
    return orjson.dumps(list(chain.from_iterable(weeks)))[1:-1].split(b",")


def encode_expanded_plan_weeks(weeks: Sequence[PlanWeek], values: Sequence[bytes] | None = None) -> bytes:
    """`plans.weeks` spelled out, one object per week (`plan_weeks_json` encoded): the form every version of
    the service reads, byte for byte what versions before `encode_plan_weeks` wrote
    (`orjson.dumps([week._asdict() for week in weeks])`). Put together without a dict per week, which a full
    re-plan would make by the hundred thousand for the garbage collector to go through: every value encoded in
    one call (`week_values`, or the caller's `values` of these weeks), then filled into a template of the
    objects' keys."""
    if not weeks:
        return b"[]"
    return _expanded_weeks_template(len(weeks)) % tuple(week_values(weeks) if values is None else values)


@functools.lru_cache(maxsize=8)
def _expanded_weeks_template(count: int) -> bytes:
    """`count` weeks as `encode_expanded_plan_weeks` writes them, a `%b` for each value, week by week."""
    week = b"{" + b",".join(orjson.dumps(name) + b":%b" for name in _WEEK_FIELDS) + b"}"
    return b"[" + b",".join([week] * count) + b"]"


def _weeks_from_rows(stored: dict[str, Any]) -> tuple[PlanWeek, ...]:
    """The weeks of `encode_plan_weeks`'s form; its rows are reused."""
    fromisoformat = date.fromisoformat
    rows = stored["rows"]
    if stored["fields"] == _WEEK_FIELD_LIST:
        weeks_as_stored = []
        for row in rows:
            if len(row) != _WEEK_WIDTH:
                raise TypeError(f"a stored week has {len(row)} values for {_WEEK_WIDTH} fields")
            row[0] = fromisoformat(row[0])
            weeks_as_stored.append(_NEW_WEEK(row))
        return tuple(weeks_as_stored)
    # written with other fields: by name, a field the row lacks takes its default
    names = stored["fields"]
    weeks = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["week_start"] = fromisoformat(values["week_start"])
        weeks.append(PlanWeek(**{name: values[name] for name in _WEEK_FIELDS if name in values}))
    return tuple(weeks)


def exceptions_json(exceptions: Sequence[PlanException]) -> list[dict[str, Any]]:
    return [
        {
            "week_start": e.week_start.isoformat(),
            "kind": e.kind,
            "planned_quantity": e.planned_quantity,
            "wanted_quantity": e.wanted_quantity,
            "message": e.message,
        }
        for e in exceptions
    ]


def _in(column: Any, skus: Collection[str] | None) -> Any:
    """`column` is one of the SKUs (True for all when None), as `= ANY` of one array parameter: the statement
    is the same whatever the number of SKUs, none of them a bind parameter of its own to render."""
    return True if skus is None else sku_in(column, skus)


def sku_in(column: Any, skus: Collection[str]) -> Any:
    return column == any_(bindparam(None, list(skus), type_=ARRAY(Text)))


class InputSql:
    session: AsyncSession

    async def active_promotions(
        self, skus: Collection[str] | None, *, known: ActivePromotions | None = None
    ) -> list[Promotion]:
        """Uncancelled promotions touching any of the SKUs (all of them when None). The server lists each
        one's SKUs, so only the bodies of promotions that touch the SKUs are decoded and validated. With `known`
        (a full re-plan's), they are taken from there unless their digest changed since it was filled; if it
        did, every promotion is read, decoded and kept there."""
        if known is not None:
            return await self._known_promotions(skus, known)
        rows = (await self.session.execute(_ACTIVE_PROMOTIONS)).all()
        wanted = None if skus is None else set(skus)
        return [
            promotion_from_data(PromotionData.model_validate_json(row.body))
            for row in rows
            if wanted is None or not wanted.isdisjoint(row.skus)
        ]

    async def _known_promotions(self, skus: Collection[str] | None, known: ActivePromotions) -> list[Promotion]:
        mark = (await self.session.execute(_ACTIVE_PROMOTIONS_MARK)).scalar_one()
        if mark != known.mark:
            rows = (await self.session.execute(_ACTIVE_PROMOTIONS_MARKED)).all()
            decoded = [
                (promotion_from_data(PromotionData.model_validate_json(row.body)), frozenset(row.skus))
                for row in rows
                if row.body is not None
            ]
            # set together, with no await between: the promotions are always those of the digest beside them
            known.mark, known.promotions = rows[0].mark, decoded
            known.reads += 1
        promotions = known.promotions
        if skus is None:
            return [promotion for promotion, _ in promotions]
        wanted = set(skus)
        return [promotion for promotion, named in promotions if not named.isdisjoint(wanted)]

    async def weekly_units(
        self, skus: Collection[str] | None, *, since: date, until: date | None = None
    ) -> dict[str, dict[date, float]]:
        """Units ordered per SKU and ISO week (keyed by Monday) from `since` on, summed over the daily totals;
        one row per SKU (its weeks and their units as two arrays), not one per SKU and week, read on the driver's
        connection (the arrays come back as lists of dates and floats, with no per-element processing)."""
        history: dict[str, dict[date, float]] = defaultdict(dict)
        if skus is not None and not skus:
            return history
        arguments: list[Any] = [since] if skus is None else [since, list(skus)]
        if until is not None:
            arguments.append(until)
        connection = await self.session.connection()
        driver: Any = (await connection.get_raw_connection()).driver_connection
        for sku, weeks, units in await driver.fetch(_weekly_units_sql(skus is not None, until is not None), *arguments):
            history[sku] = dict(zip(weeks, units, strict=True))
        return history

    async def planning_history(self, skus: Collection[str] | None, horizon_start: date) -> dict[str, dict[date, float]]:
        """The weekly history the core reads: the complete weeks of its history window before the horizon."""
        return await self.weekly_units(skus, since=horizon_start - timedelta(weeks=MAX_HISTORY_WEEKS))

    async def fitted_models(self, skus: Collection[str] | None) -> dict[str, BaselineModel]:
        """The stored fitted models of the SKUs (all when None); SKUs the smoothing serves are left out."""
        models = tables.baseline_models
        query = select(models.c.sku, models.c.model).where(models.c.model.is_not(None), _in(models.c.sku, skus))
        rows = (await self.session.execute(query)).all()
        return {row.sku: BaselineModel.from_json(row.model) for row in rows if row.model is not None}

    async def recent_days(self, skus: Collection[str], *, since: date) -> dict[str, dict[date, float]]:
        """Units ordered per SKU and day from `since` on (a day without a report is absent: zero)."""
        if not skus:
            return {}
        volumes = tables.daily_volumes
        query = select(volumes.c.sku, volumes.c.day, volumes.c.units_ordered).where(
            sku_in(volumes.c.sku, skus), volumes.c.day >= since
        )
        days: dict[str, dict[date, float]] = defaultdict(dict)
        for row in (await self.session.execute(query)).all():
            days[row.sku][row.day] = float(row.units_ordered)
        return days

    async def stored_plans(self, skus: Collection[str] | None) -> dict[str, StoredPlan]:
        """The current plans of the SKUs (all when None); their JSON read as text and decoded with orjson."""
        plans = tables.plans
        query = select(
            plans.c.sku,
            plans.c.plan_version,
            cast(plans.c.weeks, Text).label("weeks"),
            cast(plans.c.exceptions, Text).label("exceptions"),
        ).where(_in(plans.c.sku, skus))
        rows = (await self.session.execute(query)).all()
        loads = orjson.loads
        return {
            row.sku: StoredPlan(
                row.sku, row.plan_version, _plan_from_decoded(row.sku, loads(row.weeks)), loads(row.exceptions)
            )
            for row in rows
        }

    async def load_inputs(
        self, skus: Collection[str] | None, horizon_start: date, *, promotions: ActivePromotions | None = None
    ) -> PlanningInputs:
        """Inputs of the given SKUs (all SKUs with an item when None); SKUs without an item are left out.
        `promotions`: the promotions a full re-plan's earlier chunks read (`ActivePromotions`)."""
        items_table, spikes, returns, launches = tables.items, tables.spikes, tables.returns, tables.launches
        item_rows = (await self.session.execute(select(items_table).where(_in(items_table.c.sku, skus)))).all()
        items = [item_from_row(row) for row in item_rows]
        if not items:
            return PlanningInputs()
        planned = [item.sku for item in items] if skus is not None else None
        history = await self.planning_history(planned, horizon_start)
        spikes_by_sku: dict[str, list[Spike]] = defaultdict(list)
        spike_rows = await self.session.execute(
            select(spikes).where(
                _in(spikes.c.sku, planned),
                spikes.c.status == "detected",
                spikes.c.day >= horizon_start - timedelta(days=SPIKE_LOOKBACK_DAYS),
            )
        )
        for row in spike_rows.all():
            spikes_by_sku[row.sku].append(
                Spike(row.sku, row.day, row.units, row.baseline, row.explained_by_promotion_id is not None)
            )
        receipts: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
        replacements: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
        return_rows = await self.session.execute(
            select(returns).where(_in(returns.c.sku, planned), returns.c.returned_on >= horizon_start)
        )
        for row in return_rows.all():
            if row.condition == "resellable":
                receipts[row.sku][row.returned_on] += row.quantity
            if row.resolution == "replacement":
                replacements[row.sku][row.returned_on] += row.quantity
        stored = await self.stored_plans(planned)
        order_lines = await open_order_lines(self.session, planned)
        models = await self.fitted_models(planned)
        # sensing reads the daily run rate only where an unexplained spike may confirm a level shift
        sensed = sorted({sku for sku, found in spikes_by_sku.items() if any(not s.explained for s in found)})
        recent = await self.recent_days(sensed, since=horizon_start - timedelta(days=SPIKE_LOOKBACK_DAYS))
        result = PlanningInputs(stored=stored)
        for item in items:
            previous = stored.get(item.sku)
            result.inputs.append(
                SkuInputs(
                    item=item,
                    history=history.get(item.sku, {}),
                    spikes=tuple(spikes_by_sku.get(item.sku, ())),
                    resellable_returns=dict(receipts.get(item.sku, {})),
                    replacements=dict(replacements.get(item.sku, {})),
                    previous_mps=({w.week_start: w.mps_quantity for w in previous.plan.weeks} if previous else None),
                    order_lines=tuple(order_lines.get(item.sku, ())),
                    recent_days=recent.get(item.sku, {}),
                    baseline_model=models.get(item.sku),
                )
            )
        result.promotions = await self.active_promotions(planned, known=promotions)
        launch_rows = (await self.session.execute(select(launches.c.body).where(_in(launches.c.sku, planned)))).all()
        result.launches = [launch_from_data(LaunchData.model_validate(row.body)) for row in launch_rows]
        result.reference_baselines = await self._reference_baselines(
            result.launches, {item.sku for item in items}, horizon_start, promotions
        )
        return result

    async def _reference_baselines(
        self, launches: list[Launch], planned: set[str], horizon_start: date, known: ActivePromotions | None = None
    ) -> dict[str, float]:
        """Baselines of launch reference SKUs that are not planned in this batch (a launched SKU's own event
        must not re-plan its reference), from their stored item and history."""
        missing = {launch.reference_sku for launch in launches} - planned
        if not missing:
            return {}
        items_table = tables.items
        rows = (await self.session.execute(select(items_table).where(items_table.c.sku.in_(sorted(missing))))).all()
        items = {row.sku: item_from_row(row) for row in rows}
        history = await self.planning_history(sorted(missing), horizon_start)
        promotions = await self.active_promotions(missing, known=known)
        baselines: dict[str, float] = {}
        for sku in missing:
            if sku not in items and sku not in history:
                continue  # unknown reference: the core plans 0 and raises an exception for the planner
            item = items.get(sku) or Item(sku=sku, name=sku, on_hand=0, safety_stock=0)
            baselines[sku] = baseline_level(SkuInputs(item, history.get(sku, {})), horizon_start, promotions)
        return baselines
