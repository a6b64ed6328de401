"""HTTP API of the fulfillment service: parse the request into a command, run the handler, commit, answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from services.fulfillment_service import handlers, queries
from services.fulfillment_service.domain import ReportVolumes, SpikeRule
from services.fulfillment_service.schemas import (
    OrderVolumeReport,
    ReportAccepted,
    SpikeList,
    VolumeList,
)
from services.fulfillment_service.store import SpikeFilter, SqlStore, VolumeFilter
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid
from shared.service import UnitOfWorkDep
from shared.types import DATE_RANGE, PlanDate

router = APIRouter(prefix="/v1", tags=["order volumes"])

CanRead = Annotated[ApiKey, Depends(require(Scope.VOLUMES_READ))]
CanWrite = Annotated[ApiKey, Depends(require(Scope.VOLUMES_WRITE))]
PageSize = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")]
Since = Annotated[PlanDate | None, Query(description=f"on or after this day ({DATE_RANGE})")]
Until = Annotated[PlanDate | None, Query(description=f"on or before this day ({DATE_RANGE})")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API key"},
    403: {"description": "missing scope"},
    422: {"description": "invalid request, naming the field (e.g. `lines` over 10,000 lines, a day out of range)"},
}


def spike_rule(request: Request) -> SpikeRule:
    rule: SpikeRule = request.app.state.spike_rule
    return rule


def _check_range(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and until < since:
        raise invalid("query.until", "must be on or after since")


@router.post(
    "/order-volumes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportAccepted,
    responses={**PROBLEMS, 413: {"description": "request body over the size limit"}},
)
async def report_order_volumes(
    body: OrderVolumeReport,
    uow: UnitOfWorkDep,
    rule: Annotated[SpikeRule, Depends(spike_rule)],
    _: CanWrite,
) -> ReportAccepted:
    command = ReportVolumes.of(body.warehouse_id, body.lines)
    accepted, changed = await handlers.record_volumes(SqlStore(uow.session), uow, command, rule)
    await uow.commit()
    return ReportAccepted(accepted=accepted, changed=changed)


@router.get("/order-volumes", response_model=VolumeList, responses=PROBLEMS)
async def list_order_volumes(
    uow: UnitOfWorkDep,
    _: CanRead,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    warehouse_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Since = None,
    until: Until = None,
    limit: PageSize = 500,
    cursor: Cursor = None,
) -> VolumeList:
    _check_range(since, until)
    where = VolumeFilter(sku=sku, warehouse_id=warehouse_id, since=since, until=until)
    data, next_cursor = await queries.list_volumes(SqlStore(uow.session), where, limit=limit, cursor=cursor)
    return VolumeList(data=data, next_cursor=next_cursor)


@router.get("/spikes", response_model=SpikeList, tags=["spikes"], responses=PROBLEMS)
async def list_spikes(
    uow: UnitOfWorkDep,
    _: CanRead,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    since: Since = None,
    until: Until = None,
    include_retracted: Annotated[bool, Query(description="also list spikes a later correction removed")] = False,
    limit: PageSize = 100,
    cursor: Cursor = None,
) -> SpikeList:
    _check_range(since, until)
    where = SpikeFilter(sku=sku, since=since, until=until, include_retracted=include_retracted)
    data, next_cursor = await queries.list_spikes(SqlStore(uow.session), where, limit=limit, cursor=cursor)
    return SpikeList(data=data, next_cursor=next_cursor)
