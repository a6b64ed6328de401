"""HTTP API of the planning service: item master, plans and why they changed, scenarios, accuracy."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from services.planning_service import handlers, queries
from services.planning_service.schemas import (
    AccuracyList,
    ItemList,
    ItemPut,
    ItemRead,
    MpsList,
    MpsRead,
    ReplanResult,
    RevisionList,
    ScenarioRequest,
    ScenarioResult,
)
from services.planning_service.settings import PlanningSettings
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.service import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["planning"])

# Callers must hold these scopes; aliases keep the signatures typed.
CanRead = Annotated[ApiKey, Depends(require(Scope.PLANNING_READ))]
CanWrite = Annotated[ApiKey, Depends(require(Scope.PLANNING_WRITE))]
SkuPath = Annotated[str, Path(min_length=1, max_length=100)]
Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=100, description="the last sku of the previous page")]


def _settings(request: Request) -> PlanningSettings:
    settings = request.app.state.settings
    assert isinstance(settings, PlanningSettings), "build the app with services.planning_service.app"
    return settings


SettingsDep = Annotated[PlanningSettings, Depends(_settings)]


# ---------------------------------------------------------------- items


@router.put(
    "/items/{sku}",
    response_model=ItemRead,
    status_code=200,
    responses={201: {"model": ItemRead, "description": "created"}},
    summary="Create or replace an item of the item master (re-plans the SKU)",
)
async def put_item(
    sku: SkuPath,
    body: ItemPut,
    response: Response,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    _: CanWrite,
) -> ItemRead:
    stored, created = await handlers.put_item(uow, sku, body, settings)
    await uow.commit()
    response.status_code = 201 if created else 200
    return ItemRead.model_validate(stored)


@router.get("/items", response_model=ItemList, summary="The item master, by SKU")
async def list_items(uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100, after: After = None) -> ItemList:
    page = await queries.list_items(uow.session, limit=limit, after=after)
    return ItemList(data=page, next_after=page[-1].sku if len(page) == limit else None)


@router.get("/items/{sku}", response_model=ItemRead, summary="One item of the item master")
async def get_item(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead) -> ItemRead:
    found = await queries.get_item(uow.session, sku)
    if found is None:
        raise not_found("item", sku)
    return found


# ---------------------------------------------------------------- plans


@router.get("/mps", response_model=MpsList, summary="Every SKU's plan in brief: totals, shortfalls, conflict")
async def list_mps(uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100, after: After = None) -> MpsList:
    page = await queries.list_mps(uow.session, limit=limit, after=after)
    return MpsList(data=page, next_after=page[-1].sku if len(page) == limit else None)


@router.get("/mps/{sku}", response_model=MpsRead, summary="A SKU's forecast and MPS with the events behind it")
async def get_mps(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead) -> MpsRead:
    found = await queries.get_mps(uow.session, sku)
    if found is None:
        raise not_found("plan for SKU", sku)
    return found


@router.get("/mps/{sku}/history", response_model=RevisionList, summary="Revisions of a SKU's plan, newest first")
async def plan_history(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100) -> RevisionList:
    await _require_plan(uow, sku)
    return RevisionList(sku=sku, data=await queries.revisions(uow.session, sku, week_start=None, limit=limit))


@router.get(
    "/mps/{sku}/weeks/{week_start}",
    response_model=RevisionList,
    summary="Why a week changed: the revisions that moved it, their events, before and after",
)
async def week_history(
    sku: SkuPath,
    week_start: date,
    uow: UnitOfWorkDep,
    _: CanRead,
    limit: Limit = 100,
) -> RevisionList:
    if week_start.weekday() != 0:
        raise invalid("path.week_start", "must be the Monday of an ISO week")
    await _require_plan(uow, sku)
    found = await queries.revisions(uow.session, sku, week_start=week_start, limit=limit)
    return RevisionList(sku=sku, week_start=week_start, data=found)


async def _require_plan(uow: Any, sku: str) -> None:
    if await queries.get_item(uow.session, sku) is None:
        raise not_found("plan for SKU", sku)


@router.post("/replan", response_model=ReplanResult, summary="Re-plan every SKU now")
async def replan(uow: UnitOfWorkDep, settings: SettingsDep, _: CanWrite) -> ReplanResult:
    driver_id = f"replan:{uuid.uuid4()}"
    result = await handlers.replan_all(uow, settings, driver_id=driver_id, summary="full re-plan requested")
    await uow.commit()
    return ReplanResult(
        planned=result.planned,
        revised=len(result.revised),
        conflicts_detected=len(result.conflicts_detected),
        conflicts_resolved=len(result.conflicts_resolved),
        driver_event_id=driver_id,
    )


# ---------------------------------------------------------------- scenarios and accuracy


@router.post(
    "/scenarios",
    response_model=ScenarioResult,
    summary="The MPS as it would be with these promotions, and its conflicts; commits nothing",
)
async def run_scenario(body: ScenarioRequest, uow: UnitOfWorkDep, settings: SettingsDep, _: CanRead) -> ScenarioResult:
    for index, promotion in enumerate(body.promotions):
        if promotion.ends_on < promotion.starts_on:
            raise invalid(f"promotions.{index}.ends_on", "must not be before starts_on")
    # The unit of work is never committed: it rolls back when the request ends.
    return await queries.scenario(uow.session, body.promotions, settings)


@router.get(
    "/accuracy",
    response_model=AccuracyList,
    summary="Forecast accuracy per SKU: wMAPE, bias, MAE",
    responses={404: {"description": "the `sku` asked for is not in the item master"}},
)
async def forecast_accuracy(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    _: CanRead,
    sku: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> AccuracyList:
    if sku is not None and await queries.get_item(uow.session, sku) is None:
        raise not_found("item", sku)
    return AccuracyList(data=await queries.forecast_accuracy(uow.session, [sku] if sku else None, settings))


# ---------------------------------------------------------------- inputs and drivers


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
    _: CanRead,
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
async def get_known_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanRead) -> KnownPromotion:
    row = await handlers.get_known_promotion(uow, promotion_id)
    if row is None:
        raise not_found("promotion", promotion_id)
    return KnownPromotion.model_validate(row)
