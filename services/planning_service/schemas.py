"""Request and response models of the planning API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.events import MAX_CANNIBALIZED, MAX_PROMOTION_ITEMS, MAX_PROMOTION_LABELS
from shared.types import DATE_RANGE, PlanDate, Sku


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- items


# Quantities beyond this are typing mistakes, and would overflow the planning arithmetic into infinities.
MAX_UNITS = 1e12


class ItemPut(Strict):
    name: str = Field(min_length=1, max_length=200)
    on_hand: float = Field(ge=0, le=MAX_UNITS, description="Units in stock now")
    safety_stock: float = Field(
        ge=0, le=MAX_UNITS, description="Projected available is planned to stay at or above this"
    )
    lot_size: float = Field(default=1, ge=1, le=MAX_UNITS, description="Production comes in whole multiples of this")
    weekly_capacity: float | None = Field(
        default=None, ge=0, le=MAX_UNITS, description="Units a week; null = unlimited"
    )
    frozen_weeks: int = Field(default=0, ge=0, le=104, description="Weeks whose MPS new events do not change")
    baseline_weekly_demand: float | None = Field(
        default=None, ge=0, le=MAX_UNITS, description="Seeds the forecast until order history exists"
    )


class ItemRead(ItemPut):
    sku: str
    revision: int = Field(description="How many times the item master changed")
    created_at: datetime
    updated_at: datetime


class ItemList(BaseModel):
    data: list[ItemRead]
    next_after: str | None = Field(default=None, description="Pass as `after` for the next page; null at the end")


# ---------------------------------------------------------------- plans


class DriverRef(BaseModel):
    event_id: str
    type: str
    summary: str


class MpsWeek(BaseModel):
    week_start: date
    baseline: float
    promotion_uplift: float
    sensing_adjustment: float
    forecast: float
    gross_requirements: float
    returns_receipts: float
    projected_available: float
    mps_quantity: float
    capacity: float | None
    capacity_shortfall: float
    replacements: float = Field(description="Units shipped as replacements (part of gross requirements)")
    changed_by: list[str] = Field(
        default_factory=list, description="Driver event ids of the revisions that moved this week"
    )


class PlanExceptionRead(BaseModel):
    week_start: date
    kind: str
    planned_quantity: float | None
    wanted_quantity: float | None
    message: str


class ShortfallWeek(BaseModel):
    week_start: date
    shortfall: float


class ConflictRead(BaseModel):
    sku: str
    promotion_ids: list[str]
    weeks: list[ShortfallWeek]
    total_shortfall: float
    plan_version: int | None = None


class MpsRead(BaseModel):
    sku: str
    plan_version: int
    generated_at: datetime
    weeks: list[MpsWeek]
    drivers: list[DriverRef]
    exceptions: list[PlanExceptionRead] = Field(default_factory=list)
    conflict: ConflictRead | None = Field(default=None, description="The open capacity conflict, if any")


class MpsSummary(BaseModel):
    sku: str
    plan_version: int
    generated_at: datetime
    total_forecast: float
    total_mps: float
    shortfall_weeks: int
    open_conflict: ConflictRead | None


class MpsList(BaseModel):
    data: list[MpsSummary]
    next_after: str | None = None


class WeekChangeRead(BaseModel):
    week_start: date
    field: str
    before: float | None
    after: float | None


class RevisionRead(BaseModel):
    plan_version: int
    generated_at: datetime
    drivers: list[DriverRef]
    changes: list[WeekChangeRead]


class RevisionList(BaseModel):
    sku: str
    week_start: date | None = Field(default=None, description="Set when only this week's changes are listed")
    data: list[RevisionRead]


# ---------------------------------------------------------------- scenarios


class ScenarioItem(Strict):
    sku: Sku
    uplift_pct: float = Field(gt=-100, le=10_000)


class ScenarioCannibalization(Strict):
    sku: Sku
    pct: float = Field(gt=0, le=100)


Label = Annotated[str, StringConstraints(min_length=1, max_length=50)]

# A scenario is planned while the caller waits, by any key that may read plans: these bounds keep the largest
# one cheap. Loading three years of history dominates its cost: about half a second for 200 SKUs, against
# several seconds (and an 8 MB answer) for 1,000.
MAX_SCENARIO_PROMOTIONS = 20
MAX_SCENARIO_SKUS = 200


class ScenarioPromotion(Strict):
    """A promotion body as `POST /v1/promotions` takes it."""

    promotion_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    name: str = Field(min_length=1, max_length=200)
    starts_on: PlanDate = Field(description=f"Within {DATE_RANGE}")
    ends_on: PlanDate = Field(description=f"On or after starts_on, within {DATE_RANGE}")
    items: list[ScenarioItem] = Field(min_length=1, max_length=MAX_PROMOTION_ITEMS)
    post_promo_dip_pct: float = Field(default=0, ge=0, le=100)
    post_promo_dip_weeks: int = Field(default=0, ge=0, le=52)
    cannibalized: list[ScenarioCannibalization] = Field(default_factory=list, max_length=MAX_CANNIBALIZED)
    channel: str | None = Field(default=None, max_length=100)
    regions: list[Label] = Field(default_factory=list, max_length=MAX_PROMOTION_LABELS)
    account_segments: list[Label] = Field(default_factory=list, max_length=MAX_PROMOTION_LABELS)


class ScenarioRequest(Strict):
    promotions: list[ScenarioPromotion] = Field(
        min_length=1,
        max_length=MAX_SCENARIO_PROMOTIONS,
        description=(
            f"At most {MAX_SCENARIO_PROMOTIONS} promotions naming at most {MAX_SCENARIO_SKUS:,} SKUs in all "
            "(items and cannibalized, counted per promotion); more is a 422 naming `promotions`"
        ),
    )

    @field_validator("promotions")
    @classmethod
    def _bounded(cls, promotions: list[ScenarioPromotion]) -> list[ScenarioPromotion]:
        named = sum(len(p.items) + len(p.cannibalized) for p in promotions)
        if named > MAX_SCENARIO_SKUS:
            raise ValueError(
                f"the promotions name {named:,} SKUs (items and cannibalized); a scenario plans at most "
                f"{MAX_SCENARIO_SKUS:,}: split it into smaller scenarios"
            )
        return promotions


class ScenarioPlan(BaseModel):
    sku: str
    current_plan_version: int | None
    weeks: list[MpsWeek]
    exceptions: list[PlanExceptionRead]
    changes: list[WeekChangeRead] = Field(description="How the scenario differs from the current plan")


class ScenarioResult(BaseModel):
    plans: list[ScenarioPlan]
    conflicts: list[ConflictRead]
    skus_without_item: list[str] = Field(description="SKUs the promotions name that have no item master")
    committed: bool = Field(default=False, description="Always false: a scenario changes nothing")


# ---------------------------------------------------------------- accuracy and replan


class AccuracyRead(BaseModel):
    sku: str
    weeks_compared: int
    wmape: float | None
    bias: float | None
    mae: float | None


class AccuracyList(BaseModel):
    data: list[AccuracyRead]


class ReplanResult(BaseModel):
    planned: int
    revised: int
    conflicts_detected: int
    conflicts_resolved: int
    driver_event_id: str
