"""The service's glue around the core, with plain values: the clock's horizon and the stored-plan round trip
that every revision's diff depends on."""

from datetime import date

from services.planning_service.domain import Item, Promotion, PromotionItem, SkuInputs, diff_plans, plan_sku
from services.planning_service.settings import PlanningSettings, planning_settings
from services.planning_service.store import plan_from_json, plan_weeks_json
from shared.settings import Settings


def test_the_horizon_starts_on_the_monday_of_the_pinned_week() -> None:
    assert PlanningSettings(clock_today=date(2026, 11, 22)).horizon_start() == date(2026, 11, 16)  # a Sunday
    assert PlanningSettings(clock_today=date(2026, 11, 23)).horizon_start() == date(2026, 11, 23)  # a Monday


def test_shared_settings_are_upgraded_keeping_their_values() -> None:
    upgraded = planning_settings(Settings(database_url="postgresql+asyncpg://x@/y"))
    assert isinstance(upgraded, PlanningSettings)
    assert upgraded.database_url == "postgresql+asyncpg://x@/y"
    assert upgraded.planning_horizon_weeks == 26


def test_a_stored_plan_reads_back_identical_so_an_unchanged_recompute_is_no_revision() -> None:
    item = Item(
        "SKU-1",
        "Widget",
        on_hand=30,
        safety_stock=10,
        lot_size=7,
        weekly_capacity=120,
        frozen_weeks=1,
        baseline_weekly_demand=100.3,
    )
    promotion = Promotion("P", date(2026, 11, 25), date(2026, 12, 2), (PromotionItem("SKU-1", 37.5),))
    plan = plan_sku(SkuInputs(item), date(2026, 11, 16), promotions=[promotion])
    restored = plan_from_json("SKU-1", plan_weeks_json(plan))
    assert restored.weeks == plan.weeks
    assert diff_plans(restored, plan) == []
    unlimited = plan_sku(SkuInputs(Item("SKU-2", "Gadget", 0, 0, baseline_weekly_demand=5)), date(2026, 11, 16))
    assert plan_from_json("SKU-2", plan_weeks_json(unlimited)).weeks == unlimited.weeks
