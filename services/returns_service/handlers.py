"""Returns commands and incoming events: load through the store, apply the alert rules, save, record events.
Handlers take the store and the unit of work's publisher as parameters; only the boundary commits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from services.returns_service.domain import (
    QUALITY_REASONS,
    AcknowledgeAlert,
    AlertAction,
    AlertContent,
    AlertType,
    Complaint,
    DecisionKind,
    Finding,
    OpenAlert,
    Priority,
    PromiseDriver,
    PromiseLine,
    PromiseMark,
    PromotionRef,
    PutAccount,
    RecordComplaint,
    RecordReturn,
    ResolveAlert,
    Transition,
    change_kind,
    change_message,
    decide_action,
    decide_alert,
    decide_promise_step,
    describe,
    evaluate_capacity_conflict,
    evaluate_complaint,
    evaluate_promise_at_risk,
    evaluate_return_surge,
    may_be_critical,
    state_of,
)
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import (
    AccountWrite,
    AlertRecord,
    AlertWriter,
    AnnouncingComplaints,
    AnnouncingReturns,
    ChangeRecorder,
    DayVolume,
    EvaluatedReturns,
    NewChange,
    Recorded,
    Store,
    SurgeStore,
)
from shared.errors import conflict, not_found
from shared.events import (
    AccountChangedData,
    CapacityConflictData,
    ComplaintData,
    EventType,
    OrderVolumeReportedData,
    PromiseData,
    PromotionData,
    ReturnData,
    SalesAlertData,
)
from shared.outbox import EncodedEvent
from shared.ports import Publisher


@dataclass(frozen=True)
class Written:
    """A create's outcome: the stored record and whether this call created it (False: an identical retry)."""

    record: Recorded
    created: bool


# ---------------------------------------------------------------- alerts


def alert_document(alert: AlertRecord) -> dict[str, Any]:
    """The alert as every channel shows it (the topic's data, the SSE and webhook `data`), as JSON values."""
    return _document_of(alert_data(alert))


def _document_of(data: SalesAlertData) -> dict[str, Any]:
    return {"id": data.alert_id, **data.model_dump(mode="json")}


def alert_data(alert: AlertRecord) -> SalesAlertData:
    """The alert as the topic's event data."""
    return SalesAlertData.model_validate(
        {
            "alert_id": alert.alert_id,
            "type": alert.type,
            "status": alert.status,
            "priority": alert.priority,
            "sku": alert.sku,
            "account_ids": list(alert.account_ids),
            "accounts": alert.accounts,
            "details": alert.details,
            "revision": alert.revision,
            "created_at": alert.created_at,
            "updated_at": alert.updated_at,
            "state": state_of(alert.status, alert.acknowledged_at).value,
            "acknowledged_by": alert.acknowledged_by,
            "acknowledged_at": alert.acknowledged_at,
            "resolved_by": alert.resolved_by,
            "resolved_at": alert.resolved_at,
        }
    )


def _publish_change(publisher: Publisher, alert: AlertRecord, event_type: EventType) -> NewChange:
    """Publish the alert's change on the topic and shape it for the change log and the webhooks."""
    data = alert_data(alert)
    document = _document_of(data)
    now = datetime.now(UTC)
    message = change_message(document, change_kind(event_type.value), now)
    event = publisher.publish(event_type, key=alert.sku or alert.alert_id, subject=alert.alert_id, data=data)
    # The webhook deliveries continue the trace the alert's event carries.
    return NewChange(document, event_type.value, dict(message), now, event.traceparent)


async def _announce(
    store: ChangeRecorder, publisher: Publisher, alert: AlertRecord, event_type: EventType
) -> AlertRecord:
    """Record the change once for every channel: the change log (SSE), the webhook deliveries and the topic."""
    await store.record_change(_publish_change(publisher, alert, event_type))
    return alert


async def raise_alert(
    store: AlertWriter,
    publisher: Publisher,
    alert_type: AlertType,
    subject: str,
    content: AlertContent,
    *,
    priority: Priority,
    fingerprint: str,
) -> AlertRecord:
    """Raise a new alert and announce its first change on every channel (the alert, the change and its webhook
    deliveries are stored together)."""
    alert = store.new_alert(alert_type, subject, content, priority=priority, fingerprint=fingerprint)
    await store.raise_alert(alert, _publish_change(publisher, alert, EventType.SALES_ALERT_RAISED))
    return alert


async def revise_alert(
    store: AlertWriter,
    publisher: Publisher,
    current: AlertRecord,
    content: AlertContent,
    *,
    priority: Priority,
    fingerprint: str,
) -> AlertRecord:
    """Update the open alert `current` (locked by this transaction) with new evidence, as its next revision, and
    announce the change on every channel (the revision, the change and its webhook deliveries are stored
    together)."""
    alert = store.revised_alert(current, content, priority=priority, fingerprint=fingerprint)
    await store.revise_alert(alert, _publish_change(publisher, alert, EventType.SALES_ALERT_UPDATED))
    return alert


# The cost-to-serve handlers announce their alerts through the same channels.
announce = _announce


async def apply_finding(
    store: AlertWriter,
    publisher: Publisher,
    alert_type: AlertType,
    subject: str,
    finding: Finding | None,
    *,
    extra: Mapping[str, Any],
    new_subject: bool = False,
    honour_resolution: bool = True,
) -> AlertRecord | None:
    """Raise, update or leave the open alert of (type, subject); returns the alert when it changed.

    `new_subject` says the subject was created in this very transaction (a new complaint): no alert can be
    open for it and no other transaction can reach it, so the lock and the lookup are skipped.
    `honour_resolution` False: a person's resolution of the subject's last alert does not hold back the same
    evidence (the cause went away and came back since).
    """
    current = None if new_subject else await store.open_alert_for(alert_type, subject)
    open_ref = OpenAlert(current.alert_id, alert_type, subject, current.fingerprint) if current else None
    resolved = None
    if current is None and not new_subject and honour_resolution and finding is not None:
        resolved = await store.resolved_fingerprint(alert_type, subject)
    decision = decide_alert(open_ref, finding, resolved_fingerprint=resolved)
    if decision.kind is DecisionKind.NONE or finding is None or decision.fingerprint is None:
        return None
    described = describe(finding)
    content = replace(described, details={**described.details, **extra})
    if decision.kind is DecisionKind.RAISE:
        return await raise_alert(
            store, publisher, alert_type, subject, content, priority=finding.priority, fingerprint=decision.fingerprint
        )
    assert current is not None and decision.alert_id == current.alert_id
    return await revise_alert(
        store, publisher, current, content, priority=finding.priority, fingerprint=decision.fingerprint
    )


async def close_alert(
    store: Store, publisher: Publisher, alert_type: AlertType, subject: str, *, extra: Mapping[str, Any]
) -> AlertRecord | None:
    """Resolve the open alert of (type, subject) because its cause went away; None when none was open."""
    current = await store.open_alert_for(alert_type, subject)
    if current is None:
        return None
    closed = await store.close_alert(current.alert_id, {**current.details, **extra})
    return await _announce(store, publisher, closed, EventType.SALES_ALERT_UPDATED)


async def act_on_alert(store: Store, publisher: Publisher, command: AcknowledgeAlert | ResolveAlert) -> AlertRecord:
    """A person acknowledges or resolves an alert: who and when are recorded, and the change is announced like
    any other. Repeating the action changes nothing; acknowledging a resolved alert is a conflict."""
    alert = await store.alert_for_update(command.alert_id)
    if alert is None:
        raise not_found("alert", command.alert_id)
    state = state_of(alert.status, alert.acknowledged_at)
    transition = decide_action(state, command.action)
    if transition is Transition.REFUSED:
        raise conflict(
            f"alert '{alert.alert_id}' is {state.value}; it cannot be {command.action.value}d",
            alert_id=alert.alert_id,
            state=state.value,
        )
    if transition is Transition.ALREADY:
        return alert
    if command.action is AlertAction.ACKNOWLEDGE:
        changed = await store.acknowledge_alert(alert.alert_id, by=command.by)
    else:
        changed = await store.close_alert(alert.alert_id, alert.details, by=command.by)
    return await _announce(store, publisher, changed, EventType.SALES_ALERT_UPDATED)


# ---------------------------------------------------------------- returns and complaints


def return_evaluated(command: RecordReturn) -> bool:
    """Whether a return may change an alert: only one about quality counts towards its SKU's surge. Any other is
    stored and announced alone (`record_return_alone`)."""
    return command.reason in QUALITY_REASONS


def return_recorded_data(command: RecordReturn) -> ReturnData:
    """The data of a return's `return.recorded` event: the request as recorded."""
    return ReturnData.model_validate(command.body)


async def record_return_alone(store: AnnouncingReturns, command: RecordReturn, event: EncodedEvent) -> Written:
    """Store a return no alert depends on (`return_evaluated` False) with its `return.recorded` event, which is
    written only when this call creates the return: one statement, a transaction of its own. An identical retry
    changes nothing."""
    assert not return_evaluated(command)
    stored, created = await store.create_return_announced(command, event)
    return Written(stored, created=created)


async def record_quality_return(
    store: EvaluatedReturns, publisher: Publisher, command: RecordReturn, event: EncodedEvent, settings: ReturnsSettings
) -> Written:
    """Store a return that counts towards its SKU's surge (`return_evaluated`) with its `return.recorded` event
    (written only when this call creates the return; the store reads the surge rule's inputs with it) and
    re-evaluate the surge. An identical retry changes nothing."""
    assert return_evaluated(command)
    today = settings.today()
    stored, created = await store.create_return_evaluated(command, event, settings.surge_rule().window(today))
    if not created:
        return Written(stored, created=False)
    await evaluate_surge(store, publisher, command.sku, settings, today=today)
    return Written(stored, created=True)


async def evaluate_surge(
    store: SurgeStore, publisher: Publisher, sku: str, settings: ReturnsSettings, *, today: date | None = None
) -> AlertRecord | None:
    """Re-run the return-surge rule for `sku` on today's window (`today`: the day already taken as today) and raise
    or update its alert. The SKU's surge lock is taken before the rule's inputs are read: a quality return
    committed meanwhile is among them, and its revision of the alert is never overwritten by figures without it."""
    rule = settings.surge_rule()
    today = today or settings.today()
    start, end = rule.window(today)
    await store.lock_subject(AlertType.RETURN_SURGE, sku)
    inputs = await store.surge_inputs(sku, start, end)
    if len(inputs.returns) < rule.min_returns:
        return None
    finding = evaluate_return_surge(
        sku, inputs.returns, inputs.shipped_units, inputs.accounts, inputs.promotions, today, rule
    )
    thresholds = {
        "window_days": rule.window_days,
        "rate_threshold": rule.rate_threshold,
        "min_returns": rule.min_returns,
    }
    return await apply_finding(store, publisher, AlertType.RETURN_SURGE, sku, finding, extra={"thresholds": thresholds})


def complaint_evaluated(command: RecordComplaint) -> bool:
    """Whether a complaint may raise an alert (`domain.may_be_critical`): its store then runs in a transaction that
    the alert's raise joins. Any other is stored and announced by one statement alone."""
    return may_be_critical(command.severity)


def complaint_recorded_data(command: RecordComplaint) -> ComplaintData:
    """The data of a complaint's `complaint.recorded` event: the request as recorded."""
    return ComplaintData.model_validate(command.body)


async def record_complaint(
    store: AnnouncingComplaints, publisher: Publisher, command: RecordComplaint, event: EncodedEvent
) -> Written:
    """Store a complaint with its `complaint.recorded` event (written only when this call creates the complaint; the
    store reads the complaint's account with it) and raise its alert when it is critical (only a complaint
    `complaint_evaluated` can be). An identical retry changes nothing."""
    stored, created = await store.create_complaint_announced(command, event)
    if not created:
        return Written(stored, created=False)
    account = stored.account  # read with the insert
    complaint = Complaint(
        command.complaint_id,
        command.account_id,
        command.sku,
        command.category,
        command.severity,
        command.description,
        command.received_on,
    )
    finding = evaluate_complaint(complaint, account)
    if finding is not None:
        assert complaint_evaluated(command)
        await apply_finding(
            store, publisher, AlertType.CRITICAL_COMPLAINT, command.complaint_id, finding, extra={}, new_subject=True
        )
    return Written(stored, created=True)


async def put_account(store: Store, publisher: Publisher, command: PutAccount) -> AccountWrite:
    """Create or replace an account. Every real change publishes `salesops.account.changed.v1` at the account's
    new version (keyed by account id), so the other services keep their copy of its tier; an identical put
    changes and publishes nothing."""
    written = await store.put_account(command)
    if written.changed:
        account = written.account
        publisher.publish(
            EventType.ACCOUNT_CHANGED,
            key=account.account_id,
            subject=account.account_id,
            data=AccountChangedData.model_validate(
                {
                    "account_id": account.account_id,
                    "name": account.name,
                    "segment": account.segment,
                    "owner_email": account.owner_email,
                    "version": account.version,
                    "changed_at": account.updated_at,
                }
            ),
        )
    return written


# ---------------------------------------------------------------- incoming events


async def record_order_volumes(
    store: Store, publisher: Publisher, data: OrderVolumeReportedData, settings: ReturnsSettings
) -> None:
    """Store the new daily totals (replacing earlier figures) and re-evaluate the SKU's surge."""
    days = [DayVolume(d.day, d.units_ordered, d.units_shipped, d.units_backordered) for d in data.days]
    await store.save_volumes(data.sku, days)
    await evaluate_surge(store, publisher, data.sku, settings)


async def record_promotion(
    store: Store, publisher: Publisher, data: PromotionData, settings: ReturnsSettings, *, cancelled: bool
) -> None:
    """Keep the local copy current (never overwritten by an older version) and refresh surge alerts."""
    status = "cancelled" if cancelled else data.status
    promotion = PromotionRef(
        promotion_id=data.promotion_id,
        skus=frozenset(item.sku for item in data.items),
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        name=data.name,
        account_segments=frozenset(data.account_segments),
        cancelled=status == "cancelled",
    )
    await store.save_promotion(promotion, status=status, version=data.version)
    for sku in sorted(promotion.skus):
        await evaluate_surge(store, publisher, sku, settings)


async def record_capacity_conflict(store: Store, publisher: Publisher, data: CapacityConflictData) -> None:
    """Planning's shortfall becomes (or updates) the SKU's capacity-conflict alert; no short week resolves it."""
    finding = evaluate_capacity_conflict(
        data.sku,
        data.promotion_ids,
        {w.week_start: w.shortfall for w in data.weeks},
        await store.promotions_of(None),
    )
    extra = {"plan_version": data.plan_version}
    if finding is None:
        await close_alert(store, publisher, AlertType.CAPACITY_CONFLICT, data.sku, extra=extra)
        return
    await apply_finding(store, publisher, AlertType.CAPACITY_CONFLICT, data.sku, finding, extra=extra)


async def resolve_capacity_conflict(store: Store, publisher: Publisher, data: CapacityConflictData) -> None:
    await close_alert(
        store, publisher, AlertType.CAPACITY_CONFLICT, data.sku, extra={"plan_version": data.plan_version}
    )


# ---------------------------------------------------------------- promises at risk


def promise_line(data: PromiseData) -> PromiseLine:
    return PromiseLine(
        order_id=data.order_id,
        line_id=data.line_id,
        account_id=data.account_id,
        tier=data.tier,
        sku=data.sku,
        quantity=data.quantity,
        quantity_short=data.quantity_short,
        promised_on=data.promised_on,
        earliest_on=data.earliest_on,
        plan_version=data.plan_version,
        drivers=tuple(PromiseDriver(d.event_id, d.type, d.summary) for d in data.drivers),
    )


async def record_promise_at_risk(store: Store, publisher: Publisher, data: PromiseData) -> AlertRecord | None:
    """A revision leaves the line short on its promised date: raise its promise-at-risk alert for the account's
    owner, or update the open one when what it says changed. An event older than the line's last one applied
    changes nothing."""
    line = promise_line(data)
    await store.open_alert_for(AlertType.PROMISE_AT_RISK, line.subject)  # the line's lock, held to the commit
    mark = PromiseMark(line.sku, line.plan_version, at_risk=True)
    step = decide_promise_step(await store.promise_mark(line.order_id, line.line_id), mark)
    if not step.apply:
        return None
    await store.save_promise_mark(line.order_id, line.line_id, mark)
    account = (await store.accounts_by_id([line.account_id])).get(line.account_id)
    finding = evaluate_promise_at_risk(line, account)
    return await apply_finding(
        store,
        publisher,
        AlertType.PROMISE_AT_RISK,
        line.subject,
        finding,
        extra={},
        honour_resolution=not step.new_break,
    )


async def record_promise_restored(store: Store, publisher: Publisher, data: PromiseData) -> AlertRecord | None:
    """The line is covered again (or no longer open): its open promise-at-risk alert is resolved, with the
    revision that restored it. An event older than the line's last one applied changes nothing."""
    line = promise_line(data)
    await store.open_alert_for(AlertType.PROMISE_AT_RISK, line.subject)
    mark = PromiseMark(line.sku, line.plan_version, at_risk=False)
    if not decide_promise_step(await store.promise_mark(line.order_id, line.line_id), mark).apply:
        return None
    await store.save_promise_mark(line.order_id, line.line_id, mark)
    restored = {
        "plan_version": line.plan_version,
        "promised_on": line.promised_on.isoformat(),
        "earliest_on": line.earliest_on.isoformat() if line.earliest_on else None,
        "drivers": [{"event_id": d.event_id, "type": d.type, "summary": d.summary} for d in line.drivers],
    }
    return await close_alert(store, publisher, AlertType.PROMISE_AT_RISK, line.subject, extra={"restored": restored})
