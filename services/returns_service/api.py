"""HTTP API of the returns service: parse the request, run the handler, commit, answer."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from services.returns_service import cost_handlers, cost_recount, handlers, queries, stream
from services.returns_service.domain import (
    AcknowledgeAlert,
    AlertState,
    AlertType,
    PutAccount,
    RecordComplaint,
    RecordReturn,
    ResolveAlert,
    Segment,
)
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
    StreamTokenCreated,
)
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import (
    AlertFilter,
    ComplaintsByDriver,
    EventBuffer,
    Recorded,
    ReturnsByDriver,
    SqlStore,
    complaint_transaction,
    quality_return,
    stored_complaint,
    stored_return,
)
from shared.auth import ApiKey, Scope, issue_stream_token, require, require_or_stream_token
from shared.bodies import json_body
from shared.db import driver_connection
from shared.errors import invalid, not_found
from shared.events import EventType
from shared.outbox import EncodedEvent, EventTooLarge
from shared.service import RuntimeDep, UnitOfWorkDep, get_runtime
from shared.types import DATE_RANGE, PlanDate, PlanDateTime

router = APIRouter(prefix="/v1")

# Callers must hold these scopes; aliases keep the signatures typed.
CanReadReturns = Annotated[ApiKey, Depends(require(Scope.RETURNS_READ))]
CanWriteReturns = Annotated[ApiKey, Depends(require(Scope.RETURNS_WRITE))]
CanReadAlerts = Annotated[ApiKey, Depends(require(Scope.ALERTS_READ))]
CanWriteAlerts = Annotated[ApiKey, Depends(require(Scope.ALERTS_WRITE))]
# EventSource cannot send an Authorization header: the stream also takes a stream token in `?token=`.
CanStreamAlerts = Annotated[ApiKey, Depends(require_or_stream_token(Scope.ALERTS_READ))]

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


def _recount_soon(request: Request) -> None:
    """A new return or complaint marked its account (in the statement that stored it): now that it committed, the
    recount task of this replica counts it shortly."""
    cost_recount.recount_wake(request.app.state.runtime).set()


def _check_not_future(field: str, day: date, settings: ReturnsSettings) -> None:
    # One day of slack: the desk's local date may be ahead of the service's UTC date.
    if (day - settings.today()).days > 1:
        raise invalid(field, "must not be in the future")


# ---------------------------------------------------------------- returns


Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# Endpoints answered by a handler that runs their checks itself (`CheckedRoute`).
_CHECKED: dict[Callable[..., Any], Handler] = {}


class CheckedRoute(APIRoute):
    """A route whose endpoint has a handler that runs the endpoint's checks itself (`_CHECKED`, taking the
    request): that handler answers in place of FastAPI's solving of the endpoint's dependencies, a share of a
    small request's cost. The endpoint's signature still declares the checks (the OpenAPI document's scopes and
    body)."""

    def get_route_handler(self) -> Handler:
        return _CHECKED.get(self.endpoint) or super().get_route_handler()


_may_write_returns = require(Scope.RETURNS_WRITE)


def _checked_create(path: str, endpoint: Callable[..., Any], checked: Handler, response_model: type[Any]) -> None:
    """Register `endpoint` as the idempotent create `POST /v1{path}`, answered by `checked` (`CheckedRoute`)."""
    _CHECKED[endpoint] = checked
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        status_code=201,
        response_model=response_model,
        tags=[path.strip("/")],
        responses=CREATE_PROBLEMS,
        route_class_override=CheckedRoute,
    )


def _events(request: Request) -> EventBuffer:
    """The buffer of the events a request's transaction writes beside the one announcing what it creates."""
    runtime = get_runtime(request)
    return EventBuffer(
        source=runtime.spec.source,
        traceparent=request.state.traceparent,
        max_bytes=runtime.settings.kafka_max_request_bytes,
    )


async def _create_announced(
    request: Request,
    announcement: Callable[[], EncodedEvent],
    create: Callable[[Any, EncodedEvent], Awaitable[handlers.Written]],
    stored: Callable[[Any], Awaitable[Recorded | None]],
    document: Callable[[Recorded], BaseModel],
    location: str,
) -> Response:
    """An idempotent create of a return or a complaint on the driver: `create` stores it with its `announcement`
    (and whatever else its transaction writes) and answers 201, or, for an identical retry, the stored one with 200.
    Once created, the relay and the account's recount are woken. When the announcement is larger than the broker
    takes, what is stored already still answers as stored (`stored`: 200 for an identical retry, 409 for another
    body): the limit applies to what would be written now, so a new one is refused with 413."""
    runtime = get_runtime(request)
    try:
        event = announcement()
    except EventTooLarge:
        async with driver_connection(runtime.engine) as connection:
            found = await stored(connection)
        if found is None:
            raise
        written = handlers.Written(found, created=False)
    else:
        async with driver_connection(runtime.engine) as connection:
            written = await create(connection, event)
        if written.created:
            runtime.relay.wake()
            _recount_soon(request)
    # The response model's document, encoded once (FastAPI would validate the model again to serialise it).
    return Response(
        document(written.record).model_dump_json(),
        status_code=status.HTTP_201_CREATED if written.created else status.HTTP_200_OK,
        media_type="application/json",
        headers={"Location": location},
    )


_return_body = json_body(ReturnCreate)


async def record_return(
    _: Annotated[ApiKey, Depends(_may_write_returns)],
    body: Annotated[ReturnCreate, Depends(_return_body)],
    request: Request,
) -> Response:
    return await _record_return(body, request)


async def _record_return_checked(request: Request) -> Response:
    """`record_return` with its dependencies run in order: the caller's scope, then the body (the very two its
    signature declares: no other would run)."""
    await _may_write_returns(request)
    return await _record_return(await _return_body(request), request)


_checked_create("/returns", record_return, _record_return_checked, ReturnRead)


async def _record_return(body: ReturnCreate, request: Request) -> Response:
    settings = _settings(request)
    _check_not_future("returned_on", body.returned_on, settings)
    command = RecordReturn.from_body(body.model_dump(mode="json"))

    def announcement() -> EncodedEvent:
        return get_runtime(request).encoded_event(
            EventType.RETURN_RECORDED,
            key=command.sku,
            subject=command.return_id,
            data=handlers.return_recorded_data(command),
            traceparent=request.state.traceparent,
        )

    async def create(connection: Any, event: EncodedEvent) -> handlers.Written:
        if not handlers.return_evaluated(command):
            # Nothing to evaluate: the return and its event are one statement, a transaction of its own.
            return await handlers.record_return_alone(ReturnsByDriver(connection), command, event)
        # The return, its surge inputs and the alert it changes: one transaction of few round trips.
        events = _events(request)
        async with quality_return(connection, events, command.sku) as store:
            return await handlers.record_quality_return(store, events, command, event, settings)

    return await _create_announced(
        request,
        announcement,
        create,
        lambda connection: stored_return(connection, command),
        queries.return_read,
        f"/v1/returns/{command.return_id}",
    )


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
        data=await queries.list_returns(
            SqlStore(uow.session), sku=sku, account_id=account_id, since=since, limit=limit, after=after
        )
    )


@router.get("/returns/{return_id}", response_model=ReturnRead, tags=["returns"], responses=NOT_FOUND)
async def get_return(return_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> ReturnRead:
    found = await queries.get_return(SqlStore(uow.session), return_id)
    if found is None:
        raise not_found("return", return_id)
    return found


# ---------------------------------------------------------------- complaints


# The body as `record_complaint` declares it (a body parameter: the OpenAPI document's own schema of the model),
# validated as FastAPI would validate it, from the raw bytes in one pass.
_complaint_body = json_body(ComplaintCreate)


async def record_complaint(
    body: ComplaintCreate,
    request: Request,
    _: Annotated[ApiKey, Depends(_may_write_returns)],
) -> Response:
    return await _record_complaint(body, request)


async def _record_complaint_checked(request: Request) -> Response:
    """`record_complaint` with its checks run in order: the caller's scope (its one dependency), then the body, as
    `ComplaintCreate` (its one body parameter): no other would run."""
    await _may_write_returns(request)
    return await _record_complaint(await _complaint_body(request), request)


_checked_create("/complaints", record_complaint, _record_complaint_checked, ComplaintRead)


async def _record_complaint(body: ComplaintCreate, request: Request) -> Response:
    _check_not_future("received_on", body.received_on, _settings(request))
    command = RecordComplaint.from_body(body.model_dump(mode="json"))

    def announcement() -> EncodedEvent:
        return get_runtime(request).encoded_event(
            EventType.COMPLAINT_RECORDED,
            key=command.sku or command.complaint_id,
            subject=command.complaint_id,
            data=handlers.complaint_recorded_data(command),
            traceparent=request.state.traceparent,
        )

    async def create(connection: Any, event: EncodedEvent) -> handlers.Written:
        events = _events(request)
        if handlers.complaint_evaluated(command):
            # The complaint and the alert it may raise: one transaction of few round trips.
            async with complaint_transaction(connection, events) as store:
                return await handlers.record_complaint(store, events, command, event)
        # No alert can follow: the complaint and its event are one statement, a transaction of its own.
        written = await handlers.record_complaint(ComplaintsByDriver(connection, events), events, command, event)
        # Nothing else is published: only an alert adds an event, and this complaint can raise none.
        assert not events.pending, "a complaint that cannot be critical published an event no statement wrote"
        return written

    return await _create_announced(
        request,
        announcement,
        create,
        lambda connection: stored_complaint(connection, command),
        queries.complaint_read,
        f"/v1/complaints/{command.complaint_id}",
    )


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
        data=await queries.list_complaints(
            SqlStore(uow.session), account_id=account_id, sku=sku, limit=limit, after=after
        )
    )


@router.get("/complaints/{complaint_id}", response_model=ComplaintRead, tags=["complaints"], responses=NOT_FOUND)
async def get_complaint(complaint_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> ComplaintRead:
    found = await queries.get_complaint(SqlStore(uow.session), complaint_id)
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
    request: Request,
    response: Response,
    _: CanWriteReturns,
) -> AccountRead:
    command = PutAccount(account_id, body.name, body.segment, body.owner_email)
    written = await cost_handlers.put_account(SqlStore(uow.session), uow, command, _settings(request))
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if written.created else status.HTTP_200_OK
    return queries.account_read(written.account)


@router.get("/accounts", response_model=AccountList, tags=["accounts"], responses=PROBLEMS)
async def list_accounts(
    uow: UnitOfWorkDep,
    _: CanReadReturns,
    segment: Segment | None = None,
    limit: Limit = 100,
    after: After = None,
) -> AccountList:
    return AccountList(
        data=await queries.list_accounts(SqlStore(uow.session), segment=segment, limit=limit, after=after)
    )


@router.get("/accounts/{account_id}", response_model=AccountRead, tags=["accounts"], responses=NOT_FOUND)
async def get_account(account_id: IdPath, uow: UnitOfWorkDep, _: CanReadReturns) -> AccountRead:
    found = await queries.get_account(SqlStore(uow.session), account_id)
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
    state: Annotated[AlertState | None, Query(description="open, acknowledged or resolved")] = None,
    segment: Annotated[
        Segment | None,
        Query(description="alerts involving an account of this tier, or a promotion targeting it"),
    ] = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AlertList:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    where = AlertFilter(
        since=since,
        sku=sku,
        account_id=account_id,
        alert_type=type,
        status=status,
        state=state,
        segment=segment.value if segment else None,
    )
    page = await queries.list_alerts(
        SqlStore(uow.session), where, limit=limit, after=_decode_cursor(cursor) if cursor else None
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
    key: CanStreamAlerts,
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
    found = await queries.get_alert(SqlStore(uow.session), alert_id)
    if found is None:
        raise not_found("alert", alert_id)
    return found


@router.post(
    "/alerts/stream-tokens",
    status_code=201,
    response_model=StreamTokenCreated,
    tags=["alerts"],
    responses=PROBLEMS,
)
async def create_stream_token(request: Request, key: CanReadAlerts) -> StreamTokenCreated:
    """A short-lived token that opens `/v1/alerts/stream?token=...` (and nothing else) as the calling key."""
    token, expires_at = issue_stream_token(request, key, Scope.ALERTS_READ)
    return StreamTokenCreated(token=token, expires_at=expires_at)


ALERT_ACTION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"description": "a resolved alert cannot be acknowledged"},
}


@router.post(
    "/alerts/{alert_id}/acknowledge", response_model=AlertRead, tags=["alerts"], responses=ALERT_ACTION_PROBLEMS
)
async def acknowledge_alert(alert_id: IdPath, uow: UnitOfWorkDep, key: CanWriteAlerts) -> AlertRead:
    """Mark the alert as being handled by the calling key; acknowledging it again changes nothing."""
    alert = await handlers.act_on_alert(SqlStore(uow.session), uow, AcknowledgeAlert(alert_id, by=key.name))
    await uow.commit()
    return queries.alert_read(alert)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertRead, tags=["alerts"], responses=NOT_FOUND)
async def resolve_alert(alert_id: IdPath, uow: UnitOfWorkDep, key: CanWriteAlerts) -> AlertRead:
    """Close the alert on behalf of the calling key; resolving a resolved alert changes nothing."""
    alert = await handlers.act_on_alert(SqlStore(uow.session), uow, ResolveAlert(alert_id, by=key.name))
    await uow.commit()
    return queries.alert_read(alert)
