"""The planning service's store in dictionaries: the same answers as `SqlStore` for what handlers ask."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.planning_service.domain import CapacityConflict, Item, Spike
from services.planning_service.domain import SkuInputs as Inputs
from services.planning_service.domain.allocation import AllocationPolicy
from services.planning_service.domain.orders import UNKNOWN_ACCOUNT_TIER, OrderLine, Tier
from services.planning_service.domain.promises import AtRiskLine
from services.planning_service.store import (
    AccountRecord,
    ActivePromotions,
    DailyVolume,
    Driver,
    OrderRecord,
    PlanningInputs,
    PlanRevision,
    ReturnRecord,
    RevisionEvent,
    SavedAccount,
    SavedOrder,
    SpikeReport,
    SpikeState,
    StoredItem,
    StoredPlan,
    StoredPolicy,
    launch_from_data,
    promotion_from_data,
    promotion_skus,
)
from shared.events import LaunchData, PromotionData
from shared.outbox import EncodedEvent


@dataclass
class StoredPromotion:
    version: int
    status: str
    body: dict[str, Any]
    last_event_id: str


@dataclass
class FakePlanningStore:
    items: dict[str, StoredItem] = field(default_factory=dict)
    promotions: dict[str, StoredPromotion] = field(default_factory=dict)
    launches: dict[str, dict[str, Any]] = field(default_factory=dict)
    daily_volumes: dict[tuple[str, date], Mapping[str, Any]] = field(default_factory=dict)
    history_changes: list[tuple[str, date]] = field(default_factory=list)
    spikes: dict[tuple[str, date], SpikeReport] = field(default_factory=dict)
    returns: dict[str, ReturnRecord] = field(default_factory=dict)
    drivers: dict[str, Driver] = field(default_factory=dict)
    plans: dict[str, StoredPlan] = field(default_factory=dict)
    revisions: list[PlanRevision] = field(default_factory=list)
    snapshots: dict[tuple[str, date], float] = field(default_factory=dict)
    conflicts: dict[str, tuple[CapacityConflict, int]] = field(default_factory=dict)
    week_rolled_to: date | None = None
    locks: list[object] = field(default_factory=list)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    at_risk: dict[tuple[str, str], tuple[AtRiskLine, int]] = field(default_factory=dict)
    policy: StoredPolicy | None = None
    outbox: list[EncodedEvent] = field(default_factory=list)

    async def lock_skus(self, skus: Collection[str]) -> None:
        self.locks.append(sorted(skus))

    async def skus_to_replan(self, *, after: str | None, limit: int) -> list[str]:
        return sorted(sku for sku in self.items if after is None or sku > after)[:limit]

    async def promotion_body(self, promotion_id: str) -> dict[str, Any] | None:
        stored = self.promotions.get(promotion_id)
        return dict(stored.body) if stored else None

    async def save_promotion(
        self, promotion_id: str, *, version: int, status: str, body: Mapping[str, Any], event_id: str
    ) -> None:
        stored = self.promotions.get(promotion_id)
        if stored is None or stored.version < version or (stored.version == version and stored.status != "cancelled"):
            self.promotions[promotion_id] = StoredPromotion(version, status, dict(body), event_id)

    async def save_launch(self, launch_id: str, *, sku: str, body: Mapping[str, Any], event_id: str) -> None:
        self.launches[launch_id] = dict(body)

    async def save_daily_volumes(self, days: Sequence[DailyVolume]) -> None:
        for day in days:
            self.daily_volumes[(day.sku, day.day)] = asdict(day)

    async def note_history_changes(self, reports: Sequence[tuple[str, date]]) -> None:
        self.history_changes.extend(reports)

    async def spike_state(self, sku: str, day: date) -> SpikeState | None:
        stored = self.spikes.get((sku, day))
        if stored is None:
            return None
        return SpikeState("retracted" if stored.retracted else "detected", stored.explained_by_promotion_id)

    async def save_spike(self, report: SpikeReport) -> None:
        stored = self.spikes.get((report.sku, report.day))
        if (
            stored is None
            or stored.event_time is None
            or report.event_time is None
            or stored.event_time <= report.event_time
        ):
            self.spikes[(report.sku, report.day)] = report

    async def save_return(self, returned: ReturnRecord) -> None:
        self.returns.setdefault(returned.return_id, returned)

    async def save_returns(self, returned: Sequence[ReturnRecord]) -> None:
        for one in returned:
            self.returns.setdefault(one.return_id, one)

    async def record_driver(self, driver: Driver) -> None:
        self.drivers.setdefault(driver.event_id, driver)

    async def record_drivers(self, drivers: Sequence[Driver]) -> None:
        for driver in drivers:
            self.drivers.setdefault(driver.event_id, driver)

    async def item(self, sku: str) -> StoredItem | None:
        return self.items.get(sku)

    async def save_item(self, item: Item, revision: int) -> StoredItem:
        stored = StoredItem(item, revision, {**asdict(item), "revision": revision})
        self.items[item.sku] = stored
        return stored

    def _history(self, sku: str) -> dict[date, float]:
        weeks: dict[date, float] = defaultdict(float)
        for (volume_sku, day), figures in self.daily_volumes.items():
            if volume_sku == sku:
                weeks[day - timedelta(days=day.weekday())] += figures["units_ordered"]
        return dict(weeks)

    async def load_inputs(
        self, skus: Collection[str] | None, horizon_start: date, *, promotions: ActivePromotions | None = None
    ) -> PlanningInputs:
        planned = [s.item for sku, s in sorted(self.items.items()) if skus is None or sku in skus]
        result = PlanningInputs(stored={i.sku: self.plans[i.sku] for i in planned if i.sku in self.plans})
        for item in planned:
            previous = self.plans.get(item.sku)
            spikes = tuple(
                Spike(r.sku, r.day, r.units, r.baseline, r.explained_by_promotion_id is not None)
                for r in self.spikes.values()
                if r.sku == item.sku and not r.retracted
            )
            result.inputs.append(
                Inputs(
                    item=item,
                    history=self._history(item.sku),
                    spikes=spikes,
                    previous_mps={w.week_start: w.mps_quantity for w in previous.plan.weeks} if previous else None,
                    order_lines=tuple(self.open_lines(item.sku)),
                )
            )
        wanted = {i.sku for i in planned}
        for stored in self.promotions.values():
            promotion = promotion_from_data(PromotionData.model_validate(stored.body))
            if stored.status != "cancelled" and promotion_skus(promotion) & wanted:
                result.promotions.append(promotion)
        result.launches = [
            launch_from_data(LaunchData.model_validate(b)) for b in self.launches.values() if b["sku"] in wanted
        ]
        return result

    async def earlier_drivers(self, skus: Collection[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for driver in self.drivers.values():
            for sku in set(skus) & set(driver.skus):
                found.setdefault(sku, []).append(driver.event_id)
        return found

    async def save_revisions(
        self, revisions: Sequence[PlanRevision], *, horizon_start: date, generated_at: datetime
    ) -> None:
        for revision in revisions:
            self.revisions.append(revision)
            self.plans[revision.plan.sku] = StoredPlan(
                revision.plan.sku, revision.plan_version, revision.plan, revision.exceptions
            )

    async def save_encoded_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None:
        self.outbox.extend(events)

    async def save_revision_events(self, events: Sequence[RevisionEvent]) -> None:
        stored = {(r.plan.sku, r.plan_version): r.stored_changes for r in self.revisions}
        self.outbox.extend(
            EncodedEvent(e.event_id, e.event_type, e.topic, e.key, e.head + stored[e.sku, e.plan_version] + e.tail)
            for e in events
        )

    async def save_exceptions(self, exceptions: Mapping[str, list[dict[str, Any]]]) -> None:
        for sku, found in exceptions.items():
            stored = self.plans[sku]
            self.plans[sku] = StoredPlan(sku, stored.plan_version, stored.plan, found)

    async def snapshot_forecasts(self, week_start: date, forecasts: Mapping[str, float]) -> None:
        for sku, forecast in forecasts.items():
            self.snapshots.setdefault((sku, week_start), forecast)

    async def open_conflicts(self, skus: Collection[str]) -> dict[str, CapacityConflict]:
        return {sku: conflict for sku, (conflict, _) in self.conflicts.items() if sku in skus}

    async def save_conflict(self, conflict: CapacityConflict, *, plan_version: int, detected_at: datetime) -> None:
        self.conflicts[conflict.sku] = (conflict, plan_version)

    async def delete_conflict(self, sku: str) -> None:
        self.conflicts.pop(sku, None)

    async def rolled_to(self) -> date | None:
        return self.week_rolled_to

    async def set_rolled_to(self, week_start: date) -> None:
        self.week_rolled_to = week_start

    # ---- customers and promising

    def open_lines(self, sku: str | None = None) -> list[OrderLine]:
        """Open lines of uncancelled orders with their tier: the account's copy, the order's stamp, stable."""
        found = []
        for order in self.orders.values():
            account = self.accounts.get(order.account_id)
            tier = Tier(account.segment if account else order.tier or UNKNOWN_ACCOUNT_TIER.value)
            for line in order.lines:
                if order.status == "cancelled" or line.open_quantity <= 0 or (sku is not None and line.sku != sku):
                    continue
                found.append(
                    OrderLine(
                        order.order_id,
                        line.line_id,
                        order.account_id,
                        tier,
                        line.sku,
                        line.open_quantity,
                        line.promised_on,
                        order.booked_at,
                        order.version,
                    )
                )
        return found

    async def save_order(self, order: OrderRecord) -> SavedOrder | None:
        stored = self.orders.get(order.order_id)
        if stored is not None and stored.version >= order.version:
            return None
        self.orders[order.order_id] = order
        account = self.accounts.get(order.account_id)
        return SavedOrder(
            {line.sku for line in stored.lines} if stored else set(), account.segment if account else None
        )

    async def save_orders(self, orders: Sequence[OrderRecord]) -> list[SavedOrder | None]:
        return [await self.save_order(order) for order in orders]

    async def save_account(self, account: AccountRecord) -> SavedAccount | None:
        stored = self.accounts.get(account.account_id)
        if stored is not None and stored.version >= account.version:
            return None
        self.accounts[account.account_id] = account
        return SavedAccount(stored.segment if stored else None)

    async def open_skus_of_account(self, account_id: str) -> set[str]:
        return {line.sku for line in self.open_lines() if line.account_id == account_id}

    async def promises_at_risk(self, skus: Collection[str] | None) -> dict[str, list[AtRiskLine]]:
        found: dict[str, list[AtRiskLine]] = {}
        for key in sorted(self.at_risk):
            line, _ = self.at_risk[key]
            if skus is None or line.sku in skus:
                found.setdefault(line.sku, []).append(line)
        return found

    async def save_promises_at_risk(
        self, reviewed: Mapping[str, Sequence[AtRiskLine]], *, plan_versions: Mapping[str, int]
    ) -> None:
        self.at_risk = {key: kept for key, kept in self.at_risk.items() if kept[0].sku not in reviewed}
        for sku, lines in reviewed.items():
            for line in lines:
                self.at_risk[line.key] = (line, plan_versions[sku])

    async def drivers_by_id(self, event_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return {
            i: {"event_id": i, "event_type": self.drivers[i].event_type, "summary": self.drivers[i].summary}
            for i in event_ids
            if i in self.drivers
        }

    async def save_allocation_policy(self, policy: AllocationPolicy) -> StoredPolicy:
        revision = self.policy.revision + 1 if self.policy else 1
        self.policy = StoredPolicy(policy, revision, datetime.now().astimezone())
        return self.policy
