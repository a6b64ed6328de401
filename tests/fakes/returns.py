"""The returns service's store in dictionaries, with a publisher that records events: the same answers as
`SqlStore` for what the handlers ask, so their decisions are tested without a database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from services.returns_service.domain import (
    QUALITY_REASONS,
    Account,
    AlertContent,
    AlertType,
    Priority,
    PromiseMark,
    PromotionRef,
    PutAccount,
    RecordComplaint,
    RecordReturn,
    ReturnRecord,
    Segment,
)
from services.returns_service.store import (
    AccountRecord,
    AccountWrite,
    AlertRecord,
    DayVolume,
    NewChange,
    Recorded,
    SurgeInputs,
)
from services.returns_service.store.alerts import new_alert, revised_alert
from shared.errors import conflict
from shared.events import CloudEvent, EventData, EventType, new_event
from shared.idempotency import fingerprint
from shared.outbox import EncodedEvent


@dataclass(frozen=True)
class Published:
    type: EventType
    key: str
    subject: str
    data: Any


@dataclass
class RecordingPublisher:
    """What a unit of work would have written to the outbox, in order."""

    events: list[Published] = field(default_factory=list)

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        self.events.append(Published(event_type, key, subject, data))
        return new_event(event_type, source="salesops/test", subject=subject, data=data)

    def types(self) -> list[EventType]:
        return [event.type for event in self.events]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeReturnsStore:
    returns: dict[str, tuple[RecordReturn, Recorded]] = field(default_factory=dict)
    complaints: dict[str, tuple[RecordComplaint, Recorded]] = field(default_factory=dict)
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    volumes: dict[tuple[str, date], DayVolume] = field(default_factory=dict)
    promotions: dict[str, tuple[PromotionRef, int]] = field(default_factory=dict)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    changes: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    change_traceparents: list[str | None] = field(default_factory=list)
    locked_subjects: list[tuple[AlertType, str]] = field(default_factory=list)
    # The events the store's statements wrote themselves (a return's `return.recorded`, a complaint's
    # `complaint.recorded`), in order.
    outbox: list[EncodedEvent] = field(default_factory=list)
    promise_marks: dict[tuple[str, str], PromiseMark] = field(default_factory=dict)

    # ------------------------------------------------------------ returns and complaints

    async def create_return_announced(self, command: RecordReturn, event: EncodedEvent) -> tuple[Recorded, bool]:
        """As `ReturnsByDriver`: the return with its event, written only when it is created."""
        stored, created = self._create(self.returns, command.return_id, command, "return", "return_id")
        if created:
            self.outbox.append(event)
        return stored, created

    async def create_return_evaluated(
        self, command: RecordReturn, event: EncodedEvent, window: tuple[date, date]
    ) -> tuple[Recorded, bool]:
        """As `QualityReturns` in its transaction (`quality_return`), whose first statement takes the SKU's surge
        lock: the return with its event, written only when it is created."""
        await self.lock_subject(AlertType.RETURN_SURGE, command.sku)
        return await self.create_return_announced(command, event)

    async def create_complaint_announced(self, command: RecordComplaint, event: EncodedEvent) -> tuple[Recorded, bool]:
        """As `ComplaintsByDriver`: the complaint with its event, written only when it is created, and its account."""
        stored, created = self._create(self.complaints, command.complaint_id, command, "complaint", "complaint_id")
        if not created:
            return stored, False
        self.outbox.append(event)
        account = (await self.accounts_by_id([command.account_id])).get(command.account_id)
        return replace(stored, account=account), True

    def _create(self, table: dict[str, Any], ident: str, command: Any, what: str, key: str) -> tuple[Recorded, bool]:
        if ident in table:
            stored_command, stored = table[ident]
            if fingerprint(stored_command.body) != fingerprint(command.body):
                raise conflict(f"{what} '{ident}' already exists with a different body", **{key: ident})
            return stored, False
        stored = Recorded(body=dict(command.body), created_at=_now())
        table[ident] = (command, stored)
        return stored, True

    def _quality_returns(self, sku: str, start: date, end: date) -> list[ReturnRecord]:
        return [
            ReturnRecord(c.return_id, c.sku, c.quantity, c.account_id, c.reason, c.condition, c.returned_on)
            for c, _ in self.returns.values()
            if c.sku == sku and start <= c.returned_on <= end and c.reason in QUALITY_REASONS
        ]

    async def surge_inputs(self, sku: str, start: date, end: date) -> SurgeInputs:
        # Read under the SKU's surge lock, as the statements after the lock see every earlier holder's commit.
        assert (AlertType.RETURN_SURGE, sku) in self.locked_subjects, f"the surge of '{sku}' read before its lock"
        records = self._quality_returns(sku, start, end)
        return SurgeInputs(
            records,
            await self.shipped_units(sku, start, end),
            await self.accounts_by_id(r.account_id for r in records),
            await self.promotions_of(sku),
        )

    # ------------------------------------------------------------ accounts, volumes, promotions

    async def put_account(self, command: PutAccount) -> AccountWrite:
        before = self.accounts.get(command.account_id)
        sent = (command.name, command.segment.value, command.owner_email)
        if before is not None and (before.name, before.segment, before.owner_email) == sent:
            return AccountWrite(before, created=False, changed=False)
        now = _now()
        self.accounts[command.account_id] = AccountRecord(
            account_id=command.account_id,
            name=command.name,
            segment=command.segment.value,
            owner_email=command.owner_email,
            created_at=before.created_at if before else now,
            updated_at=now,
            version=before.version + 1 if before else 1,
        )
        return AccountWrite(self.accounts[command.account_id], created=before is None, changed=True)

    async def accounts_by_id(self, account_ids: Iterable[str]) -> dict[str, Account]:
        return {
            a: Account(a, self.accounts[a].name, Segment(self.accounts[a].segment), self.accounts[a].owner_email)
            for a in set(account_ids)
            if a in self.accounts
        }

    async def save_volumes(self, sku: str, days: Sequence[DayVolume]) -> None:
        for day in days:
            self.volumes[(sku, day.day)] = day

    async def shipped_units(self, sku: str, start: date, end: date) -> float:
        return float(sum(v.units_shipped for (s, d), v in self.volumes.items() if s == sku and start <= d <= end))

    async def save_promotion(self, promotion: PromotionRef, *, status: str, version: int) -> None:
        current = self.promotions.get(promotion.promotion_id)
        if current is None or current[1] <= version:
            self.promotions[promotion.promotion_id] = (promotion, version)

    async def promotions_of(self, sku: str | None) -> list[PromotionRef]:
        return [p for p, _ in self.promotions.values() if sku is None or sku in p.skus]

    # ------------------------------------------------------------ promises

    async def promise_mark(self, order_id: str, line_id: str) -> PromiseMark | None:
        return self.promise_marks.get((order_id, line_id))

    async def save_promise_mark(self, order_id: str, line_id: str, mark: PromiseMark) -> None:
        self.promise_marks[(order_id, line_id)] = mark

    # ------------------------------------------------------------ alerts

    async def lock_subject(self, alert_type: AlertType, subject: str) -> None:
        if (alert_type, subject) not in self.locked_subjects:
            self.locked_subjects.append((alert_type, subject))

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        await self.lock_subject(alert_type, subject)
        return self._open(alert_type, subject)

    def _open(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        return next(
            (a for a in self.alerts.values() if (a.type, a.subject, a.status) == (alert_type.value, subject, "open")),
            None,
        )

    def new_alert(
        self, alert_type: AlertType, subject: str, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        return new_alert(alert_type, subject, content, priority=priority, fingerprint=fingerprint)

    async def raise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        if self._open(AlertType(alert.type), alert.subject) is not None:  # the unique index of open alerts
            raise AssertionError(f"a second open alert for {alert.type} {alert.subject}")
        self.alerts[alert.alert_id] = alert
        return await self.record_change(change)

    def revised_alert(
        self, current: AlertRecord, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        return revised_alert(current, content, priority=priority, fingerprint=fingerprint)

    async def revise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        stored = self.alerts[alert.alert_id]
        if stored.status != "open" or stored.revision != alert.revision - 1:  # the statement's guard
            raise AssertionError(f"alert {alert.alert_id} is no longer open at revision {alert.revision - 1}")
        self.alerts[alert.alert_id] = alert
        return await self.record_change(change)

    async def close_alert(self, alert_id: str, details: Mapping[str, Any], *, by: str | None = None) -> AlertRecord:
        alert, now = self.alerts[alert_id], _now()
        self.alerts[alert_id] = replace(
            alert,
            status="resolved",
            details=dict(details),
            revision=alert.revision + 1,
            updated_at=now,
            resolved_at=now,
            resolved_by=by,
        )
        return self.alerts[alert_id]

    async def acknowledge_alert(self, alert_id: str, *, by: str) -> AlertRecord:
        alert, now = self.alerts[alert_id], _now()
        self.alerts[alert_id] = replace(
            alert, revision=alert.revision + 1, updated_at=now, acknowledged_at=now, acknowledged_by=by
        )
        return self.alerts[alert_id]

    async def alert_for_update(self, alert_id: str) -> AlertRecord | None:
        return self.alerts.get(alert_id)

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None:
        of_subject = [a for a in self.alerts.values() if (a.type, a.subject) == (alert_type.value, subject)]
        latest = max(of_subject, key=lambda a: a.updated_at, default=None)
        return latest.fingerprint if latest is not None and latest.resolved_by is not None else None

    async def record_change(self, change: NewChange) -> int:
        seq = len(self.changes) + 1
        self.change_traceparents.append(change.traceparent)
        self.changes.append((seq, change.event_type, dict(change.document)))
        self.messages.append(dict(change.message))
        return seq
