"""Master production schedule rules with hand-computed expectations: PAB, lots, capacity, pre-build, fence."""

from datetime import date, timedelta

import pytest

from services.planning_service.domain import (
    CapacityConflict,
    Item,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    plan_sku,
)

H = date(2026, 11, 23)  # a Monday: the current ISO week


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def item(**overrides: object) -> Item:
    values: dict[str, object] = {
        "sku": "SKU-1",
        "name": "Widget",
        "on_hand": 0,
        "safety_stock": 0,
        "baseline_weekly_demand": 100,
    }
    values.update(overrides)
    return Item(**values)  # type: ignore[arg-type]


def plan(it: Item, weeks: int = 4, **kwargs: object) -> SkuPlan:
    inputs = SkuInputs(it, previous_mps=kwargs.pop("previous_mps", None))  # type: ignore[arg-type]
    return plan_sku(inputs, H, weeks, **kwargs)  # type: ignore[arg-type]


def column(p: SkuPlan, name: str) -> list[float]:
    return [getattr(w, name) for w in p.weeks]


def whole_week_promo(n: int, uplift_pct: float, promotion_id: str = "PROMO") -> Promotion:
    return Promotion(promotion_id, week(n), week(n) + timedelta(days=6), (PromotionItem("SKU-1", uplift_pct),))


def test_projected_available_starts_from_on_hand_and_production_keeps_safety_stock() -> None:
    p = plan(item(on_hand=150, safety_stock=50))
    # w0: 150 - 100 = 50 >= 50 so nothing is made; later weeks make exactly the 100 consumed
    assert column(p, "mps_quantity") == [0, 100, 100, 100]
    assert column(p, "projected_available") == [50, 50, 50, 50]
    assert column(p, "capacity_shortfall") == [0, 0, 0, 0]
    assert [w.week_start for w in p.weeks] == [week(0), week(1), week(2), week(3)]
    assert column(p, "capacity") == [None] * 4


def test_quantities_round_up_to_whole_lots() -> None:
    p = plan(item(on_hand=150, safety_stock=50, lot_size=40))
    # w1 needs 100 -> 3 lots (120), PAB 70; w2 needs 80 -> 2 lots, PAB 50; w3 needs 100 -> 120, PAB 70
    assert column(p, "mps_quantity") == [0, 120, 80, 120]
    assert column(p, "projected_available") == [50, 70, 50, 70]


def test_capacity_that_is_not_a_multiple_of_the_lot_allows_only_whole_lots() -> None:
    p = plan(item(baseline_weekly_demand=60, lot_size=40, weekly_capacity=100))
    # whole lots within 100 = 80; w0 needs 60 -> 80 (PAB 20), w1 needs 40 -> 40 (PAB 0), and so on
    assert column(p, "mps_quantity") == [80, 40, 80, 40]
    assert column(p, "projected_available") == [20, 0, 20, 0]
    assert column(p, "capacity") == [100, 100, 100, 100]


def test_a_week_above_capacity_is_prebuilt_in_the_latest_earlier_week() -> None:
    p = plan(item(baseline_weekly_demand=50, weekly_capacity=100), promotions=[whole_week_promo(2, 200)])
    assert column(p, "forecast") == [50, 50, 150, 50]
    # w2 can make 100 of 150: the missing 50 is made in w1's spare capacity
    assert column(p, "mps_quantity") == [50, 100, 100, 50]
    assert column(p, "projected_available") == [0, 50, 0, 0]
    assert column(p, "capacity_shortfall") == [0, 0, 0, 0]
    assert p.conflicts == ()


def test_what_prebuild_cannot_cover_is_a_shortfall_attributed_to_the_promotion() -> None:
    p = plan(item(baseline_weekly_demand=50, weekly_capacity=100), promotions=[whole_week_promo(2, 400)])
    assert column(p, "forecast") == [50, 50, 250, 50]
    # w2 needs 250: 100 itself, 50 spare in w1 and 50 spare in w0 leave 50 short; w3 recovers the deficit
    assert column(p, "mps_quantity") == [100, 100, 100, 100]
    assert column(p, "projected_available") == [50, 100, -50, 0]
    assert column(p, "capacity_shortfall") == [0, 0, 50, 0]
    assert p.conflicts == (CapacityConflict("SKU-1", ("PROMO",), ((week(2), 50.0),), 50.0),)


def test_shortfall_counts_only_the_new_part_of_a_growing_deficit() -> None:
    p = plan(item(baseline_weekly_demand=150, weekly_capacity=100), weeks=3)
    assert column(p, "projected_available") == [-50, -100, -150]
    assert column(p, "capacity_shortfall") == [50, 50, 50]
    (conflict,) = p.conflicts
    assert conflict.promotion_ids == ()  # no promotion involved: still reported
    assert conflict.total_shortfall == 150


def test_a_promotion_in_weeks_without_shortfall_is_not_named() -> None:
    p = plan(
        item(baseline_weekly_demand=150, weekly_capacity=100),
        weeks=3,
        promotions=[whole_week_promo(5, 100, "LATER")],
    )
    assert p.conflicts[0].promotion_ids == ()


def test_frozen_weeks_keep_the_previous_quantity_and_record_what_was_wanted() -> None:
    previous = {week(0): 0.0, week(1): 100.0}
    unchanged = plan(item(on_hand=150, safety_stock=50, frozen_weeks=2), previous_mps=previous)
    assert column(unchanged, "mps_quantity") == [0, 100, 100, 100]
    assert unchanged.exceptions == ()

    p = plan(item(on_hand=150, safety_stock=50, frozen_weeks=2, baseline_weekly_demand=120), previous_mps=previous)
    # unfrozen, w0 would make 20 and w1 140; they keep 0 and 100 and fall below safety stock instead
    assert column(p, "mps_quantity") == [0, 100, 160, 120]
    assert column(p, "projected_available") == [30, 10, 50, 50]
    assert column(p, "capacity_shortfall") == [20, 20, 0, 0]
    assert [(e.week_start, e.kind, e.planned_quantity, e.wanted_quantity) for e in p.exceptions] == [
        (week(0), "frozen-fence", 0, 20),
        (week(1), "frozen-fence", 100, 140),
    ]


def test_nothing_is_prebuilt_into_frozen_weeks() -> None:
    previous = {week(0): 50.0, week(1): 50.0}
    p = plan(
        item(baseline_weekly_demand=50, weekly_capacity=100, frozen_weeks=2),
        previous_mps=previous,
        promotions=[whole_week_promo(2, 200)],
    )
    # w2 needs 150 with 100 capacity and both earlier weeks frozen: 50 short, w3 recovers it
    assert column(p, "mps_quantity") == [50, 50, 100, 100]
    assert column(p, "capacity_shortfall") == [0, 0, 50, 0]
    assert p.conflicts[0].promotion_ids == ("PROMO",)
    assert p.exceptions == ()  # the frozen weeks hold what they would have planned anyway


def test_fence_weeks_without_a_previous_plan_are_planned_normally() -> None:
    p = plan(item(on_hand=150, safety_stock=50, frozen_weeks=2, baseline_weekly_demand=120))
    assert column(p, "mps_quantity") == [20, 120, 120, 120]
    assert p.exceptions == ()


def test_horizon_must_start_on_a_monday() -> None:
    with pytest.raises(ValueError, match="Monday"):
        plan_sku(SkuInputs(item()), H + timedelta(days=1))


def test_a_frozen_quantity_the_item_can_no_longer_make_is_cut_to_whole_lots_within_capacity() -> None:
    p = plan(
        item(baseline_weekly_demand=50, weekly_capacity=60, lot_size=24, frozen_weeks=1),
        weeks=2,
        previous_mps={week(0): 72.0},
    )
    # capacity 60 in lots of 24 makes at most 48, which is also all that week 0 could want now
    assert column(p, "mps_quantity") == [48, 48]
    assert [(e.kind, e.planned_quantity) for e in p.exceptions] == [("frozen-fence-infeasible", 48)]
