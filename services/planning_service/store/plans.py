"""Writing plans: each SKU's current plan, its revisions, forecast snapshots, the open capacity conflicts as
last announced, and the week the plans were rolled to."""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import CapacityConflict, PlanWeek, SkuPlan
from services.planning_service.domain.diff import COMPARED_FIELDS, ChangedWeek, spelled_out
from services.planning_service.store.inputs import sku_in
from shared.outbox import EncodedEvent, record_encoded_events

ROLLED_TO = "horizon_start"

# Set-based writes of a whole batch of plans (a full re-plan's chunk): arrays in, one statement per table.
# JSON goes in encoded with orjson and is cast by the server; the plan's weeks and the revision's changes are
# `json` columns, kept as written. Those large documents go as one `bytea` each (all of them one after the
# other, cut by their lengths on the server): the driver sends one value at the cost of one copy, where an
# array of them grows its buffer element by element.
_SAVE_PLANS = text(
    """
    INSERT INTO planning.plans AS p (sku, plan_version, horizon_start, generated_at, weeks, exceptions,
                                     total_forecast, total_mps, shortfall_weeks)
    SELECT r.sku, r.plan_version, cast(:horizon_start AS date), cast(:generated_at AS timestamptz),
           convert_from(substring(cast(:weeks AS bytea) FROM r.start FOR r.length), 'UTF8')::json,
           r.exceptions::jsonb, r.total_forecast, r.total_mps, r.shortfall_weeks
    FROM (SELECT u.*, (sum(u.length) OVER (ORDER BY u.n) - u.length + 1)::int AS start
          FROM unnest(cast(:skus AS text[]), cast(:versions AS int[]), cast(:weeks_lengths AS int[]),
                      cast(:exceptions AS text[]), cast(:total_forecast AS float8[]), cast(:total_mps AS float8[]),
                      cast(:shortfall_weeks AS int[]))
               WITH ORDINALITY AS u(sku, plan_version, length, exceptions, total_forecast, total_mps,
                                    shortfall_weeks, n)) AS r
    ON CONFLICT (sku) DO UPDATE SET
        plan_version = excluded.plan_version, horizon_start = excluded.horizon_start,
        generated_at = excluded.generated_at, weeks = excluded.weeks, exceptions = excluded.exceptions,
        total_forecast = excluded.total_forecast, total_mps = excluded.total_mps,
        shortfall_weeks = excluded.shortfall_weeks
    """
)
_SAVE_REVISIONS = text(
    """
    INSERT INTO planning.plan_revisions (sku, plan_version, generated_at, driver_event_ids, changes)
    SELECT r.sku, r.plan_version, cast(:generated_at AS timestamptz),
           ARRAY(SELECT d FROM jsonb_array_elements_text(r.drivers::jsonb) WITH ORDINALITY AS t(d, n) ORDER BY n),
           convert_from(substring(cast(:changes AS bytea) FROM r.start FOR r.length), 'UTF8')::json
    FROM (SELECT u.*, (sum(u.length) OVER (ORDER BY u.n) - u.length + 1)::int AS start
          FROM unnest(cast(:skus AS text[]), cast(:versions AS int[]), cast(:drivers AS text[]),
                      cast(:changes_lengths AS int[])) WITH ORDINALITY AS u(sku, plan_version, drivers, length, n)
         ) AS r
    """
)
_SAVE_EXCEPTIONS = text(
    """
    UPDATE planning.plans AS p SET exceptions = r.exceptions::jsonb
    FROM unnest(cast(:skus AS text[]), cast(:exceptions AS text[])) AS r(sku, exceptions)
    WHERE p.sku = r.sku
    """
)
_SNAPSHOT_FORECASTS = text(
    """
    INSERT INTO planning.forecast_snapshots (sku, week_start, forecast)
    SELECT r.sku, cast(:week_start AS date), r.forecast
    FROM unnest(cast(:skus AS text[]), cast(:forecasts AS float8[])) AS r(sku, forecast)
    ON CONFLICT DO NOTHING
    """
)

# `mps.revised` events whose `changed_weeks` are their revision's stored changes, byte for byte (the revisions
# are stored spelled out): the changes go to the server once, in the revision row, and each outbox row is put
# together there from the event's JSON before them, the revision's `changes` and the JSON after them.
_SAVE_REVISION_EVENTS = text(
    """
    INSERT INTO planning.outbox (event_id, event_type, topic, key, payload)
    SELECT e.event_id, e.event_type, e.topic, e.key, e.head || convert_to(r.changes::text, 'UTF8') || e.tail
    FROM unnest(cast(:event_ids AS text[]), cast(:event_types AS text[]), cast(:topics AS text[]),
                cast(:keys AS text[]), cast(:skus AS text[]), cast(:versions AS int[]), cast(:heads AS bytea[]),
                cast(:tails AS bytea[]))
         WITH ORDINALITY AS e(event_id, event_type, topic, key, sku, plan_version, head, tail, position)
    JOIN planning.plan_revisions AS r ON r.sku = e.sku AND r.plan_version = e.plan_version
    ORDER BY e.position
    """
)


_FORECAST = operator.itemgetter(PlanWeek._fields.index("forecast"))
_MPS_QUANTITY = operator.itemgetter(PlanWeek._fields.index("mps_quantity"))
_CAPACITY_SHORTFALL = operator.itemgetter(PlanWeek._fields.index("capacity_shortfall"))
_POSITIVE = functools.partial(operator.lt, 0.0)  # any number type, as `x > 0` takes it


def plan_totals(weeks: Sequence[PlanWeek]) -> tuple[float, float, int]:
    """A plan's total forecast and MPS quantity (summed week by week) and its weeks short of capacity, as
    `plans` stores them beside the weeks: the fields read by position, no attribute looked up per week."""
    return (
        float(sum(map(_FORECAST, weeks))),
        float(sum(map(_MPS_QUANTITY, weeks))),
        sum(map(_POSITIVE, map(_CAPACITY_SHORTFALL, weeks))),
    )


@dataclass(frozen=True, slots=True)
class RevisionEvent:
    """An encoded event that carries a stored revision's changes as they are stored (`changes` of the
    revision `sku`, `plan_version`), between `head` and `tail`: its payload is `head + changes + tail`."""

    event_id: str
    event_type: str
    topic: str
    key: str
    sku: str
    plan_version: int
    head: bytes
    tail: bytes


@dataclass(frozen=True)
class PlanRevision:
    """A new version of a SKU's plan, the events that moved it and which week fields changed."""

    plan: SkuPlan
    plan_version: int
    exceptions: list[dict[str, Any]]
    driver_event_ids: list[str]
    # the week changes as the revision stores them (`encode_stored_changes`, or spelled out as `mps.revised`
    # carries them); the event's are encoded from the same values
    stored_changes: bytes
    # the plan's weeks as `plans.weeks` stores them (`encode_plan_weeks` or `encode_expanded_plan_weeks`)
    stored_weeks: bytes

    @property
    def changes(self) -> list[dict[str, Any]]:
        """One `{"week_start", "field", "before", "after"}` per change, as the event carries them."""
        return changes_from_stored(orjson.loads(self.stored_changes))


def encode_stored_changes(weeks: Sequence[ChangedWeek]) -> bytes:
    """A revision's changes as `plan_revisions.changes` stores them: the compared fields named once, then per
    changed week its start, the positions of the fields that changed (null: all), their values before (null: a
    new week) and after: `{"fields": [...], "weeks": [["2026-11-30", [1, 2], [4.0, 5.0], [6.0, 7.0]], ...]}`.
    A first plan's 156 changes take about 2 KB instead of 14 KB; `changes_from_stored` spells them out again."""
    return orjson.dumps({"fields": COMPARED_FIELDS, "weeks": weeks})


def encode_spelled_out_changes(weeks: Sequence[ChangedWeek]) -> bytes:
    """`orjson.dumps(spelled_out(weeks))`, byte for byte (what `mps.revised` carries as `changed_weeks`, and an
    expanded revision stores), without a dict per change: a revision of every plan spells out about a million
    changes. Every number is encoded in one call (`before` and `after` of each change, in order; orjson writes a
    value in a list as it writes it in an object, and no number's text holds a comma), then filled into a
    template of each changed week's changes, one per week start and set of changed fields."""
    if not weeks:
        return b"[]"
    numbers: list[Any] = []
    for _, _, befores, afters in weeks:
        if befores is None:
            numbers += afters
        else:
            both: list[float | None] = [None] * (2 * len(afters))
            both[0::2] = befores
            both[1::2] = afters
            numbers += both
    texts = orjson.dumps(numbers)[1:-1].split(b",")
    parts = []
    start = 0
    for week_start, fields, befores, afters in weeks:
        end = start + (len(afters) if befores is None else 2 * len(afters))
        parts.append(_spelled_out_week(week_start, fields, befores is None) % tuple(texts[start:end]))
        start = end
    return b"[" + b",".join(parts) + b"]"


@functools.lru_cache(maxsize=4096)
def _spelled_out_week(week_start: date, fields: tuple[int, ...] | None, new: bool) -> bytes:
    """One changed week's changes as `spelled_out` writes them, a `%`-template with a `%b` where each number goes
    (`before` then `after` of each change in field order; `after` alone for a `new` week, whose `before` is null),
    taken from orjson's own output of a change."""
    names = COMPARED_FIELDS if fields is None else [COMPARED_FIELDS[position] for position in fields]
    marker = b'"before":null,"after":null}'
    changes = []
    for name in names:
        change = orjson.dumps({"week_start": week_start, "field": name, "before": None, "after": None})
        head = change[: -len(marker)].replace(b"%", b"%%")
        changes.append(head + (b'"before":null,"after":%b}' if new else b'"before":%b,"after":%b}'))
    return b",".join(changes)


def changes_from_stored(stored: Any) -> list[dict[str, Any]]:
    """A stored revision's changes, one `{"week_start", "field", "before", "after"}` per change (dates as ISO
    text, as JSON has them): from `encode_stored_changes`'s form, or spelled out as they are (as revisions
    stored expanded, and all stored before the compact form, have them)."""
    if isinstance(stored, dict):
        return spelled_out([tuple(week) for week in stored["weeks"]], stored["fields"])
    return list(stored)


def conflict_from_row(row: Any) -> CapacityConflict:
    weeks = tuple((date.fromisoformat(w["week_start"]), float(w["shortfall"])) for w in row.weeks)
    return CapacityConflict(row.sku, tuple(row.promotion_ids), weeks, row.total_shortfall)


class PlanSql:
    session: AsyncSession

    async def earlier_drivers(self, skus: Collection[str]) -> dict[str, list[str]]:
        """Events recorded for SKUs before they had a plan (e.g. a promotion that arrived before the item),
        oldest first."""
        if not skus:
            return {}
        drivers = tables.drivers
        rows = await self.session.execute(
            select(drivers.c.event_id, drivers.c.skus)
            .where(drivers.c.skus.overlap(list(skus)))
            .order_by(drivers.c.received_at, drivers.c.event_id)
        )
        wanted = set(skus)
        found: dict[str, list[str]] = {}
        for row in rows.all():
            for sku in wanted.intersection(row.skus):
                found.setdefault(sku, []).append(row.event_id)
        return found

    async def save_revisions(
        self, revisions: Sequence[PlanRevision], *, horizon_start: date, generated_at: datetime
    ) -> None:
        """Each revision becomes its SKU's current plan and one row of its history: one statement per table
        for all of them, the JSON encoded here (or by the caller) and passed as text."""
        if not revisions:
            return
        skus: list[str] = []
        versions: list[int] = []
        weeks: list[bytes] = []
        exceptions: list[str] = []
        total_forecast: list[float] = []
        total_mps: list[float] = []
        shortfall_weeks: list[int] = []
        drivers: list[str] = []
        changes: list[bytes] = []
        for r in revisions:
            plan_weeks = r.plan.weeks
            skus.append(r.plan.sku)
            versions.append(r.plan_version)
            weeks.append(r.stored_weeks)
            exceptions.append(orjson.dumps(r.exceptions).decode() if r.exceptions else "[]")
            forecast, mps, shortfall = plan_totals(plan_weeks)
            total_forecast.append(forecast)
            total_mps.append(mps)
            shortfall_weeks.append(shortfall)
            drivers.append(orjson.dumps(r.driver_event_ids).decode())
            changes.append(r.stored_changes)
        await self.session.execute(
            _SAVE_PLANS,
            {
                "skus": skus,
                "versions": versions,
                "horizon_start": horizon_start,
                "generated_at": generated_at,
                "weeks": b"".join(weeks),
                "weeks_lengths": list(map(len, weeks)),
                "exceptions": exceptions,
                "total_forecast": total_forecast,
                "total_mps": total_mps,
                "shortfall_weeks": shortfall_weeks,
            },
        )
        await self.session.execute(
            _SAVE_REVISIONS,
            {
                "skus": skus,
                "versions": versions,
                "generated_at": generated_at,
                "drivers": drivers,
                "changes": b"".join(changes),
                "changes_lengths": list(map(len, changes)),
            },
        )

    async def save_revision_events(self, events: Sequence[RevisionEvent]) -> None:
        """Events around their revisions' stored changes (already measured), into the outbox in this transaction
        and in their order (one statement): each payload put together on the server, the changes not sent
        again. The revisions must be stored first."""
        if not events:
            return
        written = await self.session.execute(
            _SAVE_REVISION_EVENTS,
            {
                "event_ids": [e.event_id for e in events],
                "event_types": [e.event_type for e in events],
                "topics": [e.topic for e in events],
                "keys": [e.key for e in events],
                "skus": [e.sku for e in events],
                "versions": [e.plan_version for e in events],
                "heads": [e.head for e in events],
                "tails": [e.tail for e in events],
            },
        )
        count = getattr(written, "rowcount", len(events))
        if count != len(events):
            raise RuntimeError(f"{len(events) - count} of {len(events)} events name no stored revision")

    async def save_exceptions(self, exceptions: Mapping[str, list[dict[str, Any]]]) -> None:
        """New exceptions of plans that did not change otherwise (no new version)."""
        if not exceptions:
            return
        await self.session.execute(
            _SAVE_EXCEPTIONS,
            {"skus": list(exceptions), "exceptions": [orjson.dumps(found).decode() for found in exceptions.values()]},
        )

    async def snapshot_forecasts(self, week_start: date, forecasts: Mapping[str, float]) -> None:
        """The first forecast of a week that a SKU gets is kept: what its accuracy is measured against."""
        if not forecasts:
            return
        await self.session.execute(
            _SNAPSHOT_FORECASTS,
            {"skus": list(forecasts), "week_start": week_start, "forecasts": [float(f) for f in forecasts.values()]},
        )

    async def save_encoded_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None:
        """Events already encoded, into the outbox in this transaction (one statement)."""
        await record_encoded_events(self.session, tables.outbox, events, max_bytes=max_bytes)

    async def open_conflicts(self, skus: Collection[str]) -> dict[str, CapacityConflict]:
        conflicts = tables.conflicts
        rows = (await self.session.execute(select(conflicts).where(sku_in(conflicts.c.sku, skus)))).all()
        return {row.sku: conflict_from_row(row) for row in rows}

    async def save_conflict(self, conflict: CapacityConflict, *, plan_version: int, detected_at: datetime) -> None:
        conflicts = tables.conflicts
        statement = insert(conflicts).values(
            sku=conflict.sku,
            promotion_ids=list(conflict.promotion_ids),
            weeks=[{"week_start": w.isoformat(), "shortfall": s} for w, s in conflict.weeks],
            total_shortfall=conflict.total_shortfall,
            plan_version=plan_version,
            detected_at=detected_at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[conflicts.c.sku],
                set_={k: statement.excluded[k] for k in ("promotion_ids", "weeks", "total_shortfall", "plan_version")},
            )
        )

    async def delete_conflict(self, sku: str) -> None:
        await self.session.execute(delete(tables.conflicts).where(tables.conflicts.c.sku == sku))

    async def rolled_to(self) -> date | None:
        """The ISO week the plans were last rolled to; locked until the commit, so one instance rolls."""
        state = tables.planning_state
        query = select(state.c.value).where(state.c.key == ROLLED_TO).with_for_update()
        row = (await self.session.execute(query)).first()
        return date.fromisoformat(row.value) if row else None

    async def set_rolled_to(self, week_start: date) -> None:
        state = tables.planning_state
        statement = insert(state).values(key=ROLLED_TO, value=week_start.isoformat())
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[state.c.key], set_={"value": statement.excluded.value})
        )
