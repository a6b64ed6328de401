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

from services.returns_service import alerts, handlers, stream
from services.returns_service.domain import AlertType, Segment
from services.returns_service.schemas import (
    AccountList,
    AccountPut,
    AccountRead,
    AlertList,
    AlertRead,
    ComplaintCreate,
    ComplaintList,
    ComplaintRead,
    ReturnCreate,
    ReturnList,
    ReturnRead,
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


# The change log's sequence is a bigint: a larger id is one this stream never sent.
MAX_EVENT_ID = 2**63 - 1


def _last_event_id(
    header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=30)] = None,
    last_event_id: Annotated[str | None, Query(max_length=30)] = None,
) -> int | None:
    field, value = ("header.Last-Event-ID", header) if header is not None else ("query.last_event_id", last_event_id)
    if value is None or value == "":
        return None
    # isdigit() alone would pass other scripts' digits and superscripts, which int() reads or rejects.
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_EVENT_ID:
        raise invalid(field, f"must be an event id this stream sent: an integer from 0 to {MAX_EVENT_ID}")
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
    key: CanReadAlerts,
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
        still_authorized=lambda: runtime.keys.permits(key.key, Scope.ALERTS_READ),
    ):
        yield event


@router.get("/alerts/{alert_id}", response_model=AlertRead, tags=["alerts"], responses=NOT_FOUND)
async def get_alert(alert_id: IdPath, uow: UnitOfWorkDep, _: CanReadAlerts) -> AlertRead:
    found = await alerts.get_alert(uow, alert_id)
    if found is None:
        raise not_found("alert", alert_id)
    return found
