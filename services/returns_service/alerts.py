"""Sales alerts: one open alert per (type, subject); every change is recorded once and fanned out to the
sales-alerts topic (outbox), the SSE change log and webhook deliveries, all in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, String, any_, cast, func, insert, literal, select, tuple_, update

from services.returns_service import tables
from services.returns_service.domain import (
    AlertType,
    CapacityConflictFinding,
    CriticalComplaintFinding,
    DecisionKind,
    Finding,
    OpenAlert,
    ReturnSurgeFinding,
    decide_alert,
)
from services.returns_service.schemas import AlertRead
from services.returns_service.stream import CHANGES_CHANNEL
from services.returns_service.webhooks import store as webhook_store
from shared.db import UnitOfWork
from shared.events import EventType, SalesAlertData
from shared.outbox import advisory_lock_key

A = tables.alerts
C = tables.alert_changes

OPEN = "open"
RESOLVED = "resolved"


def alert_read(row: Row[Any]) -> AlertRead:
    return AlertRead.model_validate(
        {
            "id": row.alert_id,
            "alert_id": row.alert_id,
            "type": row.type,
            "status": row.status,
            "priority": row.priority,
            "sku": row.sku,
            "account_ids": list(row.account_ids),
            "accounts": row.accounts,
            "details": row.details,
            "revision": row.revision,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def _describe(finding: Finding) -> dict[str, Any]:
    """The alert's sku, accounts and details as the CRM reads them."""
    if isinstance(finding, ReturnSurgeFinding):
        affected = [
            {"account_id": a.account_id, "name": a.name, "segment": a.segment} for a in finding.affected_accounts
        ]
        details: dict[str, Any] = {
            "rate": finding.rate,
            "quality_units": finding.quality_units,
            "quality_return_count": finding.quality_return_count,
            "shipped_units": finding.shipped_units,
            "window_start": finding.window_start.isoformat(),
            "window_end": finding.window_end.isoformat(),
            "top_reasons": [
                {"reason": r.reason.value, "units": r.units, "returns": r.returns} for r in finding.top_reasons
            ],
            "affected_accounts": [
                {**acc, "units": a.units, "returns": a.returns}
                for acc, a in zip(affected, finding.affected_accounts, strict=True)
            ],
            "active_promotions": [
                {
                    "promotion_id": p.promotion_id,
                    "name": p.name,
                    "starts_on": p.starts_on.isoformat(),
                    "ends_on": p.ends_on.isoformat(),
                    "account_segments": sorted(p.account_segments),
                }
                for p in finding.active_promotions
            ],
        }
        return {"sku": finding.sku, "accounts": affected, "details": details}
    if isinstance(finding, CriticalComplaintFinding):
        account = {"account_id": finding.account_id, "name": finding.account_name, "segment": finding.segment}
        details = {
            "complaint_id": finding.complaint_id,
            "category": finding.category.value,
            "severity": finding.severity.value,
            "description": finding.description,
            "received_on": finding.received_on.isoformat(),
        }
        return {"sku": finding.sku, "accounts": [account], "details": details}
    assert isinstance(finding, CapacityConflictFinding)
    details = {
        "promotion_ids": list(finding.promotion_ids),
        "weeks": [{"week_start": w.week_start.isoformat(), "shortfall": w.shortfall} for w in finding.weeks],
        "total_shortfall": finding.total_shortfall,
        "target_segments": list(finding.target_segments),
    }
    return {"sku": finding.sku, "accounts": [], "details": details}


CHANGE_LOG_LOCK = advisory_lock_key("returns-alert-changes")


async def _lock_subject(uow: UnitOfWork, alert_type: AlertType, subject: str) -> None:
    # Serializes concurrent evidence for one (type, subject) so two requests never both raise.
    key = advisory_lock_key(f"returns-alert:{alert_type.value}:{subject}")
    await uow.session.execute(select(func.pg_advisory_xact_lock(key)))


async def _open_alert(uow: UnitOfWork, alert_type: AlertType, subject: str) -> Row[Any] | None:
    query = select(A).where(A.c.type == alert_type.value, A.c.subject == subject, A.c.status == OPEN)
    return (await uow.session.execute(query.with_for_update())).first()


async def apply_finding(
    uow: UnitOfWork,
    alert_type: AlertType,
    subject: str,
    finding: Finding | None,
    *,
    extra: dict[str, Any],
    new_subject: bool = False,
) -> AlertRead | None:
    """Raise, update or leave the open alert of (type, subject); returns the alert when it changed.

    `new_subject` says the subject was created in this very transaction (a new complaint): no alert can be
    open for it and no other transaction can reach it, so the lock and the lookup are skipped.
    """
    current = None
    if not new_subject:
        await _lock_subject(uow, alert_type, subject)
        current = await _open_alert(uow, alert_type, subject)
    open_ref = OpenAlert(current.alert_id, alert_type, subject, current.fingerprint) if current else None
    decision = decide_alert(open_ref, finding)
    if decision.kind is DecisionKind.NONE or finding is None or decision.fingerprint is None:
        return None
    described = _describe(finding)
    values = {
        "priority": finding.priority.value,
        "sku": described["sku"],
        "account_ids": [a["account_id"] for a in described["accounts"]],
        "accounts": described["accounts"],
        "details": {**described["details"], **extra},
        "fingerprint": decision.fingerprint,
    }
    now = datetime.now(UTC)
    if decision.kind is DecisionKind.RAISE:
        row = (
            await uow.session.execute(
                insert(A)
                .values(
                    alert_id=f"alrt_{uuid.uuid4().hex}",
                    type=alert_type.value,
                    subject=subject,
                    status=OPEN,
                    revision=1,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                .returning(*A.c)
            )
        ).one()
        return await _record_change(uow, row, EventType.SALES_ALERT_RAISED)
    row = (
        await uow.session.execute(
            update(A)
            .where(A.c.alert_id == decision.alert_id)
            .values(revision=A.c.revision + 1, updated_at=now, **values)
            .returning(*A.c)
        )
    ).one()
    return await _record_change(uow, row, EventType.SALES_ALERT_UPDATED)


async def resolve(uow: UnitOfWork, alert_type: AlertType, subject: str, *, extra: dict[str, Any]) -> AlertRead | None:
    """Close the open alert of (type, subject) because its cause went away; None when none was open."""
    await _lock_subject(uow, alert_type, subject)
    current = await _open_alert(uow, alert_type, subject)
    if current is None:
        return None
    row = (
        await uow.session.execute(
            update(A)
            .where(A.c.alert_id == current.alert_id)
            .values(
                status=RESOLVED,
                revision=A.c.revision + 1,
                updated_at=datetime.now(UTC),
                details={**current.details, **extra},
            )
            .returning(*A.c)
        )
    ).one()
    return await _record_change(uow, row, EventType.SALES_ALERT_UPDATED)


async def _record_change(uow: UnitOfWork, row: Row[Any], event_type: EventType) -> AlertRead:
    alert = alert_read(row)
    payload = alert.model_dump(mode="json")
    # Change-log numbers must commit in the order they are taken, or a stream resuming after a higher number
    # would skip a lower one that committed later: the lock, held to the commit, puts writers in line.
    await uow.session.execute(select(func.pg_advisory_xact_lock(CHANGE_LOG_LOCK)))
    # The NOTIFY rides on the insert (PostgreSQL delivers it at commit): one round trip fewer per change.
    seq, _ = (
        await uow.session.execute(
            insert(C)
            .values(
                alert_id=alert.alert_id,
                revision=alert.revision,
                event_type=event_type.value,
                type=alert.type.value,
                sku=alert.sku,
                payload=payload,
            )
            .returning(C.c.seq, func.pg_notify(CHANGES_CHANNEL, cast(C.c.seq, String)))
        )
    ).one()
    uow.publish(
        event_type,
        key=alert.sku or alert.alert_id,
        subject=alert.alert_id,
        data=SalesAlertData.model_validate(payload),
    )
    await webhook_store.enqueue_deliveries(uow.session, alert=payload, change_seq=seq)
    return alert


async def get_alert(uow: UnitOfWork, alert_id: str) -> AlertRead | None:
    row = (await uow.session.execute(select(A).where(A.c.alert_id == alert_id))).first()
    return alert_read(row) if row else None


async def list_alerts(
    uow: UnitOfWork,
    *,
    since: datetime | None,
    sku: str | None,
    account_id: str | None,
    alert_type: AlertType | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[AlertRead]:
    """Alerts by last change, oldest first; `after` is the (updated_at, alert_id) of the previous page."""
    query = select(A).order_by(A.c.updated_at, A.c.alert_id).limit(limit)
    if since is not None:
        query = query.where(A.c.updated_at >= since)
    if sku is not None:
        query = query.where(A.c.sku == sku)
    if account_id is not None:
        query = query.where(any_(A.c.account_ids) == account_id)
    if alert_type is not None:
        query = query.where(A.c.type == alert_type.value)
    if status is not None:
        query = query.where(A.c.status == status)
    if after is not None:
        query = query.where(tuple_(A.c.updated_at, A.c.alert_id) > tuple_(literal(after[0]), literal(after[1])))
    return [alert_read(row) for row in (await uow.session.execute(query)).all()]
