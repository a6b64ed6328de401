"""Property tests of the contract invariants on random items, promotions and signals; batch = single SKU."""

import math
import random
from datetime import date, timedelta

import numpy as np
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from services.planning_service.domain import (
    Cannibalization,
    Item,
    Launch,
    Promotion,
    PromotionItem,
    SkuInputs,
    SkuPlan,
    Spike,
    baseline_level,
    mps,
    plan_many,
    plan_sku,
)
from services.planning_service.domain.mps import NOISE

H = date(2026, 11, 23)
WEEKS = 26
SKUS = ("A", "B", "C")

days = st.integers(min_value=-60, max_value=200).map(lambda d: H + timedelta(days=d))


@st.composite
def items(draw: st.DrawFn, sku: str = "A") -> Item:
    return Item(
        sku,
        sku,
        on_hand=draw(st.integers(0, 600)),
        safety_stock=draw(st.integers(0, 150)),
        lot_size=draw(st.sampled_from([1, 5, 12, 50])),
        weekly_capacity=draw(st.none() | st.integers(0, 400).map(float)),
        frozen_weeks=draw(st.integers(0, 4)),
        baseline_weekly_demand=draw(st.none() | st.floats(0, 300)),
    )


@st.composite
def promotions(draw: st.DrawFn) -> Promotion:
    start = draw(days)
    return Promotion(
        draw(st.sampled_from(["P1", "P2", "P3"])),
        start,
        start + timedelta(days=draw(st.integers(0, 40))),
        tuple(PromotionItem(s, draw(st.floats(-99, 400))) for s in draw(st.lists(st.sampled_from(SKUS), min_size=1))),
        post_promo_dip_pct=draw(st.floats(0, 100)),
        post_promo_dip_weeks=draw(st.integers(0, 4)),
        cannibalized=tuple(Cannibalization(s, draw(st.floats(0, 100))) for s in draw(st.lists(st.sampled_from(SKUS)))),
        cancelled=draw(st.booleans()),
    )


@st.composite
def sku_inputs(draw: st.DrawFn) -> SkuInputs:
    item = draw(items())
    history = draw(st.dictionaries(st.integers(1, 60).map(lambda k: H - timedelta(weeks=k)), st.floats(0, 500)))
    spikes = tuple(
        Spike("A", draw(days), draw(st.floats(0, 200)), 10, draw(st.booleans())) for _ in range(draw(st.integers(0, 2)))
    )
    per_day = st.dictionaries(days, st.floats(0, 50), max_size=4)
    return SkuInputs(item, history, spikes, draw(per_day), draw(per_day))


def check_invariants(inputs: SkuInputs, plan: SkuPlan) -> None:
    item = inputs.item
    ceiling = math.inf if item.weekly_capacity is None else item.weekly_capacity
    available = item.on_hand
    for w in plan.weeks:
        assert w.forecast == max(0.0, w.baseline + w.promotion_uplift + w.sensing_adjustment)
        assert w.gross_requirements == w.forecast + w.replacements
        assert math.isclose(
            w.projected_available,
            available + w.mps_quantity + w.returns_receipts - w.gross_requirements,
            rel_tol=1e-12,
            abs_tol=1e-9,
        )
        available = w.projected_available
        assert w.mps_quantity >= 0
        assert w.mps_quantity <= ceiling + 1e-9
        assert abs(w.mps_quantity / item.lot_size - round(w.mps_quantity / item.lot_size)) < 1e-9
        assert w.baseline >= 0 and w.sensing_adjustment >= 0 and w.capacity_shortfall >= 0
        assert w.capacity == item.weekly_capacity


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sku_inputs(), st.lists(promotions(), max_size=3))
# a deficit that grows by about a millionth of a unit a week, without capacity: every step is reported
@example(SkuInputs(Item("A", "A", 0, 0, 1, 0.0, 0, 1e-6), {}, (), {}, {}), [])
def test_contract_invariants_hold_every_week(inputs: SkuInputs, promos: list[Promotion]) -> None:
    plan = plan_sku(inputs, H, WEEKS, promotions=promos)
    check_invariants(inputs, plan)
    ss = inputs.item.safety_stock
    cumulative_shortfall = 0.0
    for w in plan.weeks:
        cumulative_shortfall += w.capacity_shortfall
        # every unit below safety stock has been reported as shortfall in this week or before
        assert cumulative_shortfall >= ss - w.projected_available - 1e-6
    if not any(w.capacity_shortfall for w in plan.weeks):
        assert all(w.projected_available >= ss - 1e-6 for w in plan.weeks)
        assert plan.conflicts == ()
    else:
        (conflict,) = plan.conflicts
        assert math.isclose(conflict.total_shortfall, sum(w.capacity_shortfall for w in plan.weeks))


@settings(max_examples=60, deadline=None)
@given(sku_inputs(), st.lists(promotions(), max_size=3))
def test_with_unlimited_capacity_and_no_fence_safety_stock_always_holds(
    inputs: SkuInputs, promos: list[Promotion]
) -> None:
    item = inputs.item
    unlimited = Item(
        item.sku,
        item.name,
        item.on_hand,
        item.safety_stock,
        item.lot_size,
        None,
        0,
        item.baseline_weekly_demand,
    )
    plan = plan_sku(
        SkuInputs(unlimited, inputs.history, inputs.spikes, inputs.resellable_returns, inputs.replacements),
        H,
        WEEKS,
        promotions=promos,
    )
    assert all(w.projected_available >= item.safety_stock - 1e-6 for w in plan.weeks)
    assert all(w.capacity_shortfall == 0 for w in plan.weeks)


@settings(max_examples=60, deadline=None)
@given(sku_inputs(), st.lists(promotions(), max_size=3))
def test_shortfall_only_after_every_earlier_unfrozen_week_runs_at_capacity(
    inputs: SkuInputs, promos: list[Promotion]
) -> None:
    plan = plan_sku(inputs, H, WEEKS, promotions=promos)
    item = inputs.item
    if item.weekly_capacity is None:
        return
    full = math.floor(item.weekly_capacity / item.lot_size + 1e-9) * item.lot_size
    for index, w in enumerate(plan.weeks):
        if w.capacity_shortfall > 0:
            assert all(math.isclose(e.mps_quantity, full) for e in plan.weeks[: index + 1])


@settings(max_examples=60, deadline=None)
@given(sku_inputs(), st.lists(promotions(), max_size=3), st.lists(promotions(), max_size=2))
def test_frozen_weeks_keep_the_previous_plan(
    inputs: SkuInputs, promos: list[Promotion], new_promos: list[Promotion]
) -> None:
    before = plan_sku(inputs, H, WEEKS, promotions=promos)
    previous = {w.week_start: w.mps_quantity for w in before.weeks}
    replanned_inputs = SkuInputs(inputs.item, inputs.history, (), {}, {}, previous_mps=previous)
    after = plan_sku(replanned_inputs, H, WEEKS, promotions=promos + new_promos)
    check_invariants(replanned_inputs, after)
    fence = min(inputs.item.frozen_weeks, WEEKS)
    assert [w.mps_quantity for w in after.weeks[:fence]] == [w.mps_quantity for w in before.weeks[:fence]]
    for exception in after.exceptions:
        assert exception.kind == "frozen-fence"
        assert exception.planned_quantity == previous[exception.week_start]
        assert exception.wanted_quantity != exception.planned_quantity


def random_batch(rng: random.Random, count: int) -> tuple[list[SkuInputs], list[Promotion], list[Launch]]:
    skus = [f"SKU-{i}" for i in range(count)]
    batch = []
    for sku in skus:
        item = Item(
            sku,
            sku,
            on_hand=rng.randint(0, 400),
            safety_stock=rng.randint(0, 80),
            lot_size=rng.choice([1, 10, 24]),
            weekly_capacity=rng.choice([None, 60.0, 150.0, 400.0]),
            frozen_weeks=rng.randint(0, 3),
            baseline_weekly_demand=rng.choice([None, 40.0]),
        )
        history = {
            H - timedelta(weeks=k): rng.uniform(0, 200) for k in range(1, rng.randint(1, 80)) if rng.random() < 0.9
        }
        spikes = tuple(
            Spike(sku, H - timedelta(days=rng.randint(0, 20)), rng.uniform(0, 80), 5, rng.random() < 0.3)
            for _ in range(rng.randint(0, 2))
        )
        returns = {H + timedelta(days=rng.randint(-10, 200)): rng.uniform(0, 20)}
        previous = {H + timedelta(weeks=k): float(rng.randint(0, 3) * item.lot_size) for k in range(3)}
        batch.append(SkuInputs(item, history, spikes, returns, dict(returns), previous if rng.random() < 0.5 else None))
    promos = []
    for n in range(count // 3):
        start = H + timedelta(days=rng.randint(-40, 170))
        promos.append(
            Promotion(
                f"P{n}",
                start,
                start + timedelta(days=rng.randint(0, 30)),
                tuple(PromotionItem(rng.choice(skus), rng.uniform(-50, 300)) for _ in range(rng.randint(1, 3))),
                rng.uniform(0, 50),
                rng.randint(0, 3),
                tuple(Cannibalization(rng.choice(skus), rng.uniform(0, 40)) for _ in range(rng.randint(0, 2))),
                rng.random() < 0.1,
            )
        )
    launches = [
        Launch(
            f"L{n}",
            rng.choice(skus),
            H + timedelta(days=rng.randint(-30, 100)),
            rng.choice(skus),
            rng.uniform(20, 150),
            rng.randint(0, 6),
        )
        for n in range(count // 20)
    ]
    return batch, promos, launches


def test_plan_many_equals_plan_sku_for_each_sku() -> None:
    rng = random.Random(20261123)
    batch, promos, launches = random_batch(rng, 2000)
    plans = plan_many(batch, H, promotions=promos, launches=launches)
    assert [p.sku for p in plans] == [inp.item.sku for inp in batch]
    launched = {launch.sku for launch in launches}
    sample = rng.sample(range(len(batch)), 60) + [int(sku.split("-")[1]) for sku in sorted(launched)[:20]]
    by_sku = {inp.item.sku: inp for inp in batch}
    for row in sample:
        references = {
            launch.reference_sku: baseline_level(by_sku[launch.reference_sku], H, promos)
            for launch in launches
            if launch.sku == batch[row].item.sku
        }
        single = plan_sku(batch[row], H, promotions=promos, launches=launches, reference_baselines=references)
        check_invariants(batch[row], single)
        assert single == plans[row]
    assert any(p.conflicts for p in plans) and any(p.exceptions for p in plans)  # the batch exercises both


deficits = st.lists(
    st.lists(st.floats(0, 500) | st.floats(0, 3e-6) | st.just(0.0), min_size=WEEKS, max_size=WEEKS),
    min_size=1,
    max_size=4,
).map(np.array)


@settings(max_examples=100, deadline=None)
@given(deficits)
def test_a_shortfall_is_the_rise_of_the_deficit_whenever_no_rise_is_noise(deficit: np.ndarray) -> None:
    """Only a rise below the noise threshold is carried to a later week; every other week reports the deficit's
    rise since the week before, as a plain difference would."""
    deficit[deficit < NOISE] = 0.0
    rises = np.diff(deficit, axis=1, prepend=0.0)
    assume(not ((rises > 0) & (rises < NOISE)).any())
    assert np.array_equal(mps._carried(deficit), np.maximum(rises, 0.0))


@settings(max_examples=150, deadline=None)
@given(deficits)
def test_the_fast_shortfall_is_the_carried_one_whatever_the_rises(deficit: np.ndarray) -> None:
    deficit[deficit < NOISE] = 0.0
    assert np.array_equal(mps._shortfall(deficit), mps._carried(deficit))
