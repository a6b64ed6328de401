"""The service's glue around the core, with plain values: the clock's horizon and the stored-plan round trip
that every revision's diff depends on."""

from datetime import date, datetime

import orjson
import pytest

from services.planning_service.domain import Item, PlanWeek, Promotion, PromotionItem, SkuInputs, diff_plans, plan_sku
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.settings import PlanningSettings, planning_settings
from services.planning_service.store import plan_from_json, plan_weeks_json
from services.planning_service.store.inputs import _plan_from_decoded, encode_expanded_plan_weeks, encode_plan_weeks
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


def test_booked_orders_and_atp_survive_the_stored_plan_round_trip() -> None:
    line = OrderLine("SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-1", 70, date(2026, 11, 25), datetime(2026, 11, 1))
    inputs = SkuInputs(Item("SKU-1", "Widget", 20, 0, baseline_weekly_demand=50), order_lines=(line,))
    plan = plan_sku(inputs, date(2026, 11, 23), 3)
    # 70 booked in week 0 consume its forecast of 50; 20 on hand and 50 made cover it, so no ATP is left.
    assert [(w.booked_orders, w.gross_requirements, w.mps_quantity) for w in plan.weeks] == [
        (70, 70, 50),
        (0, 50, 50),
        (0, 50, 50),
    ]
    assert [(w.atp, w.cumulative_atp) for w in plan.weeks] == [(0, 0), (50, 50), (50, 100)]
    restored = plan_from_json("SKU-1", plan_weeks_json(plan))
    assert restored.weeks == plan.weeks
    assert diff_plans(restored, plan) == []


def test_a_plan_stored_before_booked_orders_reads_as_nothing_booked_or_promised() -> None:
    stored = plan_weeks_json(
        plan_sku(SkuInputs(Item("SKU-1", "W", 0, 0, baseline_weekly_demand=5)), date(2026, 11, 23))
    )
    legacy = [{k: v for k, v in w.items() if k not in {"booked_orders", "atp", "cumulative_atp"}} for w in stored]
    assert {(w.booked_orders, w.atp) for w in plan_from_json("SKU-1", legacy).weeks} == {(0, 0)}


def test_the_compact_stored_weeks_read_back_identical_and_legacy_weeks_still_read() -> None:
    line = OrderLine("SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-1", 70, date(2026, 11, 25), datetime(2026, 11, 1))
    item = Item("SKU-1", "Widget", 20, 5, lot_size=7, weekly_capacity=60, baseline_weekly_demand=50.3)
    promotion = Promotion("P", date(2026, 11, 25), date(2026, 12, 2), (PromotionItem("SKU-1", 37.5),))
    plan = plan_sku(SkuInputs(item, order_lines=(line,)), date(2026, 11, 16), promotions=[promotion])
    stored = orjson.loads(encode_plan_weeks(plan.weeks))
    assert stored["fields"] == list(PlanWeek._fields) and len(stored["rows"]) == len(plan.weeks)
    assert plan_from_json("SKU-1", stored).weeks == plan.weeks
    assert stored == orjson.loads(encode_plan_weeks(plan.weeks)), "reading does not change the stored rows"
    assert plan_from_json("SKU-1", plan_weeks_json(plan)).weeks == plan.weeks
    # rows written without the promising fields read as nothing booked or promised
    legacy = {"fields": stored["fields"][:-3], "rows": [row[:-3] for row in stored["rows"]]}
    assert {(w.booked_orders, w.atp, w.cumulative_atp) for w in plan_from_json("SKU-1", legacy).weeks} == {(0, 0, 0)}
    assert [w.forecast for w in plan_from_json("SKU-1", legacy).weeks] == [w.forecast for w in plan.weeks]


def test_the_expanded_stored_weeks_are_an_object_per_week_and_read_back_identical() -> None:
    """Byte for byte what `orjson` writes of a dict per week, whatever the values (capacity null or not, tiny
    and huge numbers), and read back to the same weeks."""
    line = OrderLine("SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-1", 70, date(2026, 11, 25), datetime(2026, 11, 1))
    unlimited = Item("SKU-1", "Widget", 20, 5, lot_size=7, weekly_capacity=None, baseline_weekly_demand=50.3)
    limited = Item("SKU-1", "Widget", 1e-7, 0, lot_size=3, weekly_capacity=1e12, baseline_weekly_demand=1e11 / 3)
    for item in (unlimited, limited):
        plan = plan_sku(SkuInputs(item, order_lines=(line,)), date(2026, 11, 16))
        assert encode_expanded_plan_weeks(plan.weeks) == orjson.dumps(plan_weeks_json(plan))
        stored = orjson.loads(encode_expanded_plan_weeks(plan.weeks))
        assert [set(week) for week in stored] == [set(PlanWeek._fields)] * len(plan.weeks)
        assert plan_from_json("SKU-1", stored).weeks == plan.weeks
    assert encode_expanded_plan_weeks(()) == b"[]"


def test_stored_weeks_decoded_read_as_their_keywords_say_in_any_key_order() -> None:
    """Weeks decoded from their stored objects become the weeks `PlanWeek(**week)` makes: every field by name
    (whatever the keys' order), a missing promising field as its default, an unknown key an error."""
    line = OrderLine("SO-1", "1", "ACC-1", Tier.STRATEGIC, "SKU-1", 70, date(2026, 11, 25), datetime(2026, 11, 1))
    item = Item("SKU-1", "Widget", 20, 5, lot_size=7, weekly_capacity=60, baseline_weekly_demand=50.3)
    plan = plan_sku(SkuInputs(item, order_lines=(line,)), date(2026, 11, 16))
    stored = orjson.loads(encode_expanded_plan_weeks(plan.weeks))
    assert _plan_from_decoded("SKU-1", orjson.loads(encode_expanded_plan_weeks(plan.weeks))).weeks == plan.weeks
    reversed_keys = [dict(reversed(week.items())) for week in stored]
    assert _plan_from_decoded("SKU-1", reversed_keys).weeks == plan.weeks
    legacy = [{k: v for k, v in week.items() if k not in {"booked_orders", "atp"}} for week in stored]
    assert [(w.booked_orders, w.atp, w.cumulative_atp) for w in _plan_from_decoded("SKU-1", legacy).weeks] == [
        (0.0, 0.0, week.cumulative_atp) for week in plan.weeks
    ]
    renamed = [{("atp_total" if k == "atp" else k): v for k, v in week.items()} for week in stored]
    with pytest.raises(TypeError, match="atp_total"):
        _plan_from_decoded("SKU-1", renamed)
    extra = [{**week, "note": "x"} for week in orjson.loads(encode_expanded_plan_weeks(plan.weeks))]
    with pytest.raises(TypeError, match="note"):
        _plan_from_decoded("SKU-1", extra)


def test_compact_stored_weeks_with_a_value_too_many_or_too_few_are_refused() -> None:
    plan = plan_sku(SkuInputs(Item("SKU-1", "W", 0, 0, baseline_weekly_demand=5)), date(2026, 11, 23), 2)
    stored = orjson.loads(encode_plan_weeks(plan.weeks))
    for row in ([*stored["rows"][0], 1.0], stored["rows"][0][:-1]):
        broken = {"fields": stored["fields"], "rows": [row, stored["rows"][1]]}
        with pytest.raises(TypeError, match=f"a stored week has {len(row)} values for {len(PlanWeek._fields)}"):
            plan_from_json("SKU-1", broken)
    assert plan_from_json("SKU-1", stored).weeks == plan.weeks
