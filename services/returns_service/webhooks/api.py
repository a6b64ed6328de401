"""HTTP API of webhook endpoints: register, list, read, delete, re-enable, and read deliveries. Each key
manages the endpoints it registered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.returns_service.api import NOT_FOUND, PROBLEMS, IdPath, Limit
from services.returns_service.schemas import (
    AttemptRead,
    DeliveryList,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)
from services.returns_service.store import webhooks as webhook_store
from services.returns_service.webhooks.ssrf import Guard, TargetRefused
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.service import UnitOfWorkDep

router = APIRouter(prefix="/v1")

CanManageWebhooks = Annotated[ApiKey, Depends(require(Scope.WEBHOOKS_MANAGE))]


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


def _guard(request: Request) -> Guard:
    guard = request.app.state.webhook_guard
    assert isinstance(guard, Guard)
    return guard


def _owner(key: ApiKey) -> str | None:
    """Endpoints belong to the key that created them (by its name); a key that also holds `webhooks:admin`
    reaches every endpoint. Another key's endpoint answers 404, as an unknown one."""
    return None if Scope.WEBHOOKS_ADMIN in key.scopes else key.name


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
        await _guard(request).check_registration(body.url)
    except TargetRefused as exc:
        raise invalid("url", str(exc)) from exc
    row, secret = await webhook_store.create_endpoint(
        uow.session, url=body.url, event_types=body.event_types or [], owner=key.name
    )
    await uow.commit()
    return WebhookCreated(**_webhook_read(row).model_dump(), secret=secret)


@router.get("/webhooks", response_model=WebhookList, tags=["webhooks"], responses=PROBLEMS)
async def list_webhooks(uow: UnitOfWorkDep, key: CanManageWebhooks) -> WebhookList:
    rows = await webhook_store.list_endpoints(uow.session, owner=_owner(key))
    return WebhookList(data=[_webhook_read(r) for r in rows])


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead, tags=["webhooks"], responses=NOT_FOUND)
async def get_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, key: CanManageWebhooks) -> WebhookRead:
    row = await webhook_store.get_endpoint(uow.session, webhook_id, owner=_owner(key))
    if row is None:
        raise not_found("webhook", webhook_id)
    return _webhook_read(row)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], responses=NOT_FOUND)
async def delete_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, key: CanManageWebhooks) -> Response:
    if not await webhook_store.delete_endpoint(uow.session, webhook_id, owner=_owner(key)):
        raise not_found("webhook", webhook_id)
    await uow.commit()
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/enable", response_model=WebhookRead, tags=["webhooks"], responses=NOT_FOUND)
async def enable_webhook(webhook_id: IdPath, uow: UnitOfWorkDep, key: CanManageWebhooks) -> WebhookRead:
    row = await webhook_store.enable_endpoint(uow.session, webhook_id, owner=_owner(key))
    if row is None:
        raise not_found("webhook", webhook_id)
    await uow.commit()
    return _webhook_read(row)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryList, tags=["webhooks"], responses=NOT_FOUND)
async def list_deliveries(
    webhook_id: IdPath,
    uow: UnitOfWorkDep,
    key: CanManageWebhooks,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Limit = 100,
    before: Annotated[int | None, Query(ge=1, description="the last delivery_id of the previous page")] = None,
) -> DeliveryList:
    if await webhook_store.get_endpoint(uow.session, webhook_id, owner=_owner(key)) is None:
        raise not_found("webhook", webhook_id)
    found = await webhook_store.list_deliveries(uow.session, webhook_id, status=status, limit=limit, before=before)
    return DeliveryList(
        data=[
            DeliveryRead(
                delivery_id=d.delivery_id,
                message_id=d.message_id,
                alert_id=d.alert_id,
                event_type=d.event_type,
                status=d.status,
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at if d.status == webhook_store.PENDING else None,
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
