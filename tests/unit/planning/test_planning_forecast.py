"""Forecast rules with hand-computed expectations: baseline, promotions, dip, launches, sensing, returns."""

from datetime import date, timedelta

import pytest

from services.planning_service.domain import (
    Cannibalization,
    Item,
    Launch,
    PlanningParams,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    Spike,
    baseline_level,
    plan_many,
    plan_sku,
)

H = date(2026, 11, 23)  # Monday of the current week
FRIDAY = date(2026, 11, 27)
NEXT_MONDAY = date(2026, 11, 30)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def inputs(sku: str = "SKU-1", seed: float | None = 70, **kwargs: object) -> SkuInputs:
    return SkuInputs(Item(sku, sku, on_hand=0, safety_stock=0, baseline_weekly_demand=seed), **kwargs)  # type: ignore[arg-type]


def column(p: SkuPlan, name: str) -> list[float]:
    return [getattr(w, name) for w in p.weeks]


def black_friday(**overrides: object) -> Promotion:
    values: dict[str, object] = {
        "promotion_id": "BF",
        "starts_on": FRIDAY,
        "ends_on": NEXT_MONDAY,
        "items": (PromotionItem("SKU-1", 50),),
    }
    values.update(overrides)
    return Promotion(**values)  # type: ignore[arg-type]


# baseline


def test_baseline_smooths_history_with_the_promotion_week_cleaned_out() -> None:
    history = {week(-4): 100.0, week(-3): 120.0, week(-2): 300.0, week(-1): 110.0}
    past_promo = Promotion(
        "OLD", week(-2) + timedelta(days=1), week(-2) + timedelta(days=3), (PromotionItem("SKU-1", 150),)
    )
    sku = inputs(seed=None, history=history)
    # alpha 0.3: 100 -> 106 -> (promo week: level kept) 106 -> 0.3*110 + 0.7*106 = 107.2
    assert baseline_level(sku, H, [past_promo]) == pytest.approx(107.2)
    assert column(plan_sku(sku, H, 3, promotions=[past_promo]), "baseline") == pytest.approx([107.2] * 3)
    # the same history with the promotion unknown is inflated: 106 -> 164.2 -> 147.94
    assert baseline_level(sku, H) == pytest.approx(147.94)
    cancelled = Promotion("OLD", past_promo.starts_on, past_promo.ends_on, past_promo.items, cancelled=True)
    assert baseline_level(sku, H, [cancelled]) == pytest.approx(147.94)


def test_missing_weeks_count_as_zero_and_the_current_week_is_ignored() -> None:
    history = {week(-3): 100.0, week(-1): 100.0, week(0): 1000.0}
    # 100 -> 0.7*100 = 70 -> 0.3*100 + 0.7*70 = 79
    assert baseline_level(inputs(history=history), H) == pytest.approx(79)


def test_daily_keys_are_summed_into_their_week() -> None:
    history = {week(-1): 30.0, week(-1) + timedelta(days=4): 40.0}
    assert baseline_level(inputs(history=history), H) == pytest.approx(70)


def test_without_history_the_item_seed_is_the_baseline_and_none_means_zero() -> None:
    assert column(plan_sku(inputs(seed=80), H, 2), "baseline") == [80, 80]
    assert column(plan_sku(inputs(seed=None), H, 2), "forecast") == [0, 0]


def test_smoothing_weight_is_a_parameter() -> None:
    history = {week(-2): 100.0, week(-1): 200.0}
    assert baseline_level(inputs(history=history), H, params=PlanningParams(smoothing_alpha=0.5)) == 150


# promotions


def test_uplift_is_prorated_by_promotion_days_across_the_week_boundary() -> None:
    p = plan_sku(inputs(), H, 3, promotions=[black_friday()])
    # Fri-Sun in week 0 (3 days), Monday in week 1: 70 * 50% * 3/7 = 15 and 70 * 50% * 1/7 = 5
    assert column(p, "promotion_uplift") == pytest.approx([15, 5, 0])
    assert column(p, "forecast") == pytest.approx([85, 75, 70])


def test_post_promotion_dip_removes_a_share_of_the_incremental_volume_after_the_end() -> None:
    p = plan_sku(inputs(), H, 4, promotions=[black_friday(post_promo_dip_pct=20, post_promo_dip_weeks=2)])
    # incremental 20, dip 4 spread over the 14 days from Tue Dec 1: 6 days in w1, 7 in w2, 1 in w3
    per_day = 4 / 14
    assert column(p, "promotion_uplift") == pytest.approx([15, 5 - 6 * per_day, -7 * per_day, -per_day])
    assert sum(column(p, "promotion_uplift")) == pytest.approx(16)


def test_cannibalization_lowers_the_named_sku_during_the_promotion() -> None:
    promo = black_friday(cannibalized=(Cannibalization("SKU-2", 10),))
    plans = plan_many([inputs(), inputs("SKU-2", seed=140)], H, 3, promotions=[promo])
    assert column(plans[1], "promotion_uplift") == pytest.approx([-6, -2, 0])
    assert column(plans[1], "forecast") == pytest.approx([134, 138, 140])


def test_cancelled_promotions_contribute_nothing_and_others_add_up() -> None:
    second = Promotion("CM", NEXT_MONDAY, NEXT_MONDAY + timedelta(days=6), (PromotionItem("SKU-1", 100),))
    p = plan_sku(inputs(), H, 3, promotions=[black_friday(cancelled=True), black_friday(promotion_id="X"), second])
    assert column(p, "promotion_uplift") == pytest.approx([15, 5 + 70, 0])


def test_forecast_is_floored_at_zero_but_components_are_kept() -> None:
    promo = black_friday(starts_on=H, ends_on=H + timedelta(days=6), cannibalized=(Cannibalization("SKU-1", 150),))
    p = plan_sku(inputs(), H, 1, promotions=[promo])
    assert p.weeks[0].promotion_uplift == pytest.approx(35 - 105)
    assert p.weeks[0].forecast == 0


# launches


def test_launch_copies_the_scaled_reference_baseline_ramping_from_the_launch_day() -> None:
    launch = Launch("L1", "NEW", date(2026, 12, 3), "REF", scale_pct=50, ramp_weeks=4)  # Thursday of week 1
    plans = plan_many([inputs("NEW", seed=None), inputs("REF", seed=100)], H, 6, launches=[launch])
    # 100 * 50% * ramp (k+1)/4, the launch week pro-rated to its 4 selling days (Thu-Sun)
    assert column(plans[0], "baseline") == pytest.approx([0, 50 * 0.25 * 4 / 7, 25, 37.5, 50, 50])
    alone = plan_sku(inputs("NEW", seed=None), H, 6, launches=[launch], reference_baselines={"REF": 100})
    assert alone == plans[0]


def test_launch_without_ramp_is_full_at_once_and_promotions_lift_it() -> None:
    launch = Launch("L1", "SKU-1", H, "REF")
    promo = black_friday(starts_on=week(1), ends_on=week(1) + timedelta(days=6))
    p = plan_sku(inputs(seed=None), H, 2, launches=[launch], promotions=[promo], reference_baselines={"REF": 90})
    assert column(p, "baseline") == [90, 90]
    assert column(p, "promotion_uplift") == pytest.approx([0, 45])


def test_launch_with_an_unknown_reference_is_planned_as_zero_with_an_exception() -> None:
    p = plan_sku(inputs("NEW", seed=None), H, 2, launches=[Launch("L1", "NEW", H, "GHOST")])
    assert column(p, "baseline") == [0, 0]
    assert [e.kind for e in p.exceptions] == ["launch-reference-missing"]


# demand sensing


def test_old_explained_or_small_spikes_do_nothing() -> None:
    spikes = (
        Spike("SKU-1", H - timedelta(days=28), 30, 10, explained=False),  # older than the four-week fade
        Spike("SKU-1", H, 30, 10, explained=True),  # a promotion accounts for it
        Spike("SKU-1", H, 5, 10, explained=False),  # run rate below the baseline: sensing never lowers
    )
    assert column(plan_sku(inputs(spikes=spikes), H, 4), "sensing_adjustment") == [0, 0, 0, 0]


# returns and replacements


def test_resellable_returns_arrive_in_their_week_and_replacements_add_to_requirements() -> None:
    sku = inputs(
        resellable_returns={
            H + timedelta(days=2): 5,
            H + timedelta(days=3): 1,
            week(1): 3,
            H - timedelta(days=1): 100,
            week(9): 7,
        },
        replacements={H + timedelta(days=6): 4},
    )
    p = plan_sku(sku, H, 3)
    assert column(p, "returns_receipts") == [6, 3, 0]
    assert column(p, "replacements") == [4, 0, 0]
    assert column(p, "gross_requirements") == [74, 70, 70]
    # w0: 0 + q + 6 - 74 >= 0 -> 68; w1: 70 - 3 = 67
    assert column(p, "mps_quantity") == [68, 67, 70]
