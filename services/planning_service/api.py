"""HTTP API of the planning service: item master, plans and why they changed, scenarios, accuracy, ATP,
the allocation policy and promise checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from services.planning_service import handlers, queries
from services.planning_service.domain import Item
from services.planning_service.domain.allocation import AllocationPolicy
from services.planning_service.domain.orders import Tier
from services.planning_service.schemas import (
    AccuracyList,
    AllocationPolicyPut,
    AllocationPolicyRead,
    AtpRead,
    ItemList,
    ItemPut,
    ItemRead,
    MpsList,
    MpsRead,
    PromiseCheckRead,
    PromiseCheckRequest,
    ReplanResult,
    RevisionList,
    ScenarioRequest,
    ScenarioResult,
)
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import SqlStore
from services.planning_service.units import units_of
from shared.auth import ApiKey, Scope, require
from shared.errors import ProblemError, invalid, not_found
from shared.pagination import next_after
from shared.responses import created_or_existing
from shared.service import RuntimeDep, UnitOfWorkDep
from shared.types import DATE_RANGE, PlanDate

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
    item = Item(sku=sku, **body.model_dump())
    stored, created = await handlers.put_item(SqlStore(uow.session), uow, item, settings)
    await uow.commit()
    created_or_existing(response, created=created)
    return queries.item_read(stored.row)


@router.get("/items", response_model=ItemList, summary="The item master, by SKU")
async def list_items(uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100, after: After = None) -> ItemList:
    page = await queries.list_items(SqlStore(uow.session), limit=limit, after=after)
    return ItemList(data=page, next_after=next_after(page, limit, lambda item: item.sku))


@router.get("/items/{sku}", response_model=ItemRead, summary="One item of the item master")
async def get_item(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead) -> ItemRead:
    found = await queries.get_item(SqlStore(uow.session), sku)
    if found is None:
        raise not_found("item", sku)
    return found


# ---------------------------------------------------------------- plans


@router.get("/mps", response_model=MpsList, summary="Every SKU's plan in brief: totals, shortfalls, conflict")
async def list_mps(uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100, after: After = None) -> MpsList:
    page = await queries.list_mps(SqlStore(uow.session), limit=limit, after=after)
    return MpsList(data=page, next_after=next_after(page, limit, lambda plan: plan.sku))


@router.get("/mps/{sku}", response_model=MpsRead, summary="A SKU's forecast and MPS with the events behind it")
async def get_mps(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead) -> MpsRead:
    found = await queries.get_mps(SqlStore(uow.session), sku)
    if found is None:
        raise not_found("plan for SKU", sku)
    return found


@router.get("/mps/{sku}/history", response_model=RevisionList, summary="Revisions of a SKU's plan, newest first")
async def plan_history(sku: SkuPath, uow: UnitOfWorkDep, _: CanRead, limit: Limit = 100) -> RevisionList:
    store = SqlStore(uow.session)
    await _require_plan(store, sku)
    return RevisionList(sku=sku, data=await queries.revisions(store, sku, week_start=None, limit=limit))


@router.get(
    "/mps/{sku}/weeks/{week_start}",
    response_model=RevisionList,
    summary="Why a week changed: the revisions that moved it, their events, before and after",
)
async def week_history(
    sku: SkuPath,
    week_start: Annotated[PlanDate, Path(description=f"the Monday of an ISO week, within {DATE_RANGE}")],
    uow: UnitOfWorkDep,
    _: CanRead,
    limit: Limit = 100,
) -> RevisionList:
    if week_start.weekday() != 0:
        raise invalid("path.week_start", "must be the Monday of an ISO week")
    store = SqlStore(uow.session)
    await _require_plan(store, sku)
    found = await queries.revisions(store, sku, week_start=week_start, limit=limit)
    return RevisionList(sku=sku, week_start=week_start, data=found)


async def _require_plan(store: SqlStore, sku: str) -> None:
    if await queries.get_item(store, sku) is None:
        raise not_found("plan for SKU", sku)


@router.post("/replan", response_model=ReplanResult, summary="Re-plan every SKU now")
async def replan(request: Request, runtime: RuntimeDep, settings: SettingsDep, _: CanWrite) -> ReplanResult:
    driver_id = f"replan:{uuid.uuid4()}"
    result = await handlers.replan_all(
        units_of(runtime, request.state.traceparent), settings, driver_id=driver_id, summary="full re-plan requested"
    )
    return ReplanResult(
        planned=result.planned,
        revised=result.revised,
        conflicts_detected=result.conflicts_detected,
        conflicts_resolved=result.conflicts_resolved,
        driver_event_id=driver_id,
    )


# ---------------------------------------------------------------- scenarios and accuracy


@router.post(
    "/scenarios",
    response_model=ScenarioResult,
    summary="The MPS as it would be with these promotions and item changes, and its conflicts; commits nothing",
)
async def run_scenario(body: ScenarioRequest, uow: UnitOfWorkDep, settings: SettingsDep, _: CanRead) -> Response:
    problems = body.problems()
    problems += [
        (f"promotions.{index}.ends_on", "must not be before starts_on")
        for index, promotion in enumerate(body.promotions)
        if promotion.ends_on < promotion.starts_on
    ]
    if problems:
        raise ProblemError(
            422,
            "Unprocessable Entity",
            "; ".join(f"{field}: {message}" for field, message in problems),
            errors=[{"field": field, "message": message} for field, message in problems],
        )
    # The unit of work is never committed; the answer is serialised where it is computed, off the event loop.
    return Response(
        await queries.scenario(SqlStore(uow.session), body.promotions, body.items, settings),
        media_type="application/json",
    )


@router.get(
    "/accuracy",
    response_model=AccuracyList,
    summary="Forecast accuracy per SKU: wMAPE, bias, MAE; for one SKU also its backtest on the stored history",
    responses={404: {"description": "the `sku` asked for is not in the item master"}},
)
async def forecast_accuracy(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    _: CanRead,
    sku: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> AccuracyList:
    store = SqlStore(uow.session)
    if sku is not None and await queries.get_item(store, sku) is None:
        raise not_found("item", sku)
    return AccuracyList(data=await queries.forecast_accuracy(store, [sku] if sku else None, settings))


# ---------------------------------------------------------------- booked orders and promising


@router.get(
    "/atp/{sku}",
    response_model=AtpRead,
    summary="Per week: receipts, booked orders, ATP, cumulative ATP and what each tier may be promised",
)
async def get_atp(sku: SkuPath, uow: UnitOfWorkDep, settings: SettingsDep, _: CanRead) -> AtpRead:
    found = await queries.atp(SqlStore(uow.session), sku, settings)
    if found is None:
        raise not_found("plan for SKU", sku)
    return found


@router.get(
    "/allocation-policy",
    response_model=AllocationPolicyRead,
    summary="The share of each week's receipts protected per tier, and the release window",
)
async def get_allocation_policy(uow: UnitOfWorkDep, _: CanRead) -> AllocationPolicyRead:
    return await queries.get_allocation_policy(SqlStore(uow.session))


@router.put(
    "/allocation-policy",
    response_model=AllocationPolicyRead,
    summary="Set the allocation policy (promise checks and the ATP view use it at once)",
)
async def put_allocation_policy(body: AllocationPolicyPut, uow: UnitOfWorkDep, _: CanWrite) -> AllocationPolicyRead:
    policy = AllocationPolicy(
        {Tier(tier): pct for tier, pct in body.reserve_pct.model_dump().items()}, body.release_days
    )
    stored = await handlers.put_allocation_policy(SqlStore(uow.session), policy)
    await uow.commit()
    return queries.allocation_policy_read(stored)


@router.post(
    "/promises/check",
    response_model=PromiseCheckRead,
    summary="Can this quantity be promised to this account on this date? Commits nothing",
    responses={404: {"description": "the `sku` has no item or plan"}},
)
async def check_promise(
    body: PromiseCheckRequest, uow: UnitOfWorkDep, settings: SettingsDep, _: CanRead
) -> PromiseCheckRead:
    # Read only: the unit of work is never committed.
    found = await queries.check_promise(SqlStore(uow.session), body, settings)
    if found is None:
        raise not_found("plan for SKU", body.sku)
    return found


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
    rows = await queries.list_drivers(SqlStore(uow.session), sku=sku, limit=limit)
    return DriverList(data=[Driver.model_validate(r) for r in rows])


@router.get(
    "/inputs/promotions/{promotion_id}",
    response_model=KnownPromotion,
    summary="Planning's copy of a promotion, as the events described it",
)
async def get_known_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanRead) -> KnownPromotion:
    row = await queries.get_known_promotion(SqlStore(uow.session), promotion_id)
    if row is None:
        raise not_found("promotion", promotion_id)
    return KnownPromotion.model_validate(row)
