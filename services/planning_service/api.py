"""HTTP API of the planning service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.planning_service import handlers
from shared.auth import Authorized, Scope
from shared.errors import not_found
from shared.service import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["planning"])


class Driver(BaseModel):
    event_id: str
    event_type: str
    subject: str | None
    skus: list[str]
    summary: str
    occurred_at: datetime | None
    received_at: datetime


class DriverList(BaseModel):
    data: list[Driver]


class KnownPromotion(BaseModel):
    promotion_id: str
    version: int
    status: str
    body: dict[str, Any]
    last_event_id: str
    updated_at: datetime


@router.get("/drivers", response_model=DriverList, summary="The events that shaped the plans, newest first")
async def list_drivers(
    uow: UnitOfWorkDep,
    _: Authorized(Scope.PLANNING_READ),
    sku: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DriverList:
    rows = await handlers.list_drivers(uow, sku=sku, limit=limit)
    return DriverList(data=[Driver.model_validate(r) for r in rows])


@router.get(
    "/inputs/promotions/{promotion_id}",
    response_model=KnownPromotion,
    summary="Planning's copy of a promotion, as the events described it",
)
async def get_known_promotion(
    promotion_id: str, uow: UnitOfWorkDep, _: Authorized(Scope.PLANNING_READ)
) -> KnownPromotion:
    row = await handlers.get_known_promotion(uow, promotion_id)
    if row is None:
        raise not_found("promotion", promotion_id)
    return KnownPromotion.model_validate(row)
