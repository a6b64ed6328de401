"""Request and response bodies of the cost-to-serve API (activity rates, an account's ledger, the whale curve)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.returns_service.costing import CostRates
from services.returns_service.domain import Segment

_DEFAULTS = CostRates()
# A rate: a finite amount >= 0 in the currency, per occurrence of the activity.
Rate = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]


class CostRatesPut(BaseModel):
    """The cost of one occurrence of each activity; an activity left out takes its documented default."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default=_DEFAULTS.currency, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    order: Rate = _DEFAULTS.order
    order_line: Rate = _DEFAULTS.order_line
    unit_picked: Rate = _DEFAULTS.unit_picked
    shipment: Rate = _DEFAULTS.shipment
    backordered_line: Rate = _DEFAULTS.backordered_line
    rush_order: Rate = _DEFAULTS.rush_order
    return_line: Rate = _DEFAULTS.return_line
    complaint: Rate = _DEFAULTS.complaint


class CostRatesRead(CostRatesPut):
    model_config = ConfigDict(extra="ignore")

    updated_at: datetime | None = Field(description="null: never set, the documented defaults apply")
    updated_by: str | None
    applies_to: str = Field(
        default="every month, history included: rates price the counted drivers when the ledger is read"
    )


class PoolRead(BaseModel):
    pool: str = Field(description="an activity, or returned_goods (written off at unit cost)")
    count: float = Field(description="the driver count (units written off, for returned goods)")
    rate: float | None = Field(description="cost per occurrence; null for returned goods (each unit's cost)")
    amount: float


class TotalsRead(BaseModel):
    revenue: float
    cost_of_goods: float
    pools: list[PoolRead]
    cost_to_serve: float
    contribution: float
    contribution_pct: float | None = Field(description="contribution / revenue x 100; null without revenue")
    returned_units: float
    unpriced_units: float = Field(description="units whose price or cost is unknown, counted but not valued")


class MonthRead(TotalsRead):
    month: date = Field(description="the first day of the month")


class AccountCostRead(BaseModel):
    account_id: str
    name: str | None
    segment: Segment | None = Field(description="the assigned tier")
    suggested_segment: Segment | None = Field(description="the tier its behaviour suggests (market mapping)")
    currency: str
    from_month: date
    to_month: date
    months: list[MonthRead]
    totals: TotalsRead


class WhaleAccountRead(TotalsRead):
    rank: int = Field(description="1 = the largest contribution")
    account_id: str
    name: str | None
    segment: Segment | None
    suggested_segment: Segment | None
    cumulative_contribution: float
    cumulative_share: float | None = Field(description="of the total contribution; null when it is not positive")


class SegmentTotalsRead(TotalsRead):
    segment: Segment | None
    accounts: int


class CostToServeRead(BaseModel):
    currency: str
    from_month: date
    to_month: date
    segment: Segment | None
    accounts_total: int = Field(description="accounts on the curve; `accounts` shows the first `limit` of them")
    accounts: list[WhaleAccountRead]
    segments: list[SegmentTotalsRead]
    totals: TotalsRead
