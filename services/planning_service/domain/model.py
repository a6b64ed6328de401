"""Plain-value inputs and outputs of the planning core: items, demand signals, plan weeks and exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .baseline import BaselineModel

from .orders import OrderLine


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    on_hand: float
    safety_stock: float
    lot_size: float = 1
    weekly_capacity: float | None = None  # None = unlimited
    frozen_weeks: int = 0
    baseline_weekly_demand: float | None = None  # seeds the baseline until order history exists

    def __post_init__(self) -> None:
        if self.lot_size <= 0:
            raise ValueError(f"{self.sku}: lot_size must be positive")
        if self.safety_stock < 0:
            raise ValueError(f"{self.sku}: safety_stock must not be negative")
        if self.weekly_capacity is not None and self.weekly_capacity < 0:
            raise ValueError(f"{self.sku}: weekly_capacity must not be negative")
        if self.frozen_weeks < 0:
            raise ValueError(f"{self.sku}: frozen_weeks must not be negative")


@dataclass(frozen=True, slots=True)
class PromotionItem:
    sku: str
    uplift_pct: float


@dataclass(frozen=True, slots=True)
class Cannibalization:
    sku: str
    pct: float


@dataclass(frozen=True, slots=True)
class Promotion:
    promotion_id: str
    starts_on: date
    ends_on: date  # inclusive
    items: tuple[PromotionItem, ...]
    post_promo_dip_pct: float = 0
    post_promo_dip_weeks: int = 0
    cannibalized: tuple[Cannibalization, ...] = ()
    cancelled: bool = False

    def __post_init__(self) -> None:
        if self.ends_on < self.starts_on:
            raise ValueError(f"{self.promotion_id}: ends_on is before starts_on")


@dataclass(frozen=True, slots=True)
class Launch:
    launch_id: str
    sku: str
    launch_on: date
    reference_sku: str
    scale_pct: float = 100
    ramp_weeks: int = 0


@dataclass(frozen=True, slots=True)
class Spike:
    """A day's units ordered far above the daily baseline; `baseline` is the detector's, kept for drivers."""

    sku: str
    day: date
    units: float
    baseline: float
    explained: bool


@dataclass(frozen=True)
class SkuInputs:
    """Everything one SKU contributes to its own plan (promotions and launches are passed separately)."""

    item: Item
    history: Mapping[date, float] = field(default_factory=dict)  # ISO-week Monday -> units ordered
    spikes: tuple[Spike, ...] = ()
    resellable_returns: Mapping[date, float] = field(default_factory=dict)  # day received -> units
    replacements: Mapping[date, float] = field(default_factory=dict)  # day -> units shipped as replacement
    previous_mps: Mapping[date, float] | None = None  # week_start -> mps_quantity of the previous plan
    order_lines: tuple[OrderLine, ...] = ()  # open booked lines of this SKU (customer commitments)
    # units ordered per day over the last weeks up to today (missing day = 0): the run rate sensing adopts
    recent_days: Mapping[date, float] = field(default_factory=dict)
    # the fitted baseline (see fitting.fit_baselines); None = smoothing with the fixed smoothing_alpha
    baseline_model: BaselineModel | None = None


@dataclass(frozen=True, slots=True)
class PlanningParams:
    """Tunable constants of the forecast; the defaults are the documented planning rules."""

    smoothing_alpha: float = 0.3  # simple exponential smoothing weight of the newest week
    sensing_weight: float = 1.0  # share of a confirmed shift's run-rate gap to the baseline adopted
    sensing_decay: float = 0.5  # geometric fade per week after the held weeks
    sensing_weeks: int = 4  # weeks a confirmed shift is held at full weight
    sensing_confirm_days: int = 3  # spike days that confirm a level shift ...
    sensing_window_days: int = 7  # ... within this many days
    launch_history_weeks: int = 8  # own weeks since launch after which the SKU's own history wins

    def __post_init__(self) -> None:
        if not 0 < self.smoothing_alpha <= 1:
            raise ValueError("smoothing_alpha must be in (0, 1]")
        if self.sensing_weeks < 0 or self.sensing_weight < 0 or not 0 <= self.sensing_decay <= 1:
            raise ValueError("sensing weight, decay (0..1) and weeks must not be negative")
        if self.sensing_confirm_days < 1 or self.sensing_window_days < 1:
            raise ValueError("sensing_confirm_days and sensing_window_days must be at least 1")


class PlanWeek(NamedTuple):
    """One week of a SKU's plan; a NamedTuple because a full recompute builds hundreds of thousands."""

    week_start: date
    baseline: float
    promotion_uplift: float
    sensing_adjustment: float
    forecast: float
    gross_requirements: float
    returns_receipts: float
    replacements: float
    projected_available: float
    mps_quantity: float
    capacity: float | None
    capacity_shortfall: float
    # Promising (orders.py, atp.py): open booked quantity due this week, APICS ATP and its running sum. The
    # defaults read plans stored before booked orders were planned.
    booked_orders: float = 0.0
    atp: float = 0.0
    cumulative_atp: float = 0.0


@dataclass(frozen=True, slots=True)
class PlanException:
    """Something the planner must look at; the plan itself was not changed to hide it."""

    week_start: date
    kind: str  # "frozen-fence" | "frozen-fence-infeasible" | "launch-reference-missing"
    planned_quantity: float | None
    wanted_quantity: float | None
    message: str


@dataclass(frozen=True, slots=True)
class CapacityConflict:
    sku: str
    promotion_ids: tuple[str, ...]
    weeks: tuple[tuple[date, float], ...]  # (week_start, capacity_shortfall) for weeks with a shortfall
    total_shortfall: float


@dataclass(frozen=True, slots=True)
class SkuPlan:
    sku: str
    weeks: tuple[PlanWeek, ...]
    exceptions: tuple[PlanException, ...] = ()
    conflicts: tuple[CapacityConflict, ...] = ()


@dataclass(frozen=True, slots=True)
class WeekChange:
    week_start: date
    field: str
    before: float | None  # None when the week was not in the old plan
    after: float


@dataclass(frozen=True, slots=True)
class Accuracy:
    weeks_compared: int
    wmape: float | None  # sum|actual - forecast| / sum actual; None when nothing was ordered
    bias: float | None  # sum(forecast - actual) / sum actual; positive = over-forecast
    mae: float | None  # mean |actual - forecast| per week; None when no week compared
