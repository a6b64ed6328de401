"""All of the planning service's SQL. Handlers see it through the `Store` protocol (tests pass an in-memory
fake); the read side uses the same `SqlStore`.

- `locks.py`      the advisory locks that serialise re-plans
- `inputs.py`     the planning core's inputs, and the stored forms of plans and promotions
- `signals.py`    planning's copy of other services' events, the item master and the driver log
- `plans.py`      plans, revisions, forecast snapshots, open conflicts, the week rolled to
- `reads.py`      what the API reads
- `customers.py`  planning's copy of sales orders, their lines and accounts; open lines with their tier
- `promising.py`  promises at risk as last published, the allocation policy, what a promise check reads
- `models.py`     fitted baseline models: which SKUs need a fit, what a fit reads, storing the models
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service.domain import CapacityConflict, Item
from services.planning_service.domain.allocation import AllocationPolicy
from services.planning_service.domain.promises import AtRiskLine
from services.planning_service.store.customers import (
    AccountRecord,
    CustomerSql,
    OrderLineRecord,
    OrderRecord,
    SavedAccount,
    SavedOrder,
)
from services.planning_service.store.inputs import (
    ActivePromotions,
    InputSql,
    PlanningInputs,
    StoredPlan,
    exceptions_json,
    launch_from_data,
    plan_from_json,
    plan_weeks_json,
    promotion_from_data,
    promotion_skus,
)
from services.planning_service.store.locks import LockSql
from services.planning_service.store.models import FittedModel, FittingInputs, ModelSql, StoredModel
from services.planning_service.store.plans import PlanRevision, PlanSql, RevisionEvent
from services.planning_service.store.promising import PromisingSql, PromisingView, StoredPolicy
from services.planning_service.store.reads import CurrentPlan, OpenConflict, PlanSummary, ReadSql, Revision
from services.planning_service.store.signals import (
    DailyVolume,
    Driver,
    ReturnRecord,
    SignalSql,
    SpikeReport,
    SpikeState,
    StoredItem,
)
from shared.outbox import EncodedEvent

__all__ = [
    "AccountRecord",
    "ActivePromotions",
    "CurrentPlan",
    "DailyVolume",
    "Driver",
    "FittedModel",
    "FittingInputs",
    "OpenConflict",
    "OrderLineRecord",
    "OrderRecord",
    "PlanRevision",
    "PlanSummary",
    "PlanningInputs",
    "PromisingView",
    "ReturnRecord",
    "Revision",
    "RevisionEvent",
    "SavedAccount",
    "SavedOrder",
    "SpikeReport",
    "SpikeState",
    "SqlStore",
    "Store",
    "StoredItem",
    "StoredModel",
    "StoredPlan",
    "StoredPolicy",
    "exceptions_json",
    "launch_from_data",
    "plan_from_json",
    "plan_weeks_json",
    "promotion_from_data",
    "promotion_skus",
]


class Store(Protocol):
    """What the planning handlers read and write."""

    async def lock_skus(self, skus: Collection[str]) -> None: ...

    async def skus_to_replan(self, *, after: str | None, limit: int) -> list[str]: ...

    async def promotion_body(self, promotion_id: str) -> dict[str, Any] | None: ...

    async def save_promotion(
        self, promotion_id: str, *, version: int, status: str, body: Mapping[str, Any], event_id: str
    ) -> None: ...

    async def save_launch(self, launch_id: str, *, sku: str, body: Mapping[str, Any], event_id: str) -> None: ...

    async def save_daily_volumes(self, days: Sequence[DailyVolume]) -> None: ...

    async def note_history_changes(self, reports: Sequence[tuple[str, date]]) -> None: ...

    async def spike_state(self, sku: str, day: date) -> SpikeState | None: ...

    async def save_spike(self, report: SpikeReport) -> None: ...

    async def save_return(self, returned: ReturnRecord) -> None: ...

    async def save_returns(self, returned: Sequence[ReturnRecord]) -> None: ...

    async def record_driver(self, driver: Driver) -> None: ...

    async def record_drivers(self, drivers: Sequence[Driver]) -> None: ...

    async def item(self, sku: str) -> StoredItem | None: ...

    async def save_item(self, item: Item, revision: int) -> StoredItem: ...

    async def load_inputs(
        self, skus: Collection[str] | None, horizon_start: date, *, promotions: ActivePromotions | None = None
    ) -> PlanningInputs: ...

    async def earlier_drivers(self, skus: Collection[str]) -> dict[str, list[str]]: ...

    async def save_revisions(
        self, revisions: Sequence[PlanRevision], *, horizon_start: date, generated_at: datetime
    ) -> None: ...

    async def save_encoded_events(self, events: Sequence[EncodedEvent], *, max_bytes: int | None) -> None: ...

    async def save_revision_events(self, events: Sequence[RevisionEvent]) -> None: ...

    async def save_exceptions(self, exceptions: Mapping[str, list[dict[str, Any]]]) -> None: ...

    async def snapshot_forecasts(self, week_start: date, forecasts: Mapping[str, float]) -> None: ...

    async def open_conflicts(self, skus: Collection[str]) -> dict[str, CapacityConflict]: ...

    async def save_conflict(self, conflict: CapacityConflict, *, plan_version: int, detected_at: datetime) -> None: ...

    async def delete_conflict(self, sku: str) -> None: ...

    async def rolled_to(self) -> date | None: ...

    async def set_rolled_to(self, week_start: date) -> None: ...

    # ---- customers and promising

    async def save_order(self, order: OrderRecord) -> SavedOrder | None: ...

    async def save_orders(self, orders: Sequence[OrderRecord]) -> list[SavedOrder | None]: ...

    async def save_account(self, account: AccountRecord) -> SavedAccount | None: ...

    async def open_skus_of_account(self, account_id: str) -> set[str]: ...

    async def promises_at_risk(self, skus: Collection[str] | None) -> dict[str, list[AtRiskLine]]: ...

    async def save_promises_at_risk(
        self, reviewed: Mapping[str, Sequence[AtRiskLine]], *, plan_versions: Mapping[str, int]
    ) -> None: ...

    async def drivers_by_id(self, event_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]: ...

    async def save_allocation_policy(self, policy: AllocationPolicy) -> StoredPolicy: ...


class SqlStore(ModelSql, LockSql, InputSql, SignalSql, PlanSql, ReadSql, CustomerSql, PromisingSql):
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def end_read(self) -> None:
        """End a read-only transaction early, so its connection is not held while the caller computes."""
        await self.session.rollback()
