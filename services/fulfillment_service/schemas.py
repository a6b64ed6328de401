"""Request and response models of the fulfillment API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
