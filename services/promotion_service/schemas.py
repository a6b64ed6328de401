"""Request and response models of the promotion API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.promotion_service.domain import PromotionStatus
from shared.events import MAX_CANNIBALIZED, MAX_PROMOTION_ITEMS, MAX_PROMOTION_LABELS
from shared.types import DATE_RANGE, PlanDate, Sku

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromotionItem(Strict):
    sku: Sku
    uplift_pct: float = Field(gt=-100, le=10_000, description="Demand uplift during the promotion, in percent")


class Cannibalization(Strict):
    sku: Sku
    pct: float = Field(gt=0, le=100, description="How much this SKU's baseline drops during the promotion")


class PromotionCreate(Strict):
    promotion_id: Identifier = Field(description="The client's own id; the idempotency key of the create")
    name: str = Field(min_length=1, max_length=200)
    starts_on: PlanDate = Field(description=f"Within {DATE_RANGE}")
    ends_on: PlanDate = Field(description=f"On or after starts_on, within {DATE_RANGE}")
    items: list[PromotionItem] = Field(min_length=1, max_length=MAX_PROMOTION_ITEMS)
    post_promo_dip_pct: float = Field(default=0, ge=0, le=100)
    post_promo_dip_weeks: int = Field(default=0, ge=0, le=52)
    cannibalized: list[Cannibalization] = Field(default_factory=list, max_length=MAX_CANNIBALIZED)
    channel: str | None = Field(default=None, max_length=100)
    regions: list[Label] = Field(default_factory=list, max_length=MAX_PROMOTION_LABELS)
    account_segments: list[Label] = Field(default_factory=list, max_length=MAX_PROMOTION_LABELS)


class PromotionItemRead(BaseModel):
    sku: str
    uplift_pct: float


class CannibalizationRead(BaseModel):
    sku: str
    pct: float


class PromotionRead(BaseModel):
    # Read back as stored (plain types): a promotion stored before today's input rules must stay readable.
    promotion_id: str
    name: str
    starts_on: date
    ends_on: date
    items: list[PromotionItemRead]
    post_promo_dip_pct: float
    post_promo_dip_weeks: int
    cannibalized: list[CannibalizationRead]
    channel: str | None
    regions: list[str]
    account_segments: list[str]
    status: PromotionStatus
    version: int
    conflict: dict[str, Any] | None = Field(
        default=None, description="The capacity conflict planning reports while the promotion is at risk"
    )
    created_at: datetime
    updated_at: datetime


class PromotionRevise(Strict):
    """A partial revision: only the fields sent change; lists are replaced as a whole."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    starts_on: PlanDate | None = None
    ends_on: PlanDate | None = None
    items: list[PromotionItem] | None = Field(default=None, min_length=1, max_length=MAX_PROMOTION_ITEMS)
    post_promo_dip_pct: float | None = Field(default=None, ge=0, le=100)
    post_promo_dip_weeks: int | None = Field(default=None, ge=0, le=52)
    cannibalized: list[Cannibalization] | None = Field(default=None, max_length=MAX_CANNIBALIZED)
    channel: str | None = Field(default=None, max_length=100)
    regions: list[Label] | None = Field(default=None, max_length=MAX_PROMOTION_LABELS)
    account_segments: list[Label] | None = Field(default=None, max_length=MAX_PROMOTION_LABELS)


class PromotionWarning(BaseModel):
    code: str = Field(description="`overlapping-promotion`: another live promotion of the SKU overlaps")
    sku: str
    promotion_id: str
    starts_on: date
    ends_on: date


class PromotionWritten(PromotionRead):
    """The answer to a create or a revision: the promotion plus advice that did not block the change."""

    warnings: list[PromotionWarning] = Field(default_factory=list)


class PromotionList(BaseModel):
    data: list[PromotionRead]
    next_after: str | None = Field(
        default=None, description="Pass as `after` to get the next page; null on the last page"
    )


class LaunchCreate(Strict):
    launch_id: Identifier = Field(description="The client's own id; the idempotency key of the create")
    sku: Sku
    launch_on: PlanDate = Field(description=f"Within {DATE_RANGE}")
    reference_sku: Sku = Field(description="The existing SKU whose baseline the new SKU's forecast follows")
    scale_pct: float = Field(default=100, gt=0, le=10_000)
    ramp_weeks: int = Field(default=0, ge=0, le=52)


class LaunchRead(LaunchCreate):
    # Read back as stored: a launch stored before today's input rules must still be readable.
    sku: str
    launch_on: date
    reference_sku: str
    created_at: datetime


class LaunchList(BaseModel):
    data: list[LaunchRead]
    next_after: str | None = None
