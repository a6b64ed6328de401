"""Planning's event and command handlers: keep its copy of the inputs current, record every driver, and
re-plan exactly the SKUs an event touches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.planning_service import tables
from services.planning_service.inputs import promotion_skus
from services.planning_service.recompute import RecomputeResult, lock_all, lock_skus, recompute
from services.planning_service.schemas import ItemPut
from services.planning_service.settings import PlanningSettings
from shared.db import UnitOfWork
from shared.events import (
    CloudEvent,
    EventType,
    InvalidEvent,
    LaunchData,
    OrderSpikeData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
)

P = tables.promotions
D = tables.drivers
ITEM_UPDATED = "planning.item.updated"
REPLANNED = "planning.replanned"


REPLAN = "planning.replan"


def promotion_summary(event_type: str, promotion: PromotionData) -> str:
    uplifts = ", ".join(f"{item.uplift_pct:+g}% on {item.sku}" for item in promotion.items)
    if event_type == EventType.PROMOTION_CANCELLED:
        return f"{promotion.promotion_id} cancelled ({uplifts} withdrawn)"
    if event_type == EventType.PROMOTION_REVISED:
        return f"{promotion.promotion_id} revised: {uplifts}"
    return f"{promotion.promotion_id} {uplifts}"


async def record_driver(uow: UnitOfWork, event: CloudEvent, skus: list[str], summary: str) -> None:
    await record_driver_values(
        uow, event.id, event.type, subject=event.subject, skus=skus, summary=summary, occurred_at=event.time
    )


async def record_driver_values(
    uow: UnitOfWork,
    event_id: str,
    event_type: str,
    *,
    subject: str | None,
    skus: list[str],
    summary: str,
    occurred_at: datetime | None = None,
) -> None:
    await uow.session.execute(
        insert(D)
        .values(
            event_id=event_id,
            event_type=event_type,
            subject=subject,
            skus=sorted(set(skus)),
            summary=summary,
            occurred_at=occurred_at,
        )
        .on_conflict_do_nothing()
    )


async def _replan(uow: UnitOfWork, skus: set[str], driver_id: str, settings: PlanningSettings) -> None:
    """Note the SKUs an event touched; `finish_replans` re-plans them once for all the unit of work's events."""
    pending: dict[str, list[str]] = uow.context.setdefault(REPLAN, {})
    for sku in skus:
        pending.setdefault(sku, []).append(driver_id)


async def finish_replans(uow: UnitOfWork, settings: PlanningSettings) -> None:
    pending: dict[str, list[str]] | None = uow.context.pop(REPLAN, None)
    if pending:
        await lock_skus(uow, pending)
        await recompute(uow, set(pending), pending, settings)


# ---------------------------------------------------------------- promotions and launches


async def on_promotion_event(
    uow: UnitOfWork, event: CloudEvent, promotion: PromotionData, settings: PlanningSettings
) -> None:
    """Keep the newest version of the promotion and re-plan every SKU it touches now or touched before.

    An older version arriving late changes nothing; a cancellation wins over a plain event of the same
    version, so a late `planned` cannot revive a cancelled promotion.
    """
    if promotion.ends_on < promotion.starts_on:
        raise InvalidEvent("invalid-data", "data.ends_on: is before starts_on")
    status = "cancelled" if event.type == EventType.PROMOTION_CANCELLED else promotion.status
    previous = (await uow.session.execute(select(P.c.body).where(P.c.promotion_id == promotion.promotion_id))).first()
    values = {
        "promotion_id": promotion.promotion_id,
        "version": promotion.version,
        "status": status,
        "body": promotion.model_dump(mode="json"),
        "last_event_id": event.id,
    }
    statement = insert(P).values(**values)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[P.c.promotion_id],
            set_={k: statement.excluded[k] for k in ("version", "status", "body", "last_event_id")}
            | {"updated_at": datetime.now().astimezone()},
            where=(P.c.version < statement.excluded.version)
            | ((P.c.version == statement.excluded.version) & (P.c.status != "cancelled")),
        )
    )
    skus = promotion_skus(promotion)
    if previous is not None:  # SKUs an earlier version touched lose its effect when a revision drops them
        skus |= promotion_skus(PromotionData.model_validate(previous.body))
    await record_driver(uow, event, sorted(skus), promotion_summary(event.type, promotion))
    await _replan(uow, skus, event.id, settings)


async def on_launch_planned(uow: UnitOfWork, event: CloudEvent, launch: LaunchData, settings: PlanningSettings) -> None:
    L = tables.launches
    statement = insert(L).values(
        launch_id=launch.launch_id,
        sku=launch.sku,
        body=launch.model_dump(mode="json"),
        last_event_id=event.id,
    )
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[L.c.launch_id],
            set_={k: statement.excluded[k] for k in ("sku", "body", "last_event_id")},
        )
    )
    summary = (
        f"launch {launch.launch_id}: {launch.sku} from {launch.launch_on} following {launch.reference_sku}"
        f" at {launch.scale_pct:g}% (ramp {launch.ramp_weeks} weeks)"
    )
    await record_driver(uow, event, [launch.sku], summary)
    await _replan(uow, {launch.sku}, event.id, settings)


# ---------------------------------------------------------------- order volumes and spikes


async def on_order_volumes(
    uow: UnitOfWork, event: CloudEvent, volumes: OrderVolumeReportedData, settings: PlanningSettings
) -> None:
    """Fulfillment's new daily totals of a SKU replace the stored days (corrections never add up)."""
    V = tables.daily_volumes
    latest = {d.day: d for d in volumes.days}  # the last line of a day wins if a producer repeats it
    rows = [
        {
            "sku": volumes.sku,
            "day": d.day,
            "units_ordered": d.units_ordered,
            "units_shipped": d.units_shipped,
            "units_backordered": d.units_backordered,
        }
        for d in latest.values()
    ]
    statement = insert(V)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[V.c.sku, V.c.day],
            set_={k: statement.excluded[k] for k in ("units_ordered", "units_shipped", "units_backordered")},
        ),
        rows,
    )
    days = sorted(latest)
    span = f"{days[0]}" if len(days) == 1 else f"{days[0]}..{days[-1]}"
    units = sum(d.units_ordered for d in latest.values())
    summary = f"order volumes of {volumes.sku} for {span}: {units} units ordered"
    await record_driver(uow, event, [volumes.sku], summary)
    await _replan(uow, {volumes.sku}, event.id, settings)


async def on_order_spike(uow: UnitOfWork, event: CloudEvent, spike: OrderSpikeData, settings: PlanningSettings) -> None:
    """The newest event about a (sku, day) spike wins; only unexplained, unretracted spikes drive sensing."""
    S = tables.spikes
    retracted = event.type == EventType.ORDER_SPIKE_RETRACTED or spike.status == "retracted"
    before = (
        await uow.session.execute(
            select(S.c.status, S.c.explained_by_promotion_id).where(S.c.sku == spike.sku, S.c.day == spike.day)
        )
    ).first()
    drove_sensing = before is not None and before.status == "detected" and not before.explained_by_promotion_id
    drives_sensing = not retracted and not spike.explained_by_promotion_id
    statement = insert(S).values(
        sku=spike.sku,
        day=spike.day,
        units=spike.units,
        baseline=spike.baseline,
        explained_by_promotion_id=spike.explained_by_promotion_id,
        status="retracted" if retracted else "detected",
        event_id=event.id,
        event_time=event.time,
    )
    keep = ("units", "baseline", "explained_by_promotion_id", "status", "event_id", "event_time")
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[S.c.sku, S.c.day],
            set_={k: statement.excluded[k] for k in keep},
            # a late, older event about the same day must not undo a newer one
            where=(S.c.event_time.is_(None))
            | (statement.excluded.event_time.is_(None))
            | (S.c.event_time <= statement.excluded.event_time),
        )
    )
    if retracted:
        summary = f"order spike of {spike.sku} on {spike.day} retracted"
    elif spike.explained_by_promotion_id:
        summary = (
            f"order spike of {spike.sku} on {spike.day} ({spike.units:g} units) explained by"
            f" {spike.explained_by_promotion_id}: no sensing"
        )
    else:
        summary = (
            f"unexplained order spike of {spike.sku} on {spike.day}: {spike.units:g} units vs {spike.baseline:g} a day"
        )
    await record_driver(uow, event, [spike.sku], summary)
    if drove_sensing or drives_sensing:  # otherwise the plan cannot change: sensing ignores this spike
        await _replan(uow, {spike.sku}, event.id, settings)


# ---------------------------------------------------------------- returns


async def on_return_recorded(
    uow: UnitOfWork, event: CloudEvent, returned: ReturnData, settings: PlanningSettings
) -> None:
    """Resellable returns are receipts; returns resolved by replacement add to gross requirements."""
    receipt = returned.condition == "resellable"
    replacement = returned.resolution == "replacement"
    if not (receipt or replacement):
        return  # neither stock back nor extra demand: nothing for the plan
    R = tables.returns
    await uow.session.execute(
        insert(R)
        .values(
            return_id=returned.return_id,
            sku=returned.sku,
            quantity=returned.quantity,
            condition=returned.condition,
            resolution=returned.resolution,
            returned_on=returned.returned_on,
        )
        .on_conflict_do_nothing(index_elements=[R.c.return_id])
    )
    effects = [e for e, on in (("back in stock", receipt), ("replacement shipped", replacement)) if on]
    summary = f"return {returned.return_id}: {returned.quantity} x {returned.sku} ({', '.join(effects)})"
    await record_driver(uow, event, [returned.sku], summary)
    await _replan(uow, {returned.sku}, event.id, settings)


# ---------------------------------------------------------------- commands


def _item_values(command: ItemPut) -> dict[str, Any]:
    return command.model_dump()


async def put_item(
    uow: UnitOfWork, sku: str, command: ItemPut, settings: PlanningSettings
) -> tuple[dict[str, Any], bool]:
    """Create or replace an item; a change is a revision driven by a synthetic `item:<sku>:<n>` driver.

    Returns the stored item and whether it was created.
    """
    IT = tables.items
    await lock_skus(uow, {sku})
    existing = (await uow.session.execute(select(IT).where(IT.c.sku == sku))).first()
    values = _item_values(command)
    if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
        return dict(existing._mapping), False  # nothing changed: no revision
    revision = 1 if existing is None else existing.revision + 1
    statement = insert(IT).values(sku=sku, revision=revision, **values)
    row = (
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[IT.c.sku],
                set_={k: statement.excluded[k] for k in [*values, "revision"]}
                | {"updated_at": datetime.now().astimezone()},
            ).returning(*IT.c)
        )
    ).one()
    driver_id = f"item:{sku}:{revision}"
    summary = "item master created" if existing is None else "item master updated"
    await record_driver_values(uow, driver_id, ITEM_UPDATED, subject=sku, skus=[sku], summary=summary)
    await recompute(uow, {sku}, [driver_id], settings)
    return dict(row._mapping), existing is None


async def replan_all(uow: UnitOfWork, settings: PlanningSettings, *, driver_id: str, summary: str) -> RecomputeResult:
    """Re-plan every SKU with an item at once (the vectorised core), e.g. when a new ISO week began."""
    await lock_all(uow)
    await record_driver_values(uow, driver_id, REPLANNED, subject=None, skus=[], summary=summary)
    return await recompute(uow, None, [driver_id], settings)


# ---------------------------------------------------------------- queries kept from the first version


async def list_drivers(uow: UnitOfWork, *, sku: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(D).order_by(D.c.received_at.desc(), D.c.event_id).limit(limit)
    if sku is not None:
        query = query.where(D.c.skus.contains([sku]))
    return [dict(row._mapping) for row in (await uow.session.execute(query)).all()]


async def get_known_promotion(uow: UnitOfWork, promotion_id: str) -> dict[str, Any] | None:
    row = (await uow.session.execute(select(P).where(P.c.promotion_id == promotion_id))).first()
    return dict(row._mapping) if row else None
