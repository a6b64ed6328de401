"""Property tests of the cost-to-serve ledger: a function of the newest facts, totals that add up."""

import itertools
import math
import random
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.returns_service.costing import (
    CostRates,
    LedgerFacts,
    OrderFact,
    OrderLineFact,
    ShipmentFact,
    ShipmentLineFact,
    build_ledger,
    sum_totals,
    totals_by_account,
    totals_by_segment,
    whale_curve,
)
from services.returns_service.domain import (
    Complaint,
    ComplaintCategory,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    Segment,
    Severity,
)

START = date(2026, 9, 1)
AS_OF = date(2026, 12, 15)
ACCOUNTS = ("A", "B", "C", "D")
days = st.integers(0, 120).map(lambda d: START + timedelta(days=d))
money = st.none() | st.integers(1, 100).map(float)


@st.composite
def order_lines(draw: st.DrawFn) -> tuple[OrderLineFact, ...]:
    count = draw(st.integers(1, 3))
    return tuple(
        OrderLineFact(
            f"L{n}",
            draw(st.sampled_from(["SKU-1", "SKU-2"])),
            draw(st.integers(0, 50)),
            draw(days),
            draw(money),
            draw(money),
        )
        for n in range(count)
    )


@st.composite
def facts(draw: st.DrawFn) -> LedgerFacts:
    orders = [
        OrderFact(
            f"SO-{n}",
            draw(st.sampled_from(ACCOUNTS)),
            draw(st.integers(1, 4)),
            draw(days),
            draw(order_lines()),
            draw(st.booleans()),
            draw(st.booleans()),
        )
        for n in range(draw(st.integers(0, 6)))
    ]
    shipments = [
        ShipmentFact(
            f"SH-{n}",
            f"SO-{draw(st.integers(0, 6))}",  # sometimes an order not (yet) known
            draw(days),
            tuple(
                ShipmentLineFact(f"L{draw(st.integers(0, 3))}", draw(st.integers(1, 30)))
                for _ in range(draw(st.integers(1, 2)))
            ),
        )
        for n in range(draw(st.integers(0, 6)))
    ]
    returns = [
        ReturnRecord(
            f"R-{n}",
            draw(st.sampled_from(["SKU-1", "SKU-2", "SKU-3"])),
            draw(st.integers(1, 10)),
            draw(st.sampled_from(ACCOUNTS)),
            ReturnReason.DEFECTIVE,
            draw(st.sampled_from(list(ReturnCondition))),
            draw(days),
            draw(st.none() | st.sampled_from(list(Resolution))),
            draw(st.none() | st.sampled_from([f"SO-{i}" for i in range(6)])),
        )
        for n in range(draw(st.integers(0, 4)))
    ]
    complaints = [
        Complaint(
            f"C-{n}", draw(st.sampled_from(ACCOUNTS)), None, ComplaintCategory.OTHER, Severity.LOW, "", draw(days)
        )
        for n in range(draw(st.integers(0, 4)))
    ]
    return LedgerFacts(orders, shipments, returns, complaints)


@settings(max_examples=200, deadline=None)
@given(facts(), st.randoms(use_true_random=False), st.data())
def test_duplicates_older_versions_and_arrival_order_change_nothing(
    base: LedgerFacts, rng: random.Random, data: st.DataObject
) -> None:
    def noisy(items: list[object]) -> list[object]:
        copies = items + [x for x in items if rng.random() < 0.5]
        rng.shuffle(copies)
        return copies

    older = [
        OrderFact(
            o.order_id, o.account_id, o.version - 1, o.ordered_on, data.draw(order_lines()), o.rush, not o.cancelled
        )
        for o in base.orders
        if o.version > 1
    ]
    replayed = LedgerFacts(
        noisy([*base.orders, *older]),  # type: ignore[arg-type]
        noisy(list(base.shipments)),  # type: ignore[arg-type]
        noisy(list(base.returns)),  # type: ignore[arg-type]
        noisy(list(base.complaints)),  # type: ignore[arg-type]
    )
    assert build_ledger(replayed, CostRates(), AS_OF) == build_ledger(base, CostRates(), AS_OF)


@settings(max_examples=200, deadline=None)
@given(facts(), st.dictionaries(st.sampled_from(ACCOUNTS), st.sampled_from(list(Segment))))
def test_totals_per_segment_are_the_sums_of_their_accounts_and_the_whale_curve_adds_up(
    base: LedgerFacts, segments: dict[str, Segment]
) -> None:
    entries = build_ledger(base, CostRates(), AS_OF)
    for entry in entries:
        assert math.isclose(entry.cost_to_serve, sum(p.amount for p in entry.pools), abs_tol=1e-9)
        assert math.isclose(entry.contribution, entry.revenue - entry.cost_of_goods - entry.cost_to_serve, abs_tol=1e-9)
    accounts = totals_by_account(entries, segments)
    for row in totals_by_segment(accounts):
        members = [a for a in accounts if a.segment == row.segment]
        assert row.accounts == len(members)
        for name in ("revenue", "cost_of_goods", "cost_to_serve", "contribution", "returned_units"):
            assert math.isclose(getattr(row.totals, name), sum(getattr(a.totals, name) for a in members), abs_tol=1e-6)
        for pool in row.totals.pools:
            member_pools = [p for a in members for p in a.totals.pools if p.name == pool.name]
            assert math.isclose(pool.count, sum(p.count for p in member_pools), abs_tol=1e-6)
            assert math.isclose(pool.amount, sum(p.amount for p in member_pools), abs_tol=1e-6)
    everything = sum_totals(entries)
    assert math.isclose(
        sum(s.totals.contribution for s in totals_by_segment(accounts)), everything.contribution, abs_tol=1e-6
    )
    curve = whale_curve(accounts)
    assert [p.rank for p in curve] == list(range(1, len(accounts) + 1))
    assert all(a.contribution >= b.contribution for a, b in itertools.pairwise(curve))
    if curve:
        assert math.isclose(curve[-1].cumulative_contribution, everything.contribution, abs_tol=1e-6)
        if everything.contribution > 0:
            assert curve[-1].cumulative_share is not None
            assert math.isclose(curve[-1].cumulative_share, 1.0)
