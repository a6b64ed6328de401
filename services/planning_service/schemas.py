"""Request and response models of the planning API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

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
    booked_orders: float = Field(
        default=0, description="Open booked order quantity promised for the week (consumes its forecast)"
    )
    atp: float = Field(default=0, description="Discrete available-to-promise with look-ahead (APICS)")
    cumulative_atp: float = Field(default=0, description="Running sum of the ATP")
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


# Item master fields a scenario may plan with instead of the stored ones.
SCENARIO_ITEM_FIELDS = ("on_hand", "safety_stock", "lot_size", "weekly_capacity")


class ScenarioItemChange(Strict):
    """Item master fields to plan one SKU with in a scenario; the stored item is not changed. A field left out
    keeps the item's value."""

    sku: Sku
    on_hand: float | None = Field(default=None, ge=0, le=MAX_UNITS, description="Units in stock now")
    safety_stock: float | None = Field(default=None, ge=0, le=MAX_UNITS)
    lot_size: float | None = Field(default=None, ge=1, le=MAX_UNITS)
    weekly_capacity: float | None = Field(
        default=None, ge=0, le=MAX_UNITS, description="Units a week; null = unlimited, left out = the item's"
    )

    @field_validator("on_hand", "safety_stock", "lot_size")
    @classmethod
    def _not_null(cls, value: float | None) -> float:
        # Only weekly_capacity has a meaning for null (unlimited); for these, leave the field out instead.
        if value is None:
            raise ValueError("must be a number; leave the field out to keep the item's value")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> ScenarioItemChange:
        if not self.changes():
            raise ValueError(f"names no field to change: give at least one of {', '.join(SCENARIO_ITEM_FIELDS)}")
        return self

    def changes(self) -> dict[str, float | None]:
        """The fields given, by name (`weekly_capacity` may be None: unlimited)."""
        return {name: getattr(self, name) for name in SCENARIO_ITEM_FIELDS if name in self.model_fields_set}


class ScenarioRequest(Strict):
    promotions: list[ScenarioPromotion] = Field(
        default_factory=list,
        max_length=MAX_SCENARIO_PROMOTIONS,
        description=(
            f"At most {MAX_SCENARIO_PROMOTIONS} promotions naming at most {MAX_SCENARIO_SKUS:,} SKUs in all "
            "(items and cannibalized, counted per promotion); more is a 422 naming `promotions`"
        ),
    )
    items: list[ScenarioItemChange] = Field(
        default_factory=list,
        max_length=MAX_SCENARIO_SKUS,
        description=(
            "Item master changes to plan with (capacity, on hand, safety stock, lot size), one per SKU; "
            f"with the promotions' SKUs at most {MAX_SCENARIO_SKUS:,} SKUs in all"
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

    def problems(self) -> list[tuple[str, str]]:
        """The rules that span fields, as (field, message): something to plan, one change per SKU, and the
        SKU bound over promotions and item changes together."""
        if not self.promotions and not self.items:
            return [("promotions", "a scenario needs at least one promotion or one item change (`items`)")]
        found: list[tuple[str, str]] = []
        seen: set[str] = set()
        for index, change in enumerate(self.items):
            if change.sku in seen:
                found.append((f"items.{index}.sku", f"{change.sku} is changed twice: one change per SKU"))
            seen.add(change.sku)
        named = sum(len(p.items) + len(p.cannibalized) for p in self.promotions) + len(self.items)
        if named > MAX_SCENARIO_SKUS:
            found.append(
                (
                    "items",
                    f"the promotions and item changes name {named:,} SKUs; a scenario plans at most "
                    f"{MAX_SCENARIO_SKUS:,}: split it into smaller scenarios",
                )
            )
        return found


class ScenarioPlan(BaseModel):
    sku: str
    current_plan_version: int | None
    item_changes: dict[str, float | None] = Field(
        default_factory=dict, description="The item master fields this scenario planned the SKU with (from `items`)"
    )
    weeks: list[MpsWeek]
    exceptions: list[PlanExceptionRead]
    changes: list[WeekChangeRead] = Field(description="How the scenario differs from the current plan")


class ScenarioResult(BaseModel):
    plans: list[ScenarioPlan]
    conflicts: list[ConflictRead]
    skus_without_item: list[str] = Field(
        description="SKUs the promotions or item changes name that have no item master (not planned)"
    )
    committed: bool = Field(default=False, description="Always false: a scenario changes nothing")


# ---------------------------------------------------------------- accuracy and replan


class ErrorRead(BaseModel):
    weeks_compared: int
    wmape: float | None = Field(description="Σ|forecast - actual| / Σ actual; null when nothing was ordered")
    bias: float | None = Field(description="Σ(forecast - actual) / Σ actual; positive = over-forecast")
    mae: float | None = Field(description="mean |forecast - actual| per week")


class BacktestRead(ErrorRead):
    """The forecast replayed on the SKU's own stored history with a rolling origin (salesops's figures at
    the top), against seasonal naive and ETS computed in the same run."""

    demand_class: str = Field(description="forecastability: smooth, erratic, intermittent or lumpy")
    origins: int = Field(description="origins scored (each with at least 4 weeks of history before it)")
    step_weeks: int
    lead_weeks: int = Field(description="weeks forecast from each origin")
    model: str | None = Field(description="the SKU's fitted baseline model now; null: the smoothing serves")
    by_week_kind: dict[str, ErrorRead] = Field(description="salesops per week kind: normal, promotion, ...")
    standard: dict[str, ErrorRead] = Field(description="the standard models: `seasonal naive`, `ETS`")


class AccuracyRead(BaseModel):
    sku: str
    weeks_compared: int = Field(description="complete weeks compared with the forecast made before they began")
    wmape: float | None
    bias: float | None
    mae: float | None
    backtest: BacktestRead | None = Field(
        default=None,
        description="asked for one SKU: the track record on its stored history, there as soon as history is",
    )


class AccuracyList(BaseModel):
    data: list[AccuracyRead]


class ReplanResult(BaseModel):
    planned: int
    revised: int
    conflicts_detected: int
    conflicts_resolved: int
    driver_event_id: str


# ---------------------------------------------------------------- booked orders and promising

MAX_RELEASE_DAYS = 366
# Float noise of shares typed as decimals (33.3 + 33.3 + 33.4) is not a sum above 100.
SHARE_TOLERANCE = 1e-9

Pct = Annotated[float, Field(ge=0, le=100)]


class ReservePct(Strict):
    """Percent of each week's receipts protected for each tier (missing tiers: 0)."""

    strategic: Pct = 0
    integrated: Pct = 0
    emerging: Pct = 0
    stable: Pct = 0

    @model_validator(mode="after")
    def _shares_fit_in_the_receipts(self) -> ReservePct:
        if self.strategic + self.integrated + self.emerging + self.stable > 100 + SHARE_TOLERANCE:
            raise ValueError("the shares add up to more than 100")
        return self


class AllocationPolicyPut(Strict):
    reserve_pct: ReservePct = Field(default_factory=ReservePct)
    release_days: int = Field(
        default=7, ge=0, le=MAX_RELEASE_DAYS, description="Protection of a week lapses this many days before it"
    )


class AllocationPolicyRead(BaseModel):
    reserve_pct: dict[str, float] = Field(description="Percent of each week's receipts protected per tier")
    release_days: int
    revision: int = Field(description="How many times the policy was set; 0: never, nothing is protected")
    updated_at: datetime | None


class AtpWeekRead(BaseModel):
    week_start: date
    receipts: float = Field(description="Planned production plus resellable returns of the week")
    booked_orders: float = Field(description="Open booked quantity promised for the week")
    other_commitments: float = Field(description="Replacements owed in the week")
    atp: float = Field(description="Discrete available-to-promise with look-ahead (receipt weeks only)")
    cumulative_atp: float
    available_by_tier: dict[str, float] = Field(
        description="What each tier may still be promised for delivery by this week under the allocation policy"
    )
    protected: bool = Field(description="Part of this week's receipts is still reserved for tiers")
    protection_lapses_on: date


class AtpRead(BaseModel):
    sku: str
    plan_version: int
    as_of: date = Field(description="Today: which protections have lapsed")
    oversold: float = Field(description="Booked quantity no supply covers on time (served late)")
    allocation_policy: AllocationPolicyRead
    weeks: list[AtpWeekRead]


class PromiseCheckRequest(Strict):
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    sku: Sku
    quantity: float = Field(gt=0, le=MAX_UNITS)
    requested_on: PlanDate = Field(description=f"Within {DATE_RANGE}")


class WeekDrawRead(BaseModel):
    week_start: date = Field(description="The receipt week (or the stock on hand, in the first week)")
    quantity: float


class PromiseCheckRead(BaseModel):
    account_id: str
    account_known: bool = Field(description="False: planning has not heard of the account; it counts as stable")
    tier: str
    sku: str
    quantity: float
    requested_on: date
    can_promise: bool
    available: float = Field(description="What the tier may be promised by the requested week")
    available_to_top_tier: float = Field(description="The same for the highest tier: the free supply itself")
    draws: list[WeekDrawRead] = Field(description="Where the quantity (or what is available) would come from")
    earliest_full_on: date | None = Field(description="The first date the full quantity can be promised")
    limited_by: Literal["allocation", "supply", "horizon"] | None
    protected_for_higher_tiers: float
    protection_lapses_on: date | None
    explanation: list[str]
    plan_version: int
    committed: bool = Field(default=False, description="Always false: a check promises nothing")
