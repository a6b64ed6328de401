"""`BENCH_FULL_REPLAN_SIZES`: SKU counts separated by commas; a number written with thousands commas is refused
rather than read as several sizes."""

from __future__ import annotations

import pytest

from salesops.bench.full_replan import _runs, parse_sizes


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        ("10000", [10_000]),
        ("10_000", [10_000]),
        ("10000,50000", [10_000, 50_000]),
        (" 10_000 , 50_000 ", [10_000, 50_000]),
        ("1000,500", [1_000, 500]),
        ("100, 200", [100, 200]),
        ("5000,", [5_000]),
    ],
)
def test_sizes_are_whole_numbers_separated_by_commas(text: str, sizes: list[int]) -> None:
    assert parse_sizes(text) == sizes


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("10,000", "'10,000' reads as a number with thousands commas; write it 10000 or 10_000"),
        ("10,000,50,000", "'10,000' reads as a number with thousands commas"),
        ("50000,1,250,000", "'1,250,000' reads as a number with thousands commas; write it 1250000 or 1_250_000"),
        ("100,200", "'100,200' reads as a number with thousands commas"),
        ("10k", "'10k' is not a whole number"),
        ("10000,0", "'0' is not a positive number of SKUs"),
        ("-5", "'-5' is not a positive number of SKUs"),
        (",", "no size given"),
    ],
)
def test_ambiguous_or_bad_sizes_are_refused_naming_them(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="BENCH_FULL_REPLAN_SIZES") as refused:
        parse_sizes(text)
    assert named in str(refused.value)


def test_the_runs_take_the_sizes_and_add_compact_storage_at_the_smallest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_FULL_REPLAN_SIZES", "10_000,50_000")
    monkeypatch.delenv("BENCH_FULL_REPLAN_STORAGE", raising=False)
    assert _runs(quick=False) == [(10_000, "expanded"), (50_000, "expanded"), (10_000, "compact")]
    monkeypatch.setenv("BENCH_FULL_REPLAN_SIZES", "10,000")
    with pytest.raises(ValueError, match="thousands commas"):
        _runs(quick=False)
