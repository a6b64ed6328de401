"""All of the returns service's SQL: what the desk records (`records`), sales alerts and their change log
(`alerts`), the change log as the streams read it (`changes`), the newest promise event per order line
(`promises`), webhook endpoints and deliveries (`webhooks`) and the cost-to-serve ledger (`costing`).

Handlers see the store through the `Store` protocol (unit tests pass an in-memory fake); the read side uses
the same `SqlStore`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.returns_service.costing import AccountMonth, CostRates, LedgerFacts, OrderFact, ShipmentFact
from services.returns_service.domain import (
    Account,
    AlertContent,
    AlertType,
    Priority,
    PromiseMark,
    PromotionRef,
    PutAccount,
    RecordComplaint,
    RecordReturn,
)
from services.returns_service.store.alerts import AlertFilter, AlertRecord, AlertsStore, EventBuffer, NewChange
from services.returns_service.store.changes import AlertChange, ChangeLog
from services.returns_service.store.complaints import ComplaintsByDriver, complaint_transaction, stored_complaint
from services.returns_service.store.costing import CostingStore, EvaluationInputs, StoredRates
from services.returns_service.store.promises import PromisesStore
from services.returns_service.store.quality import QualityReturns, quality_return
from services.returns_service.store.records import (
    AccountRecord,
    AccountWrite,
    DayVolume,
    Recorded,
    RecordsStore,
    ReturnsByDriver,
    SurgeInputs,
    stored_return,
)
from services.returns_service.store.recounts import RecountsByDriver, claim_recounts_by_driver, recount_transaction
from shared.outbox import EncodedEvent

__all__ = [
    "AccountRecord",
    "AccountWrite",
    "AlertChange",
    "AlertFilter",
    "AlertRecord",
    "AlertWriter",
    "AnnouncingComplaints",
    "AnnouncingReturns",
    "ChangeLog",
    "ChangeRecorder",
    "ComplaintsByDriver",
    "CostStore",
    "DayVolume",
    "EvaluatedReturns",
    "EvaluationInputs",
    "EventBuffer",
    "GroupRecountStore",
    "NewChange",
    "QualityReturns",
    "Recorded",
    "RecountStore",
    "RecountsByDriver",
    "ReturnsByDriver",
    "SqlStore",
    "Store",
    "StoredRates",
    "SurgeInputs",
    "SurgeStore",
    "claim_recounts_by_driver",
    "complaint_transaction",
    "quality_return",
    "recount_transaction",
    "stored_complaint",
    "stored_return",
]


class AnnouncingReturns(Protocol):
    """Stores a return with its event in one statement (`ReturnsByDriver`)."""

    async def create_return_announced(self, command: RecordReturn, event: EncodedEvent) -> tuple[Recorded, bool]: ...


class AlertWriter(Protocol):
    """What raising or revising the open alert of a subject reads and writes (`handlers.apply_finding`)."""

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None: ...

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None: ...

    def new_alert(
        self, alert_type: AlertType, subject: str, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord: ...

    async def raise_alert(self, alert: AlertRecord, change: NewChange) -> int: ...

    def revised_alert(
        self, current: AlertRecord, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord: ...

    async def revise_alert(self, alert: AlertRecord, change: NewChange) -> int: ...


class AnnouncingComplaints(AlertWriter, Protocol):
    """Stores a complaint with its event and its account's read in one statement, and raises its alert
    (`ComplaintsByDriver`)."""

    async def create_complaint_announced(
        self, command: RecordComplaint, event: EncodedEvent
    ) -> tuple[Recorded, bool]: ...


class ChangeRecorder(Protocol):
    """Records a change of an alert already written (`handlers.announce`)."""

    async def record_change(self, change: NewChange) -> int: ...


class SurgeStore(AlertWriter, Protocol):
    """What re-evaluating a SKU's return surge reads and writes (`handlers.evaluate_surge`)."""

    async def lock_subject(self, alert_type: AlertType, subject: str) -> None: ...

    async def surge_inputs(self, sku: str, start: date, end: date) -> SurgeInputs: ...


class EvaluatedReturns(SurgeStore, Protocol):
    """Stores a quality return with its event and reads its SKU's surge inputs with it (`QualityReturns`)."""

    async def create_return_evaluated(
        self, command: RecordReturn, event: EncodedEvent, window: tuple[date, date]
    ) -> tuple[Recorded, bool]: ...


class Store(SurgeStore, Protocol):
    """What the returns handlers read and write."""

    async def put_account(self, command: PutAccount) -> AccountWrite: ...

    async def accounts_by_id(self, account_ids: Iterable[str]) -> dict[str, Account]: ...

    async def save_volumes(self, sku: str, days: Sequence[DayVolume]) -> None: ...

    async def shipped_units(self, sku: str, start: date, end: date) -> float: ...

    async def save_promotion(self, promotion: PromotionRef, *, status: str, version: int) -> None: ...

    async def promotions_of(self, sku: str | None) -> list[PromotionRef]: ...

    async def promise_mark(self, order_id: str, line_id: str) -> PromiseMark | None: ...

    async def save_promise_mark(self, order_id: str, line_id: str, mark: PromiseMark) -> None: ...

    async def close_alert(self, alert_id: str, details: Mapping[str, Any], *, by: str | None = None) -> AlertRecord: ...

    async def acknowledge_alert(self, alert_id: str, *, by: str) -> AlertRecord: ...

    async def alert_for_update(self, alert_id: str) -> AlertRecord | None: ...

    async def record_change(self, change: NewChange) -> int: ...


class RecountStore(AlertWriter, Protocol):
    """What recounting an account's ledger and evaluating its cost alerts read and write
    (`cost_handlers.recount_marked`, `recount_account`, `evaluate_account`): `SqlStore`, or `RecountsByDriver` in
    its transaction."""

    async def lock_account_costs(self, account_id: str) -> None: ...

    async def begin_recount(self, account_id: str) -> int | None: ...

    async def finish_recount(self, account_id: str, due_seq: int) -> bool: ...

    async def account_facts(self, account_id: str) -> LedgerFacts: ...

    async def replace_ledger(self, account_id: str, months: Sequence[AccountMonth], as_of: date) -> None: ...

    async def evaluation_inputs(
        self, account_id: str, *, first: date, last: date, mapping_first: date, mapping_last: date
    ) -> EvaluationInputs: ...

    async def begin_evaluation(
        self, account_id: str, alert_types: Sequence[AlertType], at: datetime
    ) -> dict[str, AlertRecord]: ...

    async def close_alert(self, alert_id: str, details: Mapping[str, Any], *, by: str | None = None) -> AlertRecord: ...

    async def record_change(self, change: NewChange) -> int: ...


class GroupRecountStore(RecountStore, Protocol):
    """Recounting several marked accounts in one transaction (`cost_handlers.recount_marked_together`):
    `RecountsByDriver`."""

    cost_locks: set[str]

    async def try_begin_recount(self, account_id: str) -> tuple[bool, int | None]: ...

    async def finish_recounts(self, marks: Sequence[tuple[str, int]]) -> None: ...


class CostStore(Store, RecountStore, Protocol):
    """What the cost-to-serve handlers read and write besides alerts and accounts."""

    async def save_order(self, order: OrderFact, *, status: str) -> bool: ...

    async def save_shipment(self, shipment: ShipmentFact) -> bool: ...

    async def account_of_order(self, order_id: str) -> str | None: ...

    async def ledger_months(
        self, *, account_id: str | None, first: date | None, last: date | None
    ) -> list[AccountMonth]: ...

    async def revenue_between(self, first: date, last: date) -> float: ...

    async def stored_rates(self) -> StoredRates: ...

    async def put_rates(self, rates: CostRates, *, by: str | None) -> StoredRates: ...

    async def accounts_to_refresh(self, today: date, rates_changed_at: datetime | None, limit: int) -> list[str]: ...

    async def claim_recounts(self, *, limit: int, lease_s: float) -> list[str]: ...


class SqlStore(RecordsStore, AlertsStore, PromisesStore, CostingStore):
    """The store on one unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.cost_locks = set()
        self.subject_locks = set()
