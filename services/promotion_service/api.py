"""HTTP API of the promotion service: parse the request, run the handler, commit, answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from services.promotion_service import handlers
from services.promotion_service.domain import PromotionStatus
from services.promotion_service.schemas import (
    LaunchCreate,
    LaunchList,
    LaunchRead,
    PromotionCreate,
    PromotionList,
    PromotionRead,
    PromotionRevise,
    PromotionWritten,
)
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.service import UnitOfWorkDep
from shared.types import DATE_RANGE, PlanDate

router = APIRouter(prefix="/v1", tags=["promotions"])

# Callers must hold these scopes; aliases keep the signatures typed.
CanRead = Annotated[ApiKey, Depends(require(Scope.PROMOTIONS_READ))]
CanWrite = Annotated[ApiKey, Depends(require(Scope.PROMOTIONS_WRITE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API key"},
    403: {"description": "missing scope"},
    422: {"description": "invalid request"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown promotion"}}
PageSize = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=100, description="the last id of the previous page")]


@router.post(
    "/promotions",
    status_code=status.HTTP_201_CREATED,
    response_model=PromotionWritten,
    responses={
        **PROBLEMS,
        200: {"description": "identical retry", "model": PromotionWritten},
        409: {"description": "the id exists with a different body"},
    },
)
async def create_promotion(
    body: PromotionCreate, uow: UnitOfWorkDep, response: Response, _: CanWrite
) -> PromotionWritten:
    promotion, created = await handlers.create_promotion(uow, body)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/promotions/{promotion.promotion_id}"
    return promotion


@router.get("/promotions", response_model=PromotionList, responses=PROBLEMS)
async def list_promotions(
    uow: UnitOfWorkDep,
    _: CanRead,
    status: PromotionStatus | None = None,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    active_on: Annotated[PlanDate | None, Query(description=f"running on this day, inclusive ({DATE_RANGE})")] = None,
    since: Annotated[PlanDate | None, Query(description=f"ending on or after this day ({DATE_RANGE})")] = None,
    until: Annotated[PlanDate | None, Query(description=f"starting on or before this day ({DATE_RANGE})")] = None,
    limit: PageSize = 100,
    after: After = None,
) -> PromotionList:
    if since is not None and until is not None and until < since:
        raise invalid("query.until", "must be on or after since")
    data = await handlers.list_promotions(
        uow,
        status=status,
        sku=sku,
        active_on=active_on,
        since=since,
        until=until,
        limit=limit,
        after=after,
    )
    return PromotionList(data=data, next_after=data[-1].promotion_id if len(data) == limit else None)


@router.get("/promotions/{promotion_id}", response_model=PromotionRead, responses={**PROBLEMS, **NOT_FOUND})
async def get_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanRead) -> PromotionRead:
    promotion = await handlers.get_promotion(uow, promotion_id)
    if promotion is None:
        raise not_found("promotion", promotion_id)
    return promotion


@router.patch(
    "/promotions/{promotion_id}",
    response_model=PromotionWritten,
    responses={**PROBLEMS, **NOT_FOUND, 409: {"description": "the promotion is cancelled"}},
)
async def revise_promotion(
    promotion_id: str,
    body: PromotionRevise,
    uow: UnitOfWorkDep,
    _: CanWrite,
) -> PromotionWritten:
    promotion, _changed = await handlers.revise_promotion(uow, promotion_id, body)
    await uow.commit()
    return promotion


@router.post(
    "/promotions/{promotion_id}/cancel",
    response_model=PromotionRead,
    responses={**PROBLEMS, **NOT_FOUND},
)
async def cancel_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanWrite) -> PromotionRead:
    promotion, _changed = await handlers.cancel_promotion(uow, promotion_id)
    await uow.commit()
    return promotion


@router.post(
    "/launches",
    status_code=status.HTTP_201_CREATED,
    response_model=LaunchRead,
    tags=["launches"],
    responses={
        **PROBLEMS,
        200: {"description": "identical retry", "model": LaunchRead},
        409: {"description": "the id exists with a different body"},
    },
)
async def create_launch(body: LaunchCreate, uow: UnitOfWorkDep, response: Response, _: CanWrite) -> LaunchRead:
    launch, created = await handlers.create_launch(uow, body)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/launches/{launch.launch_id}"
    return launch


@router.get("/launches", response_model=LaunchList, tags=["launches"], responses=PROBLEMS)
async def list_launches(
    uow: UnitOfWorkDep,
    _: CanRead,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    limit: PageSize = 100,
    after: After = None,
) -> LaunchList:
    data = await handlers.list_launches(uow, sku=sku, limit=limit, after=after)
    return LaunchList(data=data, next_after=data[-1].launch_id if len(data) == limit else None)


@router.get(
    "/launches/{launch_id}",
    response_model=LaunchRead,
    tags=["launches"],
    responses={**PROBLEMS, 404: {"description": "unknown launch"}},
)
async def get_launch(launch_id: str, uow: UnitOfWorkDep, _: CanRead) -> LaunchRead:
    launch = await handlers.get_launch(uow, launch_id)
    if launch is None:
        raise not_found("launch", launch_id)
    return launch
