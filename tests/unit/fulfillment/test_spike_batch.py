"""The spike rule over many SKUs at once (`judge_batch`) gives exactly the verdicts of the day-by-day rule
(`detect_spikes` over `days_to_reevaluate`), figure for figure, on random series, rules and changes."""

from __future__ import annotations

import random
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.fulfillment_service.domain import (
    DenseSeries,
    SparseSeries,
    SpikeRule,
    days_to_reevaluate,
    detect_spikes,
    judge_batch,
    judge_report,
)

START = date(2026, 1, 5)


def random_series(rng: random.Random, days: int) -> dict[date, float]:
    """Noisy weekly-seasonal orders with gaps, zeros, level shifts and outliers."""
    level = rng.choice([0, 3, 20, 100, 1_000])
    weekday = [rng.uniform(0.2, 1.8) for _ in range(7)]
    series: dict[date, float] = {}
    for i in range(days):
        if i and rng.random() < 0.15:
            continue  # no report that day (counts as 0 inside the observed range)
        if rng.random() < 0.02:
            level = rng.choice([0, 3, 20, 100, 1_000])
        units = max(0, round(level * weekday[i % 7] + rng.gauss(0, 1 + level**0.5)))
        if rng.random() < 0.05:
            units *= rng.choice([3, 5, 10])
        if rng.random() < 0.05:
            units = rng.choice([0, units, units + 1])
        series[START + timedelta(days=i)] = float(units)
    return series


def reference(
    series: dict[str, dict[date, float]], changed: dict[str, set[date]], rule: SpikeRule
) -> dict[tuple[str, date], object]:
    verdicts: dict[tuple[str, date], object] = {}
    for sku, totals in series.items():
        days = days_to_reevaluate(changed[sku], rule, until=max(totals))
        for day, verdict in detect_spikes(totals, days, rule, sku=sku).items():
            verdicts[(sku, day)] = verdict
    return verdicts


@st.composite
def rules(draw: st.DrawFn) -> SpikeRule:
    weeks = draw(st.integers(1, 10))
    return SpikeRule(
        baseline_weeks=weeks,
        level_days=draw(st.integers(1, 80)),
        min_history_days=draw(st.integers(1, weeks * 7)),
        min_same_weekday=draw(st.integers(1, 4)),
        z_threshold=draw(st.sampled_from([0.0, 1.5, 3.0])),
        min_ratio=draw(st.sampled_from([0.0, 1.2, 1.5])),
        min_units=draw(st.sampled_from([0.0, 5.0, 10.0])),
        min_sigma=draw(st.sampled_from([0.5, 1.0, 4.0])),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rule=rules())
def test_the_batch_rule_gives_the_day_by_day_verdicts(seed: int, rule: SpikeRule) -> None:
    rng = random.Random(seed)
    series = {f"SKU-{s}": random_series(rng, rng.randint(1, 160)) for s in range(rng.randint(1, 6))}
    changed = {
        sku: set(rng.sample(sorted(totals), k=min(len(totals), rng.randint(1, 12)))) for sku, totals in series.items()
    }
    batch = judge_batch({sku: DenseSeries.of(totals) for sku, totals in series.items()}, changed, rule)
    expected = reference(series, changed, rule)
    assert {key for key, verdict in expected.items() if verdict is not None} == set(batch.spikes)
    for (sku, day), verdict in expected.items():
        assert batch.judged(sku, day)
        assert batch.spikes.get((sku, day)) == verdict
    judged = {(sku, day) for sku in series for day in batch.judged_days(sku)}
    assert judged == set(expected)


def test_the_default_rule_on_many_long_series_matches() -> None:
    rng = random.Random(7)
    rule = SpikeRule()
    series = {f"SKU-{s:03d}": random_series(rng, 400) for s in range(40)}
    changed = {sku: {day for day in totals if rng.random() < 0.05} or {max(totals)} for sku, totals in series.items()}
    batch = judge_batch({sku: DenseSeries.of(totals) for sku, totals in series.items()}, changed, rule)
    expected = reference(series, changed, rule)
    assert sum(v is not None for v in expected.values()) > 20  # the series do spike
    assert batch.spikes == {key: verdict for key, verdict in expected.items() if verdict is not None}
    assert all(batch.judged(sku, day) for sku, day in expected)


def test_history_loaded_from_a_later_day_judges_as_the_whole_history_does() -> None:
    """The store loads a SKU from `window_days` before its first changed day, with that day marked observed
    (0 when absent): the verdicts are those of the whole series."""
    rng = random.Random(11)
    rule = SpikeRule()
    whole = random_series(rng, 300)
    changed = {"SKU": {START + timedelta(days=200), START + timedelta(days=260)}}
    loaded_from = min(changed["SKU"]) - timedelta(days=rule.window_days)
    loaded = {day: units for day, units in whole.items() if day >= loaded_from}
    loaded.setdefault(loaded_from, 0.0)
    batch = judge_batch({"SKU": DenseSeries.of(loaded)}, changed, rule)
    expected = reference({"SKU": whole}, changed, rule)
    assert batch.spikes == {key: verdict for key, verdict in expected.items() if verdict is not None}


def test_nothing_changed_judges_nothing() -> None:
    batch = judge_batch({"SKU": DenseSeries.of({START: 1.0})}, {"SKU": set()}, SpikeRule())
    assert batch.spikes == {} and not batch.judged("SKU", START)


@pytest.mark.parametrize("first", [date.min, date.max - timedelta(days=40)])
def test_series_at_the_edges_of_the_calendar(first: date) -> None:
    rule = SpikeRule()
    totals = {first + timedelta(days=i): 10.0 + (90.0 if i == 35 else 0.0) for i in range(41)}
    changed = {"SKU": {first}}
    batch = judge_batch({"SKU": DenseSeries.of(totals)}, changed, rule)
    expected = reference({"SKU": totals}, changed, rule)
    assert batch.spikes == {key: verdict for key, verdict in expected.items() if verdict is not None}
    assert {day for day in batch.judged_days("SKU")} == set(totals)


def sparse(totals: dict[date, float], observed_from: date | None = None) -> SparseSeries:
    first = observed_from or min(totals)
    at = sorted(day.toordinal() - first.toordinal() for day in totals)
    values = [totals[date.fromordinal(first.toordinal() + a)] for a in at]
    return SparseSeries(first.toordinal(), np.array(at, dtype=np.int64), np.array(values, dtype=np.float64))


@pytest.mark.parametrize("max_dense_days", [0, 150, 10_000])
def test_series_beyond_the_dense_budget_are_judged_day_by_day_with_the_same_verdicts(max_dense_days: int) -> None:
    rng = random.Random(3)
    rule = SpikeRule()
    series = {f"SKU-{s}": random_series(rng, rng.randint(20, 200)) for s in range(6)}
    # Reports 150 years apart: dense, this SKU alone would be 55,000 days.
    series["SKU-FAR"] = {**random_series(rng, 40), date(2176, 3, 1): 500.0, date(2176, 3, 2): 20.0}
    changed = {sku: {max(totals), min(totals)} for sku, totals in series.items()}
    verdicts = judge_report({sku: sparse(t) for sku, t in series.items()}, changed, rule, max_dense_days=max_dense_days)
    expected = reference(series, changed, rule)
    assert verdicts.spikes == {key: verdict for key, verdict in expected.items() if verdict is not None}
    for sku in series:
        assert set(verdicts.judged_days(sku)) == {day for s, day in expected if s == sku}
        assert all(verdicts.judged(sku, day) for s, day in expected if s == sku)


def test_a_loaded_slice_keeps_its_observed_start() -> None:
    totals = {START + timedelta(days=20): 5.0, START + timedelta(days=22): 7.0}
    assert sparse(totals, observed_from=START).by_day() == {START: 0.0, **totals}
    assert sparse(totals).dense().values.tolist() == [5.0, 0.0, 7.0]
