"""Request and response models of the fulfillment API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.fulfillment_service.domain import MAX_LINES_PER_ORDER, OrderStatus
from shared.types import DATE_RANGE, PlanDate, Sku

MAX_LINES = 10_000

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
# Stored as PostgreSQL integer; no warehouse books two billion units of one SKU in a day.
Units = Annotated[int, Field(ge=0, le=2_000_000_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VolumeLineIn(Strict):
    sku: Sku
    day: PlanDate = Field(description=f"Within {DATE_RANGE}")
    units_ordered: Units
    units_shipped: Units
    units_backordered: Units


class OrderVolumeReport(Strict):
    warehouse_id: Identifier
    lines: list[VolumeLineIn] = Field(
        min_length=1,
        max_length=MAX_LINES,
        description=f"At most {MAX_LINES:,} lines; more is a 422 naming `lines`. Split larger reports.",
    )


class ReportAccepted(BaseModel):
    accepted: int = Field(description="Lines received")
    changed: int = Field(description="Lines that were new or changed a stored figure")


class VolumeRead(BaseModel):
    warehouse_id: str
    sku: str
    day: date
    units_ordered: int
    units_shipped: int
    units_backordered: int
    updated_at: datetime


class VolumeList(BaseModel):
    data: list[VolumeRead]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class SpikeRead(BaseModel):
    sku: str
    day: date
    status: str = Field(description="`detected`, or `retracted` when a correction removed it")
    units: float = Field(description="Units ordered that day, all warehouses")
    baseline: float
    seasonal_baseline: float
    level: float
    sigma: float
    ratio: float | None
    excess_units: float
    z_score: float
    explained_by_promotion_id: str | None
    detected_at: datetime
    updated_at: datetime


class SpikeList(BaseModel):
    data: list[SpikeRead]
    next_cursor: str | None = None


# ---------------------------------------------------------------- sales orders

# Stored as PostgreSQL integer, like the volumes; shipped quantities never exceed the ordered ones.
Quantity = Annotated[int, Field(ge=1, le=2_000_000_000)]
Money = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]


class SalesOrderLineIn(Strict):
    line_id: Identifier
    sku: Sku
    quantity: Quantity
    requested_on: PlanDate
    promised_on: PlanDate | None = Field(default=None, description="defaults to `requested_on`")
    unit_price: Money | None = None
    unit_cost: Money | None = None


class SalesOrderCreate(Strict):
    order_id: Identifier
    account_id: Identifier
    ordered_on: PlanDate
    rush: bool = Field(default=False, description="an expedited order")
    lines: list[SalesOrderLineIn] = Field(
        min_length=1,
        max_length=MAX_LINES_PER_ORDER,
        description=f"At most {MAX_LINES_PER_ORDER} lines, each `line_id` once.",
    )


class SalesOrderLineChange(Strict):
    """The fields given change; a `line_id` the order lacks adds a line (`sku`, `quantity`, `requested_on`
    required). A quantity never goes below what has shipped."""

    line_id: Identifier
    sku: Sku | None = Field(default=None, description="required for a new line; an existing line's SKU cannot change")
    quantity: Quantity | None = None
    requested_on: PlanDate | None = None
    promised_on: PlanDate | None = None
    unit_price: Money | None = Field(default=None, description="null clears it")
    unit_cost: Money | None = Field(default=None, description="null clears it")


class SalesOrderChange(Strict):
    lines: list[SalesOrderLineChange] = Field(default_factory=list, max_length=MAX_LINES_PER_ORDER)
    rush: bool | None = None


class ShipmentLineIn(Strict):
    line_id: Identifier
    quantity: Quantity


class ShipmentCreate(Strict):
    shipment_id: Identifier
    shipped_on: PlanDate
    lines: list[ShipmentLineIn] = Field(min_length=1, max_length=MAX_LINES_PER_ORDER)


class SalesOrderLineRead(BaseModel):
    line_id: str
    sku: str
    quantity: int
    requested_on: date
    promised_on: date
    unit_price: float | None
    unit_cost: float | None
    shipped_quantity: int
    open_quantity: int = Field(description="still to ship; 0 once the order is cancelled")
    backordered_quantity: int = Field(description="the open quantity once `promised_on` has passed, else 0")


class SalesOrderRead(BaseModel):
    order_id: str
    account_id: str
    tier: str | None = Field(description="the account's tier as this service knows it (null: not heard of yet)")
    ordered_on: date
    rush: bool
    status: OrderStatus
    version: int = Field(description="1 when booked, +1 per change, shipment and the cancellation")
    shipped_quantity: int
    open_quantity: int
    backordered_quantity: int
    as_of: date = Field(description="the day backorders are judged on (the service's today)")
    booked_at: datetime
    updated_at: datetime
    lines: list[SalesOrderLineRead]


class SalesOrderList(BaseModel):
    data: list[SalesOrderRead]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class ShipmentLineRead(BaseModel):
    line_id: str
    quantity: int


class ShipmentRead(BaseModel):
    shipment_id: str
    order_id: str
    shipped_on: date
    lines: list[ShipmentLineRead]
    order_version: int = Field(description="the order's version this shipment produced")
    recorded_at: datetime


class ShipmentWritten(BaseModel):
    shipment: ShipmentRead
    order: SalesOrderRead
