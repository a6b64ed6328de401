"""Which promotion, if any, explains a SKU's orders on a day."""

from datetime import date, timedelta

import pytest

from services.fulfillment_service.domain import (
    PromotionWindow,
    Spike,
    explain_spike,
    explaining_promotion,
)

BF = PromotionWindow("BF-2026", frozenset({"SKU-1", "SKU-2"}), date(2026, 11, 27), date(2026, 11, 30))


@pytest.mark.parametrize("day", [date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 30)])
def test_an_active_promotion_of_the_sku_explains_every_day_it_covers(day: date) -> None:
    assert explaining_promotion("SKU-1", day, [BF]) == "BF-2026"


@pytest.mark.parametrize("day", [date(2026, 11, 26), date(2026, 12, 1)])
def test_days_outside_the_window_are_not_explained(day: date) -> None:
    assert explaining_promotion("SKU-1", day, [BF]) is None


def test_a_promotion_of_another_sku_does_not_explain() -> None:
    assert explaining_promotion("SKU-9", date(2026, 11, 28), [BF]) is None


def test_a_cancelled_promotion_does_not_explain() -> None:
    cancelled = PromotionWindow(BF.promotion_id, BF.skus, BF.starts_on, BF.ends_on, cancelled=True)
    assert explaining_promotion("SKU-1", date(2026, 11, 28), [cancelled]) is None


def test_the_most_recently_started_promotion_wins_then_the_smallest_id() -> None:
    early = PromotionWindow("A-EARLY", frozenset({"SKU-1"}), date(2026, 11, 1), date(2026, 12, 31))
    late_b = PromotionWindow("B-LATE", frozenset({"SKU-1"}), date(2026, 11, 27), date(2026, 11, 28))
    late_a = PromotionWindow("A-LATE", frozenset({"SKU-1"}), date(2026, 11, 27), date(2026, 11, 29))
    day = date(2026, 11, 28)
    assert explaining_promotion("SKU-1", day, [early, late_b, late_a]) == "A-LATE"
    assert explaining_promotion("SKU-1", day, [late_a, late_b, early]) == "A-LATE"
    assert explaining_promotion("SKU-1", day + timedelta(days=2), [early, late_b, late_a]) == "A-EARLY"


def test_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError):
        PromotionWindow("X", frozenset({"SKU-1"}), date(2026, 11, 2), date(2026, 11, 1))


def test_explain_spike_sets_and_clears_the_promotion() -> None:
    spike = Spike(
        day=date(2026, 11, 28),
        units=250,
        baseline=100,
        seasonal_baseline=100,
        level=100,
        sigma=10,
        ratio=2.5,
        excess_units=150,
        z_score=15,
    )
    explained = explain_spike(spike, "SKU-1", [BF])
    assert (explained.sku, explained.explained_by_promotion_id) == ("SKU-1", "BF-2026")
    assert explain_spike(explained, "SKU-1", []).explained_by_promotion_id is None
