"""HTTP API of the returns service: parse the request, run the handler, commit, answer."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.returns_service import alerts, handlers, stream, webhooks
from services.returns_service.domain import AlertType, Segment
from services.returns_service.schemas import (
    AccountList,
    AccountPut,
    AccountRead,
    AlertList,
    AlertRead,
    AttemptRead,
    ComplaintCreate,
    ComplaintList,
    ComplaintRead,
    DeliveryList,
    DeliveryRead,
    ReturnCreate,
    ReturnList,
    ReturnRead,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)
from services.returns_service.settings import ReturnsSettings
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.service import RuntimeDep, UnitOfWorkDep
from shared.types import DATE_RANGE, PlanDate, PlanDateTime

router = APIRouter(prefix="/v1")

# Callers must hold these scopes; aliases keep the signatures typed.
CanReadReturns = Annotated[ApiKey, Depends(require(Scope.RETURNS_READ))]
CanWriteReturns = Annotated[ApiKey, Depends(require(Scope.RETURNS_WRITE))]
CanReadAlerts = Annotated[ApiKey, Depends(require(Scope.ALERTS_READ))]
CanManageWebhooks = Annotated[ApiKey, Depends(require(Scope.WEBHOOKS_MANAGE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API key"},
    403: {"description": "missing scope"},
    422: {"description": "invalid request"},
}
CREATE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    200: {"description": "identical retry: the stored resource, nothing published"},
    409: {"description": "the id exists with a different body"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**PROBLEMS, 404: {"description": "unknown id"}}

IdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=100, description="the last id of the previous page")]


def _settings(request: Request) -> ReturnsSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ReturnsSettings)
    return settings


def _check_not_future(field: str, day: date, settings: ReturnsSettings) -> None:
    # One day of slack: the desk's local date may be ahead of the service's UTC date.
    if (day - settings.today()).days > 1:
        raise invalid(field, "must not be in the future")


# ---------------------------------------------------------------- returns


@router.post("/returns", status_code=201, response_model=ReturnRead, tags=["returns"], responses=CREATE_PROBLEMS)
async def record_return(
    body: ReturnCreate,
    uow: UnitOfWorkDep,
    request: Request,
    response: Response,
    _: CanWriteReturns,
) -> ReturnRead:
    settings = _settings(request)
    _check_not_future("returned_on", body.returned_on, settings)
    record, created = await handlers.record_return(uow, body, settings)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/returns/{record.return_id}"
    return record


@router.get("/returns", response_model=ReturnList, tags=["returns"], responses=PROBLEMS)
async def list_returns(
    uow: UnitOfWorkDep,
    _: CanReadReturns,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    account_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[PlanDate | None, Query(description=f"returned on or after this day ({DATE_RANGE})")] = None,
    limit: Limit = 100,
    after: After = None,
) -> ReturnList:
    return ReturnList(
        data=await handlers.list_returns(uow, sku=sku, account_id=account_id, since=since, limit=limit, after=after)
    )


@router.get("/returns/{return_id}", response_model=ReturnRead, tags=["returns"], responses=NOT_FOUND)
async def get_return(return_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> ReturnRead:
    found = await handlers.get_return(uow, return_id)
    if found is None:
        raise not_found("return", return_id)
    return found


# ---------------------------------------------------------------- complaints


@router.post(
    "/complaints",
    status_code=201,
    response_model=ComplaintRead,
    tags=["complaints"],
    responses=CREATE_PROBLEMS,
)
async def record_complaint(
    body: ComplaintCreate,
    uow: UnitOfWorkDep,
    request: Request,
    response: Response,
    _: CanWriteReturns,
) -> ComplaintRead:
    _check_not_future("received_on", body.received_on, _settings(request))
    complaint, created = await handlers.record_complaint(uow, body)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/complaints/{complaint.complaint_id}"
    return complaint


@router.get("/complaints", response_model=ComplaintList, tags=["complaints"], responses=PROBLEMS)
async def list_complaints(
    uow: UnitOfWorkDep,
    _: CanReadReturns,
    account_id: Annotated[str | None, Query(max_length=100)] = None,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
    after: After = None,
) -> ComplaintList:
    return ComplaintList(
        data=await handlers.list_complaints(uow, account_id=account_id, sku=sku, limit=limit, after=after)
    )


@router.get("/complaints/{complaint_id}", response_model=ComplaintRead, tags=["complaints"], responses=NOT_FOUND)
async def get_complaint(complaint_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> ComplaintRead:
    found = await handlers.get_complaint(uow, complaint_id)
    if found is None:
        raise not_found("complaint", complaint_id)
    return found


# ---------------------------------------------------------------- accounts


@router.put(
    "/accounts/{account_id}",
    response_model=AccountRead,
    tags=["accounts"],
    responses={**PROBLEMS, 201: {"description": "created", "model": AccountRead}},
)
async def put_account(
    account_id: IdPath,
    body: AccountPut,
    uow: UnitOfWorkDep,
    response: Response,
    _: CanWriteReturns,
) -> AccountRead:
    account, created = await handlers.put_account(uow, account_id, body)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return account


@router.get("/accounts", response_model=AccountList, tags=["accounts"], responses=PROBLEMS)
async def list_accounts(
    uow: UnitOfWorkDep,
    _: CanReadReturns,
    segment: Segment | None = None,
    limit: Limit = 100,
    after: After = None,
) -> AccountList:
    return AccountList(data=await handlers.list_accounts(uow, segment=segment, limit=limit, after=after))


@router.get("/accounts/{account_id}", response_model=AccountRead, tags=["accounts"], responses=NOT_FOUND)
async def get_account(account_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> AccountRead:
    found = await handlers.get_account(uow, account_id)
    if found is None:
        raise not_found("account", account_id)
    return found


# ---------------------------------------------------------------- alerts


def _encode_cursor(alert: AlertRead) -> str:
    raw = json.dumps([alert.updated_at.isoformat(), alert.alert_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, alert_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), str(alert_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise invalid("query.cursor", "not a cursor this API returned") from exc


@router.get("/alerts", response_model=AlertList, tags=["alerts"], responses=PROBLEMS)
async def list_alerts(
    uow: UnitOfWorkDep,
    _: CanReadAlerts,
    since: Annotated[
        PlanDateTime | None, Query(description=f"alerts changed at or after this time (its date within {DATE_RANGE})")
    ] = None,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    account_id: Annotated[str | None, Query(max_length=100)] = None,
    type: AlertType | None = None,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AlertList:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    page = await alerts.list_alerts(
        uow,
        since=since,
        sku=sku,
        account_id=account_id,
        alert_type=type,
        status=status,
        limit=limit,
        after=_decode_cursor(cursor) if cursor else None,
    )
    return AlertList(data=page, next_cursor=_encode_cursor(page[-1]) if len(page) == limit else None)


def _last_event_id(
    header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=30)] = None,
    last_event_id: Annotated[str | None, Query(max_length=30)] = None,
) -> int | None:
    value = header if header is not None else last_event_id
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise invalid("header.Last-Event-ID", "must be an event id this stream sent (an integer)")
    return int(value)


@router.get(
    "/alerts/stream",
    response_class=EventSourceResponse,
    tags=["alerts"],
    responses=PROBLEMS,
    summary="Server-Sent Events: one event per alert change, resumable with Last-Event-ID",
)
async def alert_stream(
    runtime: RuntimeDep,
    request: Request,
    _: CanReadAlerts,
    last_event_id: Annotated[int | None, Depends(_last_event_id)],
    sku: Annotated[str | None, Query(max_length=100)] = None,
    type: AlertType | None = None,
) -> AsyncIterator[ServerSentEvent]:
    async for event in stream.alert_events(
        runtime,
        _settings(request),
        last_event_id=last_event_id,
        sku=sku,
        alert_type=type.value if type else None,
    ):
        yield event


@router.get("/alerts/{alert_id}", response_model=AlertRead, tags=["alerts"], responses=NOT_FOUND)
async def get_alert(alert_id: IdPath, uow: UnitOfWorkDep, _: CanReadAlerts) -> AlertRead:
    found = await alerts.get_alert(uow, alert_id)
    if found is None:
        raise not_found("alert", alert_id)
    return found


# ---------------------------------------------------------------- webhooks


def _webhook_read(row: Any) -> WebhookRead:
    return WebhookRead(
        id=row.endpoint_id,
        url=row.url,
        event_types=list(row.event_types),
        status=row.status,
        consecutive_failures=row.consecutive_failures,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
    )


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    tags=["webhooks"],
    responses={**PROBLEMS, 422: {"description": "invalid or refused URL (SSRF guard)"}},
)
async def create_webhook(
    body: WebhookCreate, uow: UnitOfWorkDep, request: Request, key: CanManageWebhooks
) -> WebhookCreated:
    try:
        await webhooks.check_target(body.url, allow_private=_settings(request).webhook_allow_private_targets)
    except webhooks.TargetRefused as exc:
        raise invalid("url", str(exc)) from exc
    row, secret = await webhooks.create_endpoint(
        uow.session, url=body.url, event_types=body.event_types or [], created_by=key.name
    )
    await uow.commit()
    return WebhookCreated(**_webhook_read(row).model_dump(), secret=secret)


@router.get("/webhooks", response_model=WebhookList, tags=["webhooks"], responses=PROBLEMS)
async def list_webhooks(uow: UnitOfWorkDep, _: CanManageWebhooks) -> WebhookList:
    return WebhookList(data=[_webhook_read(r) for r in await webhooks.list_endpoints(uow.session)])


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead, tags=["webhooks"], responses=NOT_FOUND)
async def get_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, _: CanManageWebhooks) -> WebhookRead:
    row = await webhooks.get_endpoint(uow.session, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    return _webhook_read(row)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
async def delete_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, _: CanManageWebhooks) -> Response:
    if not await webhooks.delete_endpoint(uow.session, webhook_id):
        raise not_found("webhook", webhook_id)
    await uow.commit()
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/enable", response_model=WebhookRead, tags=["webhooks"], responses=NOT_FOUND)
async def enable_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, _: CanManageWebhooks) -> WebhookRead:
    row = await webhooks.enable_endpoint(uow.session, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    await uow.commit()
    return _webhook_read(row)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryList, tags=["webhooks"], responses=NOT_FOUND)
async def list_deliveries(
    webhook_id: IdPath,
    uow: UnitOfWorkDep,
    _: CanManageWebhooks,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Limit = 100,
    before: Annotated[int | None, Query(ge=1, description="the last delivery_id of the previous page")] = None,
) -> DeliveryList:
    if await webhooks.get_endpoint(uow.session, webhook_id) is None:
        raise not_found("webhook", webhook_id)
    found = await webhooks.list_deliveries(uow.session, webhook_id, status=status, limit=limit, before=before)
    return DeliveryList(
        data=[
            DeliveryRead(
                delivery_id=d.delivery_id,
                message_id=d.message_id,
                alert_id=d.alert_id,
                event_type=d.event_type,
                status=d.status,
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at if d.status == webhooks.PENDING else None,
                last_attempt_at=d.last_attempt_at,
                delivered_at=d.delivered_at,
                created_at=d.created_at,
                attempt_log=[
                    AttemptRead(
                        attempt=a.attempt,
                        attempted_at=a.attempted_at,
                        status_code=a.status_code,
                        error=a.error,
                        duration_ms=a.duration_ms,
                    )
                    for a in attempts
                ],
            )
            for d, attempts in found
        ]
    )
