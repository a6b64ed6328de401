"""Merging warehouse volume reports: a correction replaces the earlier figures, never adds to them."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fulfillment_service.domain import (
    VolumeLine,
    daily_totals,
    merge_reports,
    sku_daily_totals,
)

DAY = date(2026, 11, 20)


def line(warehouse: str = "DC-EAST", sku: str = "SKU-1", day: date = DAY, ordered: int = 120) -> VolumeLine:
    shipped = max(0, ordered - 10)
    return VolumeLine(warehouse, sku, day, ordered, units_shipped=shipped, units_backordered=ordered - shipped)


def test_new_lines_are_changed_and_counted() -> None:
    batch = [line(), line(sku="SKU-2")]
    result = merge_reports({}, batch)
    assert result.accepted == 2
    assert result.changed == 2
    assert result.affected_keys == {("DC-EAST", "SKU-1", DAY), ("DC-EAST", "SKU-2", DAY)}
    assert result.previous == {}


def test_correction_replaces_never_adds() -> None:
    stored = {line().key: line(ordered=120)}
    result = merge_reports(stored, [line(ordered=90)])
    assert result.changed_lines == (line(ordered=90),)
    assert result.previous == {line().key: line(ordered=120)}
    merged = result.apply_to(stored)
    assert daily_totals(merged.values()) == {("SKU-1", DAY): 90}


def test_identical_line_is_not_a_change() -> None:
    stored = {line().key: line()}
    result = merge_reports(stored, [line()])
    assert result.accepted == 1
    assert result.changed == 0
    assert result.affected_keys == frozenset()


def test_last_occurrence_in_a_batch_wins() -> None:
    result = merge_reports({}, [line(ordered=10), line(ordered=20), line(ordered=30)])
    assert result.accepted == 3
    assert result.changed_lines == (line(ordered=30),)


def test_batch_that_restores_the_stored_line_changes_nothing() -> None:
    stored = {line().key: line(ordered=120)}
    result = merge_reports(stored, [line(ordered=5), line(ordered=120)])
    assert result.changed == 0


def test_affected_sku_days_and_skus() -> None:
    batch = [line("DC-EAST"), line("DC-WEST"), line(sku="SKU-2", day=DAY + timedelta(days=1))]
    result = merge_reports({}, batch)
    assert result.affected_sku_days == {("SKU-1", DAY), ("SKU-2", DAY + timedelta(days=1))}
    assert result.affected_skus == {"SKU-1", "SKU-2"}


def test_changed_lines_come_in_key_order() -> None:
    batch = [line("DC-WEST"), line("DC-EAST", day=DAY + timedelta(days=1)), line("DC-EAST")]
    keys = [changed.key for changed in merge_reports({}, batch).changed_lines]
    assert keys == sorted(keys)


def test_daily_totals_sum_across_warehouses() -> None:
    lines = [line("DC-EAST", ordered=120), line("DC-WEST", ordered=30), line(sku="SKU-2", ordered=7)]
    assert daily_totals(lines) == {("SKU-1", DAY): 150, ("SKU-2", DAY): 7}
    assert sku_daily_totals(lines, "SKU-1") == {DAY: 150}


@pytest.mark.parametrize("field", ["units_ordered", "units_shipped", "units_backordered"])
def test_negative_units_are_rejected(field: str) -> None:
    values = {"units_ordered": 1, "units_shipped": 1, "units_backordered": 1, field: -1}
    with pytest.raises(ValueError, match=field):
        VolumeLine("DC-EAST", "SKU-1", DAY, **values)


def test_empty_identity_is_rejected() -> None:
    with pytest.raises(ValueError):
        VolumeLine("", "SKU-1", DAY, 1, 1, 0)


lines_strategy = st.builds(
    VolumeLine,
    warehouse_id=st.sampled_from(["DC-EAST", "DC-WEST"]),
    sku=st.sampled_from(["SKU-1", "SKU-2", "SKU-3"]),
    day=st.dates(min_value=DAY, max_value=DAY + timedelta(days=3)),
    units_ordered=st.integers(0, 50),
    units_shipped=st.integers(0, 50),
    units_backordered=st.integers(0, 5),
)


@given(existing=st.lists(lines_strategy), batch=st.lists(lines_strategy))
def test_applying_the_same_batch_twice_changes_nothing_the_second_time(
    existing: list[VolumeLine], batch: list[VolumeLine]
) -> None:
    stored = {existing_line.key: existing_line for existing_line in existing}
    once = merge_reports(stored, batch).apply_to(stored)
    again = merge_reports(once, batch)
    assert again.changed == 0
    assert again.apply_to(once) == once


@given(existing=st.lists(lines_strategy), batch=st.lists(lines_strategy))
def test_merged_state_is_stored_state_overwritten_by_each_keys_last_line(
    existing: list[VolumeLine], batch: list[VolumeLine]
) -> None:
    stored = {existing_line.key: existing_line for existing_line in existing}
    result = merge_reports(stored, batch)
    expected = dict(stored)
    for incoming in batch:
        expected[incoming.key] = incoming
    assert result.apply_to(stored) == expected
    assert result.affected_keys == {k for k, v in expected.items() if stored.get(k) != v}
    assert result.accepted == len(batch)
