"""Planning's event and command handlers: keep its copy of the inputs current, record every driver, and
re-plan exactly the SKUs an event touches (the re-plan itself is `recompute.py`).

Handlers take the store and the unit of work's publisher as parameters; only the boundary commits. Event
handlers note the SKUs they touched in the unit of work's context, and `finish_replans` re-plans them once
for all the events of a consumed batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date

import structlog

from services.planning_service.domain import Item
from services.planning_service.domain.allocation import AllocationPolicy
from services.planning_service.domain.orders import UNKNOWN_ACCOUNT_TIER
from services.planning_service.recompute import RecomputeResult, recompute
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import (
    AccountRecord,
    ActivePromotions,
    DailyVolume,
    Driver,
    OrderLineRecord,
    OrderRecord,
    ReturnRecord,
    SavedOrder,
    SpikeReport,
    Store,
    StoredItem,
    StoredPolicy,
    promotion_skus,
)
from shared.events import (
    AccountChangedData,
    CloudEvent,
    EventType,
    InvalidEvent,
    LaunchData,
    OrderSpikeData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
    SalesOrderData,
    ShipmentRecordedData,
)
from shared.ports import Publisher

log = structlog.get_logger("salesops.planning")

ITEM_UPDATED = "planning.item.updated"
REPLANNED = "planning.replanned"
# Key in the unit of work's context: SKU -> driver ids of the events that touched it.
REPLAN = "planning.replan"


def promotion_summary(event_type: str, promotion: PromotionData) -> str:
    uplifts = ", ".join(f"{item.uplift_pct:+g}% on {item.sku}" for item in promotion.items)
    if event_type == EventType.PROMOTION_CANCELLED:
        return f"{promotion.promotion_id} cancelled ({uplifts} withdrawn)"
    if event_type == EventType.PROMOTION_REVISED:
        return f"{promotion.promotion_id} revised: {uplifts}"
    return f"{promotion.promotion_id} {uplifts}"


def _driver(event: CloudEvent, skus: set[str], summary: str) -> Driver:
    """The event as a driver of the plans of its SKUs."""
    return Driver(event.id, event.type, event.subject, sorted(skus), summary, event.time)


async def _record_driver(store: Store, event: CloudEvent, skus: set[str], summary: str) -> None:
    await store.record_driver(_driver(event, skus, summary))


def _replan_later(publisher: Publisher, skus: set[str], driver_id: str) -> None:
    """Note the SKUs an event touched; `finish_replans` re-plans them once for all the unit of work's events."""
    pending: dict[str, list[str]] = publisher.context.setdefault(REPLAN, {})
    for sku in skus:
        pending.setdefault(sku, []).append(driver_id)


async def finish_replans(store: Store, publisher: Publisher, settings: PlanningSettings) -> None:
    pending: dict[str, list[str]] | None = publisher.context.pop(REPLAN, None)
    if pending:
        await store.lock_skus(pending)
        await recompute(store, publisher, set(pending), pending, settings)


# ---------------------------------------------------------------- promotions and launches


async def on_promotion_event(store: Store, publisher: Publisher, event: CloudEvent, promotion: PromotionData) -> None:
    """Keep the newest version of the promotion and re-plan every SKU it touches now or touched before.

    An older version arriving late changes nothing; a cancellation wins over a plain event of the same
    version, so a late `planned` cannot revive a cancelled promotion.
    """
    if promotion.ends_on < promotion.starts_on:
        raise InvalidEvent("invalid-data", "data.ends_on: is before starts_on")
    status = "cancelled" if event.type == EventType.PROMOTION_CANCELLED else promotion.status
    previous = await store.promotion_body(promotion.promotion_id)
    await store.save_promotion(
        promotion.promotion_id,
        version=promotion.version,
        status=status,
        body=promotion.model_dump(mode="json"),
        event_id=event.id,
    )
    skus = promotion_skus(promotion)
    if previous is not None:  # SKUs an earlier version touched lose its effect when a revision drops them
        skus |= promotion_skus(PromotionData.model_validate(previous))
    await _record_driver(store, event, skus, promotion_summary(event.type, promotion))
    _replan_later(publisher, skus, event.id)


async def on_launch_planned(store: Store, publisher: Publisher, event: CloudEvent, launch: LaunchData) -> None:
    await store.save_launch(launch.launch_id, sku=launch.sku, body=launch.model_dump(mode="json"), event_id=event.id)
    summary = (
        f"launch {launch.launch_id}: {launch.sku} from {launch.launch_on} following {launch.reference_sku}"
        f" at {launch.scale_pct:g}% (ramp {launch.ramp_weeks} weeks)"
    )
    await _record_driver(store, event, {launch.sku}, summary)
    _replan_later(publisher, {launch.sku}, event.id)


# ---------------------------------------------------------------- order volumes and spikes


async def on_order_volumes(
    store: Store, publisher: Publisher, event: CloudEvent, volumes: OrderVolumeReportedData
) -> None:
    """Fulfillment's new daily totals of a SKU replace the stored days (corrections never add up); a report
    of weeks a fitted baseline model already saw is noted, so the model is checked and fitted again."""
    await on_order_volumes_together(store, publisher, [(event, volumes)])


async def on_order_volumes_together(
    store: Store, publisher: Publisher, reports: Sequence[tuple[CloudEvent, OrderVolumeReportedData]]
) -> None:
    """`on_order_volumes` for several reports at once, in the order they were read: each kind of write is one
    statement for all of them, and the result is the same as one report after the other (the last report of a
    (sku, day) wins, each report is noted and logged as a driver of its own)."""
    days: dict[tuple[str, date], DailyVolume] = {}
    earliest: list[tuple[str, date]] = []
    drivers: list[Driver] = []
    for event, volumes in reports:
        latest = {d.day: d for d in volumes.days}  # the last line of a day wins if a producer repeats it
        for d in latest.values():
            days[(volumes.sku, d.day)] = DailyVolume(
                volumes.sku, d.day, d.units_ordered, d.units_shipped, d.units_backordered
            )
        reported = sorted(latest)
        # days before a fitted model's origin change the history it saw: the fitter checks whether materially
        earliest.append((volumes.sku, reported[0]))
        span = f"{reported[0]}" if len(reported) == 1 else f"{reported[0]}..{reported[-1]}"
        units = sum(d.units_ordered for d in latest.values())
        summary = f"order volumes of {volumes.sku} for {span}: {units} units ordered"
        drivers.append(_driver(event, {volumes.sku}, summary))
        _replan_later(publisher, {volumes.sku}, event.id)
    await store.save_daily_volumes(list(days.values()))
    await store.note_history_changes(earliest)
    await store.record_drivers(drivers)


def _spike_summary(spike: OrderSpikeData, retracted: bool) -> str:
    if retracted:
        return f"order spike of {spike.sku} on {spike.day} retracted"
    if spike.explained_by_promotion_id:
        return (
            f"order spike of {spike.sku} on {spike.day} ({spike.units:g} units) explained by"
            f" {spike.explained_by_promotion_id}: no sensing"
        )
    return f"unexplained order spike of {spike.sku} on {spike.day}: {spike.units:g} units vs {spike.baseline:g} a day"


async def on_order_spike(store: Store, publisher: Publisher, event: CloudEvent, spike: OrderSpikeData) -> None:
    """The newest event about a (sku, day) spike wins; only unexplained, unretracted spikes drive sensing."""
    retracted = event.type == EventType.ORDER_SPIKE_RETRACTED or spike.status == "retracted"
    before = await store.spike_state(spike.sku, spike.day)
    drove_sensing = before is not None and before.status == "detected" and not before.explained_by_promotion_id
    drives_sensing = not retracted and not spike.explained_by_promotion_id
    await store.save_spike(
        SpikeReport(
            sku=spike.sku,
            day=spike.day,
            units=spike.units,
            baseline=spike.baseline,
            explained_by_promotion_id=spike.explained_by_promotion_id,
            retracted=retracted,
            event_id=event.id,
            event_time=event.time,
        )
    )
    await _record_driver(store, event, {spike.sku}, _spike_summary(spike, retracted))
    if drove_sensing or drives_sensing:  # otherwise the plan cannot change: sensing ignores this spike
        _replan_later(publisher, {spike.sku}, event.id)


# ---------------------------------------------------------------- returns


async def on_return_recorded(store: Store, publisher: Publisher, event: CloudEvent, returned: ReturnData) -> None:
    """Resellable returns are receipts; returns resolved by replacement add to gross requirements."""
    await on_returns_recorded_together(store, publisher, [(event, returned)])


async def on_returns_recorded_together(
    store: Store, publisher: Publisher, returns: Sequence[tuple[CloudEvent, ReturnData]]
) -> None:
    """`on_return_recorded` for several returns at once, in the order they were read: the returns in one
    statement (the first record of a return id is kept), the drivers in another."""
    records: list[ReturnRecord] = []
    drivers: list[Driver] = []
    for event, returned in returns:
        receipt = returned.condition == "resellable"
        replacement = returned.resolution == "replacement"
        if not (receipt or replacement):
            continue  # neither stock back nor extra demand: nothing for the plan
        records.append(
            ReturnRecord(
                return_id=returned.return_id,
                sku=returned.sku,
                quantity=returned.quantity,
                condition=returned.condition,
                resolution=returned.resolution,
                returned_on=returned.returned_on,
            )
        )
        effects = [e for e, on in (("back in stock", receipt), ("replacement shipped", replacement)) if on]
        summary = f"return {returned.return_id}: {returned.quantity} x {returned.sku} ({', '.join(effects)})"
        drivers.append(_driver(event, {returned.sku}, summary))
        _replan_later(publisher, {returned.sku}, event.id)
    await store.save_returns(records)
    await store.record_drivers(drivers)


# ---------------------------------------------------------------- sales orders and accounts

# Planning's own limits on ids and quantities: a longer SKU can have no item, a larger quantity is no order.
MAX_ID_LENGTH = 100
MAX_ORDER_UNITS = 1e12
SUMMARY_LINES = 5


def _tier_of(account_segment: str | None, order: SalesOrderData) -> str:
    """The tier planning gives an order's lines: its own copy of the account, else the tier the order
    event stamped, else the tier of an unknown account."""
    return account_segment or order.tier or UNKNOWN_ACCOUNT_TIER.value


def order_record(event: CloudEvent, order: SalesOrderData) -> OrderRecord:
    """The order as planning keeps it; data it could never store is poison (dead-lettered, never retried)."""
    if len(order.order_id) > MAX_ID_LENGTH or len(order.account_id) > MAX_ID_LENGTH:
        field = "order_id" if len(order.order_id) > MAX_ID_LENGTH else "account_id"
        raise InvalidEvent("invalid-data", f"data.{field}: longer than {MAX_ID_LENGTH} characters")
    seen: set[str] = set()
    lines = []
    for index, line in enumerate(order.lines):
        where = f"data.lines.{index}"
        if line.line_id in seen:
            raise InvalidEvent("invalid-data", f"{where}.line_id: {line.line_id!r} appears twice in the order")
        seen.add(line.line_id)
        if len(line.line_id) > MAX_ID_LENGTH or len(line.sku) > MAX_ID_LENGTH:
            field = "line_id" if len(line.line_id) > MAX_ID_LENGTH else "sku"
            raise InvalidEvent("invalid-data", f"{where}.{field}: longer than {MAX_ID_LENGTH} characters")
        if max(line.quantity, line.shipped_quantity, line.open_quantity) > MAX_ORDER_UNITS:
            raise InvalidEvent("invalid-data", f"{where}.quantity: more than {MAX_ORDER_UNITS:g} units")
        open_quantity = 0 if order.status == "cancelled" else line.open_quantity
        lines.append(
            OrderLineRecord(
                line.line_id,
                line.sku,
                float(line.quantity),
                float(line.shipped_quantity),
                float(open_quantity),
                line.requested_on,
                line.promised_on,
            )
        )
    booked_at = order.booked_at if order.booked_at.tzinfo else order.booked_at.replace(tzinfo=UTC)
    return OrderRecord(
        order.order_id, order.account_id, order.tier, order.status, order.version, booked_at, event.id, tuple(lines)
    )


def _quantities(pairs: list[tuple[float, str]]) -> str:
    shown = ", ".join(f"{quantity:g} x {sku}" for quantity, sku in pairs[:SUMMARY_LINES])
    more = len(pairs) - SUMMARY_LINES
    return shown + (f" and {more} more lines" if more > 0 else "")


def order_summary(event_type: str, order: SalesOrderData, tier: str) -> str:
    """One line for the driver log, e.g. "SO-1001 booked 120 x SKU-1 for ACC-7 (strategic)"."""
    whom = f"for {order.account_id} ({tier})"
    if event_type == EventType.SALES_ORDER_CANCELLED or order.status == "cancelled":
        return f"{order.order_id} cancelled: {', '.join(dict.fromkeys(line.sku for line in order.lines))} {whom}"
    if isinstance(order, ShipmentRecordedData):
        shipped = _quantities([(line.quantity, line.sku) for line in order.shipment.lines])
        still_open = sum(line.open_quantity for line in order.lines)
        return f"{order.order_id} shipped {shipped} ({order.shipment.shipment_id}); {still_open:g} open {whom}"
    open_lines = _quantities([(line.open_quantity, line.sku) for line in order.lines])
    if event_type == EventType.SALES_ORDER_BOOKED:
        return f"{order.order_id} booked {open_lines} {whom}"
    return f"{order.order_id} changed: {open_lines} open {whom}"


async def on_sales_order(store: Store, publisher: Publisher, event: CloudEvent, order: SalesOrderData) -> None:
    """Keep the order's newest version (booked, changed, shipped or cancelled: each event carries the whole
    order); an older or repeated version changes nothing. Re-plans the SKUs its lines have and had."""
    record = order_record(event, order)
    saved = await store.save_order(record)
    if saved is None:
        log.info("order version not newer than the one kept; ignored", order_id=order.order_id, version=order.version)
        return
    driver = _order_driver(event, order, record, saved)
    await store.record_driver(driver)
    _replan_later(publisher, set(driver.skus), event.id)


async def on_sales_orders_together(
    store: Store, publisher: Publisher, orders: Sequence[tuple[CloudEvent, SalesOrderData]]
) -> None:
    """`on_sales_order` for several order events at once, in the order they were read: the orders and their
    lines in one statement, the drivers in another, with the result of one event after the other."""
    records = [order_record(event, order) for event, order in orders]
    drivers: list[Driver] = []
    for (event, order), record, saved in zip(orders, records, await store.save_orders(records), strict=True):
        if saved is None:
            log.info(
                "order version not newer than the one kept; ignored", order_id=order.order_id, version=order.version
            )
            continue
        driver = _order_driver(event, order, record, saved)
        drivers.append(driver)
        _replan_later(publisher, set(driver.skus), event.id)
    await store.record_drivers(drivers)


def _order_driver(event: CloudEvent, order: SalesOrderData, record: OrderRecord, saved: SavedOrder) -> Driver:
    skus = saved.skus_before | {line.sku for line in record.lines}
    summary = order_summary(event.type, order, _tier_of(saved.account_segment, order))
    return _driver(event, skus, summary)


async def on_account_changed(
    store: Store, publisher: Publisher, event: CloudEvent, account: AccountChangedData
) -> None:
    """Keep the account's newest version; a new tier re-judges the promises of its open lines (their
    priority changed), which re-plans the SKUs of those lines."""
    if len(account.account_id) > MAX_ID_LENGTH:
        raise InvalidEvent("invalid-data", f"data.account_id: longer than {MAX_ID_LENGTH} characters")
    changed_at = account.changed_at if account.changed_at.tzinfo else account.changed_at.replace(tzinfo=UTC)
    saved = await store.save_account(
        AccountRecord(
            account.account_id,
            account.name,
            account.segment,
            account.owner_email,
            account.version,
            changed_at,
            event.id,
        )
    )
    if saved is None or saved.previous_segment == account.segment:
        return  # an older version, or no new tier: no promise moves
    skus = await store.open_skus_of_account(account.account_id)
    if not skus:
        return
    was = f"was {saved.previous_segment}" if saved.previous_segment else "new to planning"
    await _record_driver(store, event, skus, f"{account.account_id} is now {account.segment} ({was})")
    _replan_later(publisher, skus, event.id)


# ---------------------------------------------------------------- commands


async def put_allocation_policy(store: Store, policy: AllocationPolicy) -> StoredPolicy:
    """Replace the allocation policy. Promise checks and the ATP view read it; plans and booked promises do
    not depend on it (a booked promise is kept whoever's share it needs), so nothing is re-planned."""
    return await store.save_allocation_policy(policy)


async def put_item(
    store: Store, publisher: Publisher, item: Item, settings: PlanningSettings
) -> tuple[StoredItem, bool]:
    """Create or replace an item; a change is a revision driven by a synthetic `item:<sku>:<n>` driver.

    Returns the stored item and whether it was created.
    """
    await store.lock_skus({item.sku})
    existing = await store.item(item.sku)
    if existing is not None and existing.item == item:
        return existing, False  # nothing changed: no revision
    revision = 1 if existing is None else existing.revision + 1
    stored = await store.save_item(item, revision)
    driver_id = f"item:{item.sku}:{revision}"
    summary = "item master created" if existing is None else "item master updated"
    await store.record_driver(Driver(driver_id, ITEM_UPDATED, item.sku, [item.sku], summary))
    await recompute(store, publisher, {item.sku}, [driver_id], settings)
    return stored, existing is None


# A unit of work as the full re-plan's chunks need it: the boundary opens one per chunk and commits it when the
# block ends without an exception.
Units = Callable[[], AbstractAsyncContextManager[tuple[Store, Publisher]]]


@dataclass
class ReplanTotals:
    """What a full re-plan did, counted (not listed: a re-plan of every SKU keeps nothing per SKU)."""

    planned: int = 0
    revised: int = 0
    conflicts_detected: int = 0
    conflicts_resolved: int = 0
    chunks: int = 0

    def add_chunk(self, result: RecomputeResult | None) -> None:
        """Count a chunk of a full re-plan (None: the last listing, which found no SKU left)."""
        if result is not None:
            self.add(result)

    def add(self, result: RecomputeResult) -> None:
        self.planned += result.planned
        self.revised += len(result.revised)
        self.conflicts_detected += len(result.conflicts_detected)
        self.conflicts_resolved += len(result.conflicts_resolved)
        self.chunks += 1


# A full re-plan works on this many chunks at once, each in its own unit of work: while one chunk's statements
# run on the server, the next chunk is planned in the process.
REPLAN_CHUNKS_IN_FLIGHT = 2


async def replan_all(units: Units, settings: PlanningSettings, *, driver_id: str, summary: str) -> ReplanTotals:
    """Re-plan every SKU with an item (the vectorised core), e.g. when a new ISO week began: a chunk of
    `planning_replan_chunk_skus` SKUs at a time, in SKU order, each in its own unit of work under its SKUs' locks.
    Memory stays that of `REPLAN_CHUNKS_IN_FLIGHT` chunks whatever the number of SKUs, and an event's re-plan waits
    for at most the chunk that holds its SKU. The next chunk starts once the last one has listed its SKUs, so their
    database work and their planning overlap. Each SKU is re-planned from its inputs when its chunk runs; one
    re-planned meanwhile by an event is simply re-planned again (nothing changes, nothing is stored)."""
    async with units() as (store, _):
        await store.record_driver(Driver(driver_id, REPLANNED, None, [], summary))
    totals = ReplanTotals()
    # the promotions, decoded once for every chunk; each chunk checks under its SKUs' locks that they are current
    promotions = ActivePromotions()
    in_flight: list[asyncio.Task[RecomputeResult | None]] = []
    after: str | None = None
    try:
        while True:
            listed: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            chunk = _replan_chunk(units, settings, driver_id, after, listed, promotions)
            in_flight.append(asyncio.create_task(chunk))
            after = await listed
            if after is None:  # no SKU left, or the chunk failed (its task says how)
                break
            if len(in_flight) >= REPLAN_CHUNKS_IN_FLIGHT:
                totals.add_chunk(await in_flight.pop(0))
        while in_flight:
            totals.add_chunk(await in_flight.pop(0))
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
    return totals


async def _replan_chunk(
    units: Units,
    settings: PlanningSettings,
    driver_id: str,
    after: str | None,
    listed: asyncio.Future[str | None],
    promotions: ActivePromotions | None = None,
) -> RecomputeResult | None:
    """One chunk of `replan_all`: its SKUs after `after` (the last of them handed to `listed` at once, None when
    there are none), locked and re-planned in one unit of work; None when no SKU was left. `promotions`: the
    replan's, read again when they changed since an earlier chunk read them."""
    try:
        async with units() as (store, publisher):
            skus = await store.skus_to_replan(after=after, limit=settings.planning_replan_chunk_skus)
            listed.set_result(skus[-1] if skus else None)
            if not skus:
                return None
            await store.lock_skus(skus)
            return await recompute(store, publisher, skus, [driver_id], settings, promotions=promotions)
    finally:
        if not listed.done():
            listed.set_result(None)


async def roll_if_new_week(units: Units, settings: PlanningSettings) -> bool:
    """Re-plan everything if the current ISO week differs from the one the plans were last rolled to.

    The very first check only records the week: there are no plans from an earlier week to roll. The week is
    recorded once every chunk is re-planned, so a re-plan cut short is done again at the next check.
    """
    current = settings.horizon_start()
    async with units() as (store, _):
        rolled_to = await store.rolled_to()
        if rolled_to is None:
            await store.set_rolled_to(current)
            return False
    if rolled_to >= current:
        return False
    result = await replan_all(
        units,
        settings,
        driver_id=f"week:{current.isoformat()}",
        summary=f"week of {current.isoformat()} began: the horizon moved on and every SKU was re-planned",
    )
    async with units() as (store, _):
        await store.set_rolled_to(current)
    log.info("new week: re-planned", week=current.isoformat(), planned=result.planned, revised=result.revised)
    return True
