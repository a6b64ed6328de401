"""History rules with hand-computed expectations: zero-filling, promotion and spike cleaning, demand classes."""

from datetime import date, timedelta

import numpy as np
import pytest

from services.planning_service.domain import DemandClass, Promotion, PromotionItem, Spike
from services.planning_service.domain.history import (
    distorted_mask,
    promotion_history_weeks,
    replace_distorted,
    spike_excess,
    weekly_history,
)
from services.planning_service.domain.intermittent import classify, demand_profile

H = date(2026, 11, 23)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def test_every_week_from_the_first_report_to_the_last_complete_week_is_observed_missing_as_zero() -> None:
    # a warehouse reporting only order days: weeks -4, -2 and -1 have no line at all
    history = {week(-5): 10.0, week(-3) + timedelta(days=2): 4.0, week(-3) + timedelta(days=5): 1.0, week(0): 99.0}
    units, observed = weekly_history([history, {}], H, weeks=6)
    assert units.tolist() == [[0, 10, 0, 5, 0, 0], [0] * 6]
    assert observed.tolist() == [[False, True, True, True, True, True], [False] * 6]


def test_promotion_dip_and_cannibalized_weeks_are_marked_distorted() -> None:
    promo = Promotion(
        "P",
        week(-4) + timedelta(days=5),  # Saturday of week -4 to Tuesday of week -3
        week(-3) + timedelta(days=1),
        (PromotionItem("A", 50),),
        post_promo_dip_pct=20,
        post_promo_dip_weeks=1,  # Wednesday of week -3 to Tuesday of week -2
        cannibalized=(),
    )
    future = Promotion("F", week(1), week(1) + timedelta(days=3), (PromotionItem("A", 50),))
    weeks = promotion_history_weeks([promo, future], H)
    mask = distorted_mask(["A", "B"], weeks, H, weeks=6)
    assert mask.tolist() == [[False, False, True, True, True, False], [False] * 6]


def test_a_distorted_week_gets_the_median_of_its_clean_neighbours() -> None:
    units = np.array([[10.0, 12.0, 50.0, 14.0, 16.0], [10.0, 20.0, 30.0, 99.0, 0.0]])
    observed = np.array([[True] * 5, [True, True, True, True, False]])
    distorted = np.array([[False, False, True, False, False], [False, False, False, True, False]])
    cleaned = replace_distorted(units, observed, distorted)
    # row 0: median(12, 10, 14, 16) = 13; row 1: only earlier weeks, median(30, 20, 10) = 20
    assert cleaned.tolist() == [[10, 12, 13, 14, 16], [10, 20, 30, 20, 0]]
    assert units[0, 2] == 50  # the input is left alone


def test_a_distorted_week_far_from_clean_weeks_gets_the_median_of_all_clean_weeks() -> None:
    units = np.array([[4.0, 40.0] + [100.0] * 20 + [10.0, 30.0]])
    distorted = np.zeros_like(units, dtype=bool)
    distorted[0, 2:22] = True
    cleaned = replace_distorted(units, np.ones_like(distorted), distorted)
    assert cleaned[0, 2] == 22  # median(40, 4): the clean weeks within reach on its left
    assert cleaned[0, 11] == 20  # nothing within 8 weeks: median(4, 40, 10, 30)
    assert cleaned[0, 21] == 20  # median(10, 30)


def test_spike_excess_is_what_the_spike_days_ordered_above_twice_the_detectors_baseline() -> None:
    spikes = [
        Spike("A", week(-1) + timedelta(days=2), 50, 10, False),  # 50 - 2 * 10
        Spike("A", week(-1) + timedelta(days=3), 60, 35, False),  # below twice its baseline: ordinary noise
        Spike("A", week(-2), 25, 5, False),
        Spike("A", week(-9), 25, 5, False),  # before the history window
    ]
    assert spike_excess([spikes, []], H, weeks=3).tolist() == [[0, 15, 30], [0, 0, 0]]


@pytest.mark.parametrize(
    ("units", "adi", "cv2", "kind"),
    [
        ([10, 12, 8, 10], 1.0, 0.02, DemandClass.SMOOTH),  # var (0+4+4+0)/4 = 2, mean 10
        ([1, 10, 1, 10], 1.0, 20.25 / 30.25, DemandClass.ERRATIC),
        ([0, 3, 0, 0, 5, 0, 4, 0], 8 / 3, (2 / 3) / 16, DemandClass.INTERMITTENT),
        ([0, 0, 1, 0, 20, 0], 3.0, 90.25 / 110.25, DemandClass.LUMPY),
    ],
)
def test_demand_class_by_average_demand_interval_and_cv2(
    units: list[float], adi: float, cv2: float, kind: DemandClass
) -> None:
    row = np.array([units], dtype=float)
    found_adi, found_cv2 = demand_profile(row, np.ones_like(row, dtype=bool))
    assert found_adi[0] == pytest.approx(adi)
    assert found_cv2[0] == pytest.approx(cv2)
    assert classify(float(found_adi[0]), float(found_cv2[0])) is kind


def test_demand_profile_counts_only_observed_weeks_and_no_demand_is_infinitely_sparse() -> None:
    units = np.array([[0.0, 0.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    observed = np.array([[False, False, True, True], [True] * 4])
    adi, cv2 = demand_profile(units, observed)
    assert adi.tolist() == [2.0, np.inf]
    assert cv2.tolist() == [0.0, 0.0]
    assert classify(np.inf, 0.0).sporadic
