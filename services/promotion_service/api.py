"""HTTP API of the promotion service: parse the request into a command, run the handler, commit, answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import ValidationError

from services.promotion_service import handlers, queries
from services.promotion_service.domain import (
    CreateLaunch,
    CreatePromotion,
    PromotionStatus,
    RevisePromotion,
    RuleViolation,
)
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
from services.promotion_service.store import PromotionFilter, SqlStore
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.pagination import next_after
from shared.responses import created_or_existing
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


def _create_body(merged: Mapping[str, Any]) -> Mapping[str, Any]:
    """A revised promotion must still be a valid create request: the same schema, the same 422s."""
    try:
        return PromotionCreate.model_validate(merged).model_dump(mode="json")
    except ValidationError as exc:
        raise handlers.unprocessable(
            [RuleViolation(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) for err in exc.errors()]
        ) from exc


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
    command = CreatePromotion.from_body(body.model_dump(mode="json"))
    written = await handlers.create_promotion(SqlStore(uow.session), uow, command)
    await uow.commit()
    created_or_existing(response, created=written.changed, location=f"/v1/promotions/{command.promotion_id}")
    return queries.promotion_written(written.promotion, written.warnings)


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
    where = PromotionFilter(status=status, sku=sku, active_on=active_on, since=since, until=until)
    data = await queries.list_promotions(SqlStore(uow.session), where, limit=limit, after=after)
    return PromotionList(data=data, next_after=next_after(data, limit, lambda p: p.promotion_id))


@router.get("/promotions/{promotion_id}", response_model=PromotionRead, responses={**PROBLEMS, **NOT_FOUND})
async def get_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanRead) -> PromotionRead:
    promotion = await queries.get_promotion(SqlStore(uow.session), promotion_id)
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
    command = RevisePromotion(promotion_id, body.model_dump(mode="json", exclude_unset=True))
    written = await handlers.revise_promotion(SqlStore(uow.session), uow, command, _create_body)
    await uow.commit()
    return queries.promotion_written(written.promotion, written.warnings)


@router.post(
    "/promotions/{promotion_id}/cancel",
    response_model=PromotionRead,
    responses={**PROBLEMS, **NOT_FOUND},
)
async def cancel_promotion(promotion_id: str, uow: UnitOfWorkDep, _: CanWrite) -> PromotionRead:
    promotion, _changed = await handlers.cancel_promotion(SqlStore(uow.session), uow, promotion_id)
    await uow.commit()
    return queries.promotion_read(promotion)


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
    command = CreateLaunch.from_body(body.model_dump(mode="json"))
    launch, created = await handlers.create_launch(SqlStore(uow.session), uow, command)
    await uow.commit()
    created_or_existing(response, created=created, location=f"/v1/launches/{command.launch_id}")
    return queries.launch_read(launch)


@router.get("/launches", response_model=LaunchList, tags=["launches"], responses=PROBLEMS)
async def list_launches(
    uow: UnitOfWorkDep,
    _: CanRead,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    limit: PageSize = 100,
    after: After = None,
) -> LaunchList:
    data = await queries.list_launches(SqlStore(uow.session), sku=sku, limit=limit, after=after)
    return LaunchList(data=data, next_after=next_after(data, limit, lambda launch: launch.launch_id))


@router.get(
    "/launches/{launch_id}",
    response_model=LaunchRead,
    tags=["launches"],
    responses={**PROBLEMS, 404: {"description": "unknown launch"}},
)
async def get_launch(launch_id: str, uow: UnitOfWorkDep, _: CanRead) -> LaunchRead:
    launch = await queries.get_launch(SqlStore(uow.session), launch_id)
    if launch is None:
        raise not_found("launch", launch_id)
    return launch
