"""Read side of the returns API: returns, complaints, accounts and alerts as the API shows them, one or a page
at a time. Like every read model, these read through the store and only shape its records."""

from __future__ import annotations

from datetime import date, datetime

from services.returns_service.domain import Segment, state_of
from services.returns_service.schemas import AccountRead, AlertRead, ComplaintRead, ReturnRead
from services.returns_service.store import AccountRecord, AlertFilter, AlertRecord, Recorded, SqlStore


def return_read(stored: Recorded) -> ReturnRead:
    return ReturnRead.model_validate({**stored.body, "created_at": stored.created_at})


def complaint_read(stored: Recorded) -> ComplaintRead:
    return ComplaintRead.model_validate({**stored.body, "created_at": stored.created_at})


def account_read(account: AccountRecord) -> AccountRead:
    return AccountRead.model_validate(account, from_attributes=True)


def alert_read(alert: AlertRecord) -> AlertRead:
    return AlertRead.model_validate(
        {
            "id": alert.alert_id,
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
            "state": state_of(alert.status, alert.acknowledged_at),
            "acknowledged_by": alert.acknowledged_by,
            "acknowledged_at": alert.acknowledged_at,
            "resolved_by": alert.resolved_by,
            "resolved_at": alert.resolved_at,
        }
    )


async def get_return(store: SqlStore, return_id: str) -> ReturnRead | None:
    stored = await store.get_return(return_id)
    return return_read(stored) if stored else None


async def list_returns(
    store: SqlStore, *, sku: str | None, account_id: str | None, since: date | None, limit: int, after: str | None
) -> list[ReturnRead]:
    found = await store.list_returns(sku=sku, account_id=account_id, since=since, limit=limit, after=after)
    return [return_read(stored) for stored in found]


async def get_complaint(store: SqlStore, complaint_id: str) -> ComplaintRead | None:
    stored = await store.get_complaint(complaint_id)
    return complaint_read(stored) if stored else None


async def list_complaints(
    store: SqlStore, *, account_id: str | None, sku: str | None, limit: int, after: str | None
) -> list[ComplaintRead]:
    found = await store.list_complaints(account_id=account_id, sku=sku, limit=limit, after=after)
    return [complaint_read(stored) for stored in found]


async def get_account(store: SqlStore, account_id: str) -> AccountRead | None:
    account = await store.get_account(account_id)
    return account_read(account) if account else None


async def list_accounts(
    store: SqlStore, *, segment: Segment | None, limit: int, after: str | None
) -> list[AccountRead]:
    return [account_read(a) for a in await store.list_accounts(segment=segment, limit=limit, after=after)]


async def get_alert(store: SqlStore, alert_id: str) -> AlertRead | None:
    alert = await store.get_alert(alert_id)
    return alert_read(alert) if alert else None


async def list_alerts(
    store: SqlStore, where: AlertFilter, *, limit: int, after: tuple[datetime, str] | None
) -> list[AlertRead]:
    """Alerts by last change, oldest first; `after` is the (updated_at, alert_id) of the previous page."""
    return [alert_read(alert) for alert in await store.list_alerts(where, limit=limit, after=after)]
