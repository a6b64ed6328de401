"""Property tests of ATP, nested allocation, promising and promises at risk on random supply and orders."""

import itertools
from datetime import date, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.planning_service.domain.allocation import AllocationPolicy, tier_availability
from services.planning_service.domain.atp import available_to_promise
from services.planning_service.domain.orders import OrderLine, Tier, priority_key, promised_week
from services.planning_service.domain.promises import (
    AtRiskLine,
    ChangeKind,
    PromiseRequest,
    Supply,
    all_promises_kept,
    atp_table,
    check_promise,
    diff_at_risk,
    review_promises,
)

H = date(2026, 11, 23)
BOOKED = datetime(2026, 11, 1)
TOL = 1e-6

quantities = st.one_of(st.just(0), st.integers(0, 150)).map(float)
tiers = st.sampled_from(list(Tier))


@st.composite
def supplies(draw: st.DrawFn, max_weeks: int = 10) -> Supply:
    weeks = draw(st.integers(1, max_weeks))
    return Supply(
        "SKU-1", H, float(draw(st.integers(0, 200))), tuple(draw(st.lists(quantities, min_size=weeks, max_size=weeks)))
    )


@st.composite
def policies(draw: st.DrawFn) -> AllocationPolicy:
    return AllocationPolicy({tier: float(draw(st.integers(0, 25))) for tier in Tier}, draw(st.integers(0, 21)))


@st.composite
def order_lines(draw: st.DrawFn, weeks: int) -> list[OrderLine]:
    count = draw(st.integers(0, 12))
    return [
        OrderLine(
            f"SO-{n}",
            "1",
            f"ACC-{n}",
            draw(tiers),
            "SKU-1",
            float(draw(st.integers(1, 120))),
            H + timedelta(days=draw(st.integers(-10, 7 * weeks + 6))),
            BOOKED + timedelta(hours=draw(st.integers(0, 500))),
        )
        for n in range(count)
    ]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_atp_is_never_negative_its_cumulative_never_falls_and_matches_the_look_ahead_closed_form(
    data: st.DataObject,
) -> None:
    rows, weeks = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 26))
    grid = st.lists(st.lists(quantities, min_size=weeks, max_size=weeks), min_size=rows, max_size=rows)
    on_hand = np.array(data.draw(st.lists(quantities, min_size=rows, max_size=rows)))
    receipts, committed = np.array(data.draw(grid)), np.array(data.draw(grid))
    atp = available_to_promise(on_hand, receipts, committed)
    assert (atp.atp >= 0).all()
    assert (np.diff(atp.cumulative_atp, axis=1) >= -TOL).all()
    assert (atp.atp[~atp.receipt_weeks] == 0).all()
    # Independent check: cumulative ATP with look-ahead is the least projected balance from commitments
    # only (on hand + receipts - commitments) over this and every later week, floored at zero.
    balance = on_hand[:, None] + np.cumsum(receipts - committed, axis=1)
    least_from_here = np.minimum.accumulate(balance[:, ::-1], axis=1)[:, ::-1]
    assert np.allclose(atp.cumulative_atp, np.maximum(least_from_here, 0.0))
    assert np.allclose(atp.oversold, np.maximum(-balance.min(axis=1), 0.0))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_tier_availability_is_the_least_slack_of_every_staircase_containing_the_request(data: st.DataObject) -> None:
    weeks = data.draw(st.integers(1, 4))
    cells = st.lists(st.lists(quantities, min_size=weeks, max_size=weeks), min_size=5, max_size=5)
    levels, committed = np.array(data.draw(cells)), np.array(data.draw(cells))
    committed[0] = 0.0  # the open share holds no commitments
    slack = np.zeros((5, weeks + 1))
    slack[:, 1:] = np.cumsum(levels - committed, axis=1)
    staircases = [sorted(c, reverse=True) for c in itertools.combinations_with_replacement(range(weeks + 1), 5)]
    available = tier_availability(levels, committed)
    for rank in range(1, 5):
        for due in range(weeks):
            brute = min(sum(slack[p, j[p]] for p in range(5)) for j in staircases if j[rank] > due)
            assert np.isclose(available[rank - 1, due], max(brute, 0.0))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_without_protection_every_tier_sees_the_cumulative_atp(data: st.DataObject) -> None:
    supply = data.draw(supplies())
    table = atp_table(supply, data.draw(order_lines(supply.weeks)), H)
    for w in table.weeks:
        for tier in Tier:
            assert np.isclose(w.available_by_tier[tier], w.cumulative_atp)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_higher_tiers_and_later_weeks_never_have_less(data: st.DataObject) -> None:
    supply = data.draw(supplies())
    today = H + timedelta(days=data.draw(st.integers(0, 30)))
    table = atp_table(supply, data.draw(order_lines(supply.weeks)), today, data.draw(policies()))
    by_tier = np.array([[w.available_by_tier[t] for w in table.weeks] for t in reversed(list(Tier))])  # stable first
    assert (by_tier >= -TOL).all()
    assert (np.diff(by_tier, axis=0) >= -TOL).all()
    assert (np.diff(by_tier, axis=1) >= -TOL).all()
    # Even the top tier gets no more than the plain cumulative ATP; it may get less, since a new promise
    # never pushes a booked line into a share above its own tier.
    assert (by_tier[-1] <= np.array([w.cumulative_atp for w in table.weeks]) + TOL).all()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_promises_the_check_accepts_never_exceed_supply_nor_break_a_booked_line(data: st.DataObject) -> None:
    supply = data.draw(supplies())
    policy = data.draw(policies())
    today = H + timedelta(days=data.draw(st.integers(0, 6)))
    booked: list[OrderLine] = []
    for n in range(data.draw(st.integers(1, 15))):
        request = PromiseRequest(
            data.draw(tiers),
            float(data.draw(st.integers(1, 150))),
            H + timedelta(days=data.draw(st.integers(0, 7 * supply.weeks + 6))),
        )
        check = check_promise(supply, booked, request, today, policy)
        assert check.can_promise == (request.quantity <= check.available + TOL)
        assert np.isclose(sum(d.quantity for d in check.draws), min(request.quantity, check.available))
        assert all(d.week_start <= request.requested_on for d in check.draws)
        if check.earliest_full_on is not None:
            later = PromiseRequest(request.tier, request.quantity, check.earliest_full_on)
            assert check_promise(supply, booked, later, today, policy).can_promise
        if check.can_promise:
            booked.append(
                OrderLine(f"SO-{n}", "1", "ACC", request.tier, "SKU-1", request.quantity, request.requested_on, BOOKED)
            )
    assert sum(x.open_quantity for x in booked) <= supply.on_hand + sum(supply.receipts) + TOL
    assert review_promises(supply, booked).at_risk == ()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_breaking_order_respects_priority_and_what_is_kept_fits_the_supply(data: st.DataObject) -> None:
    supply = data.draw(supplies(max_weeks=6))
    lines = data.draw(order_lines(supply.weeks))
    review = review_promises(supply, lines)
    by_key = {x.key: x for x in lines}
    at_risk = {x.key: x for x in review.at_risk}
    assert set(review.kept) | set(at_risk) | set(review.beyond_horizon) == set(by_key)

    def week_of(day: date) -> int:
        return promised_week(day, H)

    for broken in review.at_risk:
        assert 0 < broken.quantity_short <= broken.quantity + TOL
        if broken.new_earliest_on is not None:
            assert week_of(broken.new_earliest_on) > week_of(broken.promised_on)
        higher = by_key[broken.key]
        for key in review.kept:
            lower = by_key[key]
            if priority_key(higher) < priority_key(lower):
                # a kept lower-priority line due no later and for no less would have fitted in its place
                assert not (
                    week_of(lower.promised_on) <= week_of(higher.promised_on)
                    and lower.open_quantity >= higher.open_quantity
                )
    # Kept lines on their dates plus re-promised lines on their new dates fit the supply week by week.
    due = np.zeros(supply.weeks)
    for key in review.kept:
        due[week_of(by_key[key].promised_on)] += by_key[key].open_quantity
    for broken in review.at_risk:
        if broken.new_earliest_on is not None:
            due[week_of(broken.new_earliest_on)] += broken.quantity
    assert (supply.on_hand + np.cumsum(np.array(supply.receipts) - due) >= -TOL).all()


at_risk_lines = st.builds(
    AtRiskLine,
    order_id=st.sampled_from(["A", "B", "C", "D"]),
    line_id=st.just("1"),
    account_id=st.just("ACC"),
    tier=tiers,
    sku=st.just("SKU-1"),
    promised_on=st.just(H),
    quantity=st.just(50.0),
    quantity_short=st.sampled_from([5.0, 10.0]),
    new_earliest_on=st.sampled_from([None, H + timedelta(weeks=1)]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(at_risk_lines, unique_by=lambda x: x.key), st.lists(at_risk_lines, unique_by=lambda x: x.key))
def test_diff_applied_to_the_previous_review_gives_the_current_one(
    previous: list[AtRiskLine], current: list[AtRiskLine]
) -> None:
    changes = diff_at_risk(previous, current)
    state = {x.key: x for x in previous}
    for change in changes:
        if change.kind == ChangeKind.RESTORED:
            del state[change.line.key]
        else:
            assert state.get(change.line.key) != change.line  # only real changes
            state[change.line.key] = change.line
    assert state == {x.key: x for x in current}
    assert diff_at_risk(current, current) == []


@st.composite
def supplies_with_lines(draw: st.DrawFn) -> tuple[Supply, list[OrderLine]]:
    supply = draw(supplies())
    other = tuple(draw(st.lists(st.integers(0, 30).map(float), min_size=supply.weeks, max_size=supply.weeks)))
    supply = Supply(supply.sku, supply.horizon_start, supply.on_hand, supply.receipts, other)
    lines = draw(order_lines(supply.weeks))
    if lines and draw(st.booleans()):  # an older version of a line beside its newest
        lines.append(OrderLine(**{**_fields(lines[0]), "version": 0, "open_quantity": 500.0}))
    return supply, lines


def _fields(line: OrderLine) -> dict[str, object]:
    return {name: getattr(line, name) for name in OrderLine.__slots__}


@settings(max_examples=300, deadline=None)
@given(st.lists(supplies_with_lines(), min_size=1, max_size=6))
def test_every_promise_kept_is_only_said_when_the_review_keeps_every_line(
    skus: list[tuple[Supply, list[OrderLine]]],
) -> None:
    kept = all_promises_kept([supply for supply, _ in skus], [lines for _, lines in skus])
    for (supply, lines), all_kept in zip(skus, kept, strict=True):
        review = review_promises(supply, lines)
        if all_kept:
            assert review.at_risk == ()
        # Whole quantities, no older versions beside the newest: the check is exact, what fits at once is kept.
        if len({line.key for line in lines}) == len(lines):
            assert all_kept == (review.at_risk == ())
