"""Which booked promises a revised supply breaks (lowest tier, latest booked first), and the published diff."""

from dataclasses import replace
from datetime import date, datetime, timedelta

from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.domain.promises import (
    AtRiskLine,
    ChangeKind,
    PromiseChange,
    Supply,
    diff_at_risk,
    review_promises,
)

H = date(2026, 11, 23)
BOOKED = datetime(2026, 11, 1, 9, 0)


def week(n: int) -> date:
    return H + timedelta(weeks=n)


def line(order_id: str, tier: Tier, quantity: float, promised_on: date, booked_days: int = 0) -> OrderLine:
    return OrderLine(
        order_id, "1", f"ACC-{order_id}", tier, "SKU-1", quantity, promised_on, BOOKED + timedelta(days=booked_days)
    )


LINES = [
    line("S1", Tier.STRATEGIC, 60, week(1), booked_days=1),
    line("T1", Tier.STABLE, 50, week(1), booked_days=0),  # booked before S1, but a lower tier
    line("I1", Tier.INTEGRATED, 30, week(3), booked_days=2),
    line("T2", Tier.STABLE, 20, week(3), booked_days=3),
]


def test_ample_supply_keeps_every_promise() -> None:
    review = review_promises(Supply("SKU-1", H, 0, (0, 200, 0, 100)), LINES)
    assert review.at_risk == ()
    assert review.kept == (("S1", "1"), ("I1", "1"), ("T1", "1"), ("T2", "1"))


def test_a_capacity_cut_breaks_the_stable_promises_and_keeps_the_strategic_one() -> None:
    # Supply 100 in week 1 and 50 in week 3. Served in priority order:
    # S1 60 by w1 (room 100) kept; I1 30 by w3 (room 90) kept; T1 50 by w1: room 40, short 10, first week
    # with room for 50 is w3 (60 left), re-promised there; T2 20 by w3: room 10, short 10, no week covers it.
    review = review_promises(Supply("SKU-1", H, 0, (0, 100, 0, 50)), LINES)
    assert review.kept == (("S1", "1"), ("I1", "1"))
    assert review.at_risk == (
        AtRiskLine("T1", "1", "ACC-T1", Tier.STABLE, "SKU-1", week(1), 50, 10, week(3)),
        AtRiskLine("T2", "1", "ACC-T2", Tier.STABLE, "SKU-1", week(3), 20, 10, None),
    )


def test_within_a_tier_the_latest_booking_breaks_first() -> None:
    lines = [
        line("LATE", Tier.EMERGING, 30, week(1), booked_days=5),
        line("EARLY", Tier.EMERGING, 30, week(1), booked_days=1),
    ]
    review = review_promises(Supply("SKU-1", H, 10, (0, 40)), lines)
    assert review.kept == (("EARLY", "1"),)
    assert [x.order_id for x in review.at_risk] == ["LATE"]
    assert review.at_risk[0].quantity_short == 10
    assert review.at_risk[0].new_earliest_on is None


def test_a_line_that_cannot_be_met_in_full_holds_no_supply_from_lower_lines() -> None:
    lines = [line("BIG", Tier.STRATEGIC, 500, week(1)), line("SMALL", Tier.STABLE, 40, week(1))]
    review = review_promises(Supply("SKU-1", H, 0, (0, 100)), lines)
    assert review.kept == (("SMALL", "1"),)
    (big,) = review.at_risk
    assert (big.order_id, big.quantity_short, big.new_earliest_on) == ("BIG", 400, None)


def test_on_hand_covers_past_due_lines_now_and_later_lines_are_not_judged() -> None:
    lines = [line("PAST", Tier.STABLE, 10, H - timedelta(days=4)), line("FAR", Tier.STABLE, 10, week(9))]
    review = review_promises(Supply("SKU-1", H, 10, (0, 0)), lines)
    assert review.kept == (("PAST", "1"),)
    assert review.beyond_horizon == (("FAR", "1"),)


def test_replacements_are_served_before_any_order_line() -> None:
    review = review_promises(Supply("SKU-1", H, 50, (0,), other_commitments=(30,)), [line("S", Tier.STRATEGIC, 30, H)])
    assert review.at_risk[0].quantity_short == 10


def test_diff_publishes_new_changed_and_restored_lines_only() -> None:
    a = AtRiskLine("A", "1", "ACC-A", Tier.STABLE, "SKU-1", week(1), 50, 10, week(3))
    b = AtRiskLine("B", "1", "ACC-B", Tier.STABLE, "SKU-1", week(3), 20, 10, None)
    c = AtRiskLine("C", "1", "ACC-C", Tier.EMERGING, "SKU-1", week(2), 5, 5, week(4))
    b_worse = replace(b, quantity_short=15)
    assert diff_at_risk([a, b], [b_worse, c]) == [
        PromiseChange(ChangeKind.RESTORED, a),
        PromiseChange(ChangeKind.AT_RISK, b_worse),
        PromiseChange(ChangeKind.AT_RISK, c),
    ]


def test_diff_ignores_float_noise_and_identical_reviews() -> None:
    a = AtRiskLine("A", "1", "ACC-A", Tier.STABLE, "SKU-1", week(1), 50, 10, week(3))
    assert diff_at_risk([a], [replace(a, quantity_short=10 + 1e-12)]) == []
    assert diff_at_risk([a], [a]) == []
    assert diff_at_risk([], []) == []
    moved = replace(a, new_earliest_on=week(4))
    assert diff_at_risk([a], [moved]) == [PromiseChange(ChangeKind.AT_RISK, moved)]
