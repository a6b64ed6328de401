"""Promotion domain rules: revision merges, overlap warnings, conflict status and summary."""

from datetime import date

from services.promotion_service.domain import (
    PromotionSpan,
    PromotionStatus,
    SkuConflict,
    conflict_summary,
    merge_revision,
    overlap_warnings,
    status_after_conflicts,
)

STORED = {
    "promotion_id": "BF",
    "name": "Black Friday",
    "starts_on": "2026-11-27",
    "ends_on": "2026-11-30",
    "items": [{"sku": "A", "uplift_pct": 50}, {"sku": "B", "uplift_pct": 10}],
    "channel": "retail",
}


def span(promotion_id: str, skus: set[str], start: int, end: int) -> PromotionSpan:
    return PromotionSpan(promotion_id, frozenset(skus), date(2026, 11, start), date(2026, 11, end))


def test_revision_replaces_only_the_fields_sent_and_lists_wholesale() -> None:
    merged, violations = merge_revision(STORED, {"items": [{"sku": "C", "uplift_pct": 5}], "channel": None})
    assert violations == []
    assert merged["items"] == [{"sku": "C", "uplift_pct": 5}]
    assert merged["channel"] is None
    assert merged["name"] == "Black Friday" and merged["starts_on"] == "2026-11-27"


def test_revision_may_not_null_required_fields_or_change_the_id() -> None:
    merged, violations = merge_revision(STORED, {"name": None, "items": None, "promotion_id": "OTHER"})
    assert [v.field for v in violations] == ["items", "name", "promotion_id"]
    assert merged["promotion_id"] == "BF"


def test_same_id_in_a_revision_is_harmless() -> None:
    assert merge_revision(STORED, {"promotion_id": "BF"})[1] == []


def test_overlap_needs_a_shared_sku_and_shared_days() -> None:
    candidate = span("NEW", {"A", "B"}, 27, 30)
    others = [
        span("SAME-SKU-LATER", {"A"}, 30, 30),  # touches the last day: overlaps (inclusive dates)
        span("OTHER-SKU", {"Z"}, 27, 30),
        span("BEFORE", {"A"}, 20, 26),
        span("BOTH", {"B", "A"}, 1, 28),
        span("NEW", {"A"}, 27, 30),  # itself, e.g. when revising
    ]
    found = [(w.sku, w.promotion_id, w.code) for w in overlap_warnings(candidate, others)]
    assert found == [
        ("A", "BOTH", "overlapping-promotion"),
        ("A", "SAME-SKU-LATER", "overlapping-promotion"),
        ("B", "BOTH", "overlapping-promotion"),
    ]


def test_status_follows_open_conflicts_but_cancelled_is_final() -> None:
    assert status_after_conflicts(PromotionStatus.PLANNED, 1) is PromotionStatus.AT_RISK
    assert status_after_conflicts(PromotionStatus.AT_RISK, 0) is PromotionStatus.PLANNED
    assert status_after_conflicts(PromotionStatus.CANCELLED, 2) is PromotionStatus.CANCELLED
    assert status_after_conflicts(PromotionStatus.CANCELLED, 0) is PromotionStatus.CANCELLED


def test_conflict_summary_sums_weeks_over_skus() -> None:
    w1, w2 = date(2026, 11, 23), date(2026, 11, 30)
    summary = conflict_summary([SkuConflict("B", ((w1, 5.0),), 5.0), SkuConflict("A", ((w1, 10.0), (w2, 20.0)), 30.0)])
    assert summary is not None
    assert summary["skus"] == ["A", "B"] and summary["shortfall"] == 35.0
    assert summary["weeks"] == [
        {"week_start": "2026-11-23", "shortfall": 15.0},
        {"week_start": "2026-11-30", "shortfall": 20.0},
    ]
    assert conflict_summary([]) is None
