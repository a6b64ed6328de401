"""Pure planning core: forecast (baseline, promotions, launches, sensing) and master production schedule."""

from .accuracy import accuracy
from .diff import diff_plans
from .forecast import baseline_level
from .model import (
    Accuracy,
    Cannibalization,
    CapacityConflict,
    Item,
    Launch,
    PlanException,
    PlanningParams,
    PlanWeek,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    Spike,
    WeekChange,
)
from .plan import HORIZON_WEEKS, plan_many, plan_sku

__all__ = [
    "HORIZON_WEEKS",
    "Accuracy",
    "Cannibalization",
    "CapacityConflict",
    "Item",
    "Launch",
    "PlanException",
    "PlanWeek",
    "PlanningParams",
    "Promotion",
    "PromotionItem",
    "SkuInputs",
    "SkuPlan",
    "Spike",
    "WeekChange",
    "accuracy",
    "baseline_level",
    "diff_plans",
    "plan_many",
    "plan_sku",
]
