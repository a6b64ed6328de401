"""HTTP API of the promotion service: parse the request, run the handler, commit, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.promotion_service import handlers
from services.promotion_service.domain import PromotionStatus
from services.promotion_service.schemas import PromotionCreate, PromotionList, PromotionRead
from shared.auth import Authorized, Scope
from shared.errors import not_found
from shared.service import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["promotions"])

PROBLEMS = {401: {"description": "no or unknown API key"}, 403: {"description": "missing scope"},
            422: {"description": "invalid request"}}


@router.post(
    "/promotions",
    status_code=status.HTTP_201_CREATED,
    response_model=PromotionRead,
    responses={**PROBLEMS, 200: {"description": "identical retry", "model": PromotionRead},
               409: {"description": "the id exists with a different body"}},
)
async def create_promotion(
    body: PromotionCreate, uow: UnitOfWorkDep, response: Response, _: Authorized(Scope.PROMOTIONS_WRITE)
) -> PromotionRead:
    promotion, created = await handlers.create_promotion(uow, body)
    await uow.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/promotions/{promotion.promotion_id}"
    return promotion


@router.get("/promotions", response_model=PromotionList, responses=PROBLEMS)
async def list_promotions(
    uow: UnitOfWorkDep,
    _: Authorized(Scope.PROMOTIONS_READ),
    status: PromotionStatus | None = None,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(max_length=100, description="the last promotion_id of the previous page")] = None,
) -> PromotionList:
    return PromotionList(data=await handlers.list_promotions(uow, status=status, sku=sku, limit=limit, after=after))


@router.get("/promotions/{promotion_id}", response_model=PromotionRead,
            responses={**PROBLEMS, 404: {"description": "unknown promotion"}})
async def get_promotion(promotion_id: str, uow: UnitOfWorkDep, _: Authorized(Scope.PROMOTIONS_READ)) -> PromotionRead:
    promotion = await handlers.get_promotion(uow, promotion_id)
    if promotion is None:
        raise not_found("promotion", promotion_id)
    return promotion
