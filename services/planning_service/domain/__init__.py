"""Pure planning core: forecast (baseline, promotions, launches, sensing) and master production schedule.

Fitting baseline models needs the statistics libraries and lives in `fitting` (imported where it runs).
"""

from .accuracy import accuracy
from .baseline import BaselineModel, Method
from .diff import diff_plans
from .forecast import baseline_level
from .intermittent import DemandClass
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
    "BaselineModel",
    "Cannibalization",
    "CapacityConflict",
    "DemandClass",
    "Item",
    "Launch",
    "Method",
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
