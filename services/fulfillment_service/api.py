"""HTTP API of the fulfillment service: parse the request into a command, run the handler, commit, answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from services.fulfillment_service import handlers, queries
from services.fulfillment_service.domain import (
    BookOrder,
    ChangeOrder,
    LineChange,
    OrderLine,
    OrderStatus,
    RecordShipment,
    ReportVolumes,
    SalesOrder,
    ShipLine,
    SpikeRule,
)
from services.fulfillment_service.schemas import (
    OrderVolumeReport,
    ReportAccepted,
    SalesOrderChange,
    SalesOrderCreate,
    SalesOrderList,
    SalesOrderRead,
    ShipmentCreate,
    ShipmentWritten,
    SpikeList,
    VolumeList,
)
from services.fulfillment_service.settings import FulfillmentSettings
from services.fulfillment_service.store import OrderFilter, SpikeFilter, SqlStore, VolumeFilter
from shared.auth import ApiKey, Scope, require
from shared.bodies import json_body
from shared.errors import invalid, not_found
from shared.responses import created_or_existing
from shared.service import RuntimeDep, UnitOfWorkDep
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


async def spike_rule(request: Request) -> SpikeRule:
    # async: a plain function would be run in the thread pool, a thread hand-off on every report.
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
    _: CanWrite,
    body: Annotated[OrderVolumeReport, Depends(json_body(OrderVolumeReport))],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    rule: Annotated[SpikeRule, Depends(spike_rule)],
) -> ReportAccepted:
    command = ReportVolumes.of(body.warehouse_id, body.lines)
    accepted, changed = await handlers.record_volumes(
        SqlStore(uow.session), uow, command, rule, max_event_bytes=runtime.settings.kafka_max_request_bytes
    )
    await uow.commit()  # wakes the relay when the report wrote events
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


# ---------------------------------------------------------------- sales orders

orders = APIRouter(prefix="/v1", tags=["sales orders"])

CanReadOrders = Annotated[ApiKey, Depends(require(Scope.ORDERS_READ))]
CanWriteOrders = Annotated[ApiKey, Depends(require(Scope.ORDERS_WRITE))]
OrderId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
ORDER_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown sales order"}}
ORDER_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "the order as it stands refuses it (cancelled; below shipped; more than open), naming the field"
    }
}


def service_today(request: Request) -> date:
    """The service's clock (`SALESOPS_CLOCK_TODAY` pins it)."""
    settings = request.app.state.settings
    assert isinstance(settings, FulfillmentSettings)
    return settings.today()


Today = Annotated[date, Depends(service_today)]


def _book_command(body: SalesOrderCreate) -> BookOrder:
    """The order as booked; `promised_on` defaults to `requested_on`, also in the fingerprinted body."""
    lines = tuple(
        OrderLine(
            line_id=line.line_id,
            sku=line.sku,
            quantity=line.quantity,
            requested_on=line.requested_on,
            promised_on=line.promised_on or line.requested_on,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
        )
        for line in body.lines
    )
    order = SalesOrder(body.order_id, body.account_id, body.ordered_on, body.rush, lines)
    normalized = body.model_dump(mode="json")
    for line, given in zip(normalized["lines"], lines, strict=True):
        line["promised_on"] = given.promised_on.isoformat()
    return BookOrder(order, normalized)


@orders.post(
    "/sales-orders",
    status_code=status.HTTP_201_CREATED,
    response_model=SalesOrderRead,
    responses={
        **PROBLEMS,
        200: {"description": "identical retry: the stored order as it is now", "model": SalesOrderRead},
        409: {"description": "the id exists with a different body"},
    },
)
async def book_sales_order(
    body: SalesOrderCreate, uow: UnitOfWorkDep, response: Response, today: Today, _: CanWriteOrders
) -> SalesOrderRead:
    written = await handlers.book_order(SqlStore(uow.session), uow, _book_command(body))
    await uow.commit()
    created_or_existing(response, created=written.changed, location=f"/v1/sales-orders/{body.order_id}")
    return queries.order_read(written.stored, written.tier, today)


@orders.get("/sales-orders", response_model=SalesOrderList, responses=PROBLEMS)
async def list_sales_orders(
    uow: UnitOfWorkDep,
    today: Today,
    _: CanReadOrders,
    account_id: Annotated[str | None, Query(max_length=100)] = None,
    sku: Annotated[str | None, Query(max_length=100)] = None,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> SalesOrderList:
    where = OrderFilter(account_id=account_id, sku=sku, status=status)
    data, next_cursor = await queries.list_orders(SqlStore(uow.session), where, limit=limit, cursor=cursor, today=today)
    return SalesOrderList(data=data, next_cursor=next_cursor)


@orders.get("/sales-orders/{order_id}", response_model=SalesOrderRead, responses={**PROBLEMS, **ORDER_NOT_FOUND})
async def get_sales_order(order_id: OrderId, uow: UnitOfWorkDep, today: Today, _: CanReadOrders) -> SalesOrderRead:
    order = await queries.get_order(SqlStore(uow.session), order_id, today)
    if order is None:
        raise not_found("sales order", order_id)
    return order


@orders.patch(
    "/sales-orders/{order_id}",
    response_model=SalesOrderRead,
    responses={**PROBLEMS, **ORDER_NOT_FOUND, **ORDER_CONFLICT},
)
async def change_sales_order(
    order_id: OrderId, body: SalesOrderChange, uow: UnitOfWorkDep, today: Today, _: CanWriteOrders
) -> SalesOrderRead:
    changes = tuple(
        LineChange(
            line_id=line.line_id,
            sku=line.sku,
            quantity=line.quantity,
            requested_on=line.requested_on,
            promised_on=line.promised_on,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
            given=frozenset(line.model_fields_set),
        )
        for line in body.lines
    )
    written = await handlers.change_order(SqlStore(uow.session), uow, ChangeOrder(order_id, changes, body.rush))
    await uow.commit()
    return queries.order_read(written.stored, written.tier, today)


@orders.post(
    "/sales-orders/{order_id}/cancel",
    response_model=SalesOrderRead,
    responses={**PROBLEMS, **ORDER_NOT_FOUND, 409: {"description": "the order has shipped in full"}},
)
async def cancel_sales_order(order_id: OrderId, uow: UnitOfWorkDep, today: Today, _: CanWriteOrders) -> SalesOrderRead:
    written = await handlers.cancel_order(SqlStore(uow.session), uow, order_id)
    await uow.commit()
    return queries.order_read(written.stored, written.tier, today)


@orders.post(
    "/sales-orders/{order_id}/shipments",
    status_code=status.HTTP_201_CREATED,
    response_model=ShipmentWritten,
    responses={
        **PROBLEMS,
        **ORDER_NOT_FOUND,
        200: {"description": "identical retry: the stored shipment", "model": ShipmentWritten},
        409: {
            "description": "the shipment id exists with a different body, the order is cancelled, or a line "
            "would ship more than is open (naming it)"
        },
    },
)
async def record_shipment(
    order_id: OrderId, body: ShipmentCreate, uow: UnitOfWorkDep, response: Response, today: Today, _: CanWriteOrders
) -> ShipmentWritten:
    command = RecordShipment(
        order_id=order_id,
        shipment_id=body.shipment_id,
        shipped_on=body.shipped_on,
        lines=tuple(ShipLine(line.line_id, line.quantity) for line in body.lines),
        body={"order_id": order_id, **body.model_dump(mode="json")},
    )
    written = await handlers.record_shipment(SqlStore(uow.session), uow, command, today)
    await uow.commit()
    created_or_existing(response, created=written.order.changed)
    return queries.shipment_written(
        written.shipment, queries.order_read(written.order.stored, written.order.tier, today)
    )
