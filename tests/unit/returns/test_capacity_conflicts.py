"""Capacity-conflict findings from planning's report, prioritised by the promotions' target segments."""

from datetime import date

from services.returns_service.domain import (
    AlertType,
    DecisionKind,
    OpenAlert,
    Priority,
    PromotionRef,
    WeekShortfall,
    decide_alert,
    evaluate_capacity_conflict,
    fingerprint,
)

BF = PromotionRef(
    "BF-2026",
    frozenset({"SKU-1"}),
    date(2026, 11, 27),
    date(2026, 11, 30),
    account_segments=frozenset({"strategic"}),
)
SPRING = PromotionRef(
    "SPRING", frozenset({"SKU-1"}), date(2027, 3, 1), date(2027, 3, 7), account_segments=frozenset({"stable"})
)
WEEKS = {date(2026, 11, 30): 20.0, date(2026, 11, 23): 30.0, date(2026, 12, 7): 0.0}


def test_shortfall_weeks_are_sorted_totalled_and_zero_weeks_dropped() -> None:
    finding = evaluate_capacity_conflict("SKU-1", ["SPRING"], WEEKS, [BF, SPRING])
    assert finding is not None
    assert finding.weeks == (WeekShortfall(date(2026, 11, 23), 30.0), WeekShortfall(date(2026, 11, 30), 20.0))
    assert finding.total_shortfall == 50.0
    assert (finding.sku, finding.subject, finding.alert_type) == (
        "SKU-1",
        "SKU-1",
        AlertType.CAPACITY_CONFLICT,
    )


def test_priority_high_when_a_promotion_targets_a_strategic_segment() -> None:
    finding = evaluate_capacity_conflict("SKU-1", ["SPRING", "BF-2026"], WEEKS, [BF, SPRING])
    assert finding is not None
    assert finding.priority is Priority.HIGH
    assert finding.promotion_ids == ("BF-2026", "SPRING")
    assert finding.target_segments == ("stable", "strategic")


def test_priority_normal_for_other_segments_and_unknown_promotions() -> None:
    stable = evaluate_capacity_conflict("SKU-1", ["SPRING"], WEEKS, [BF, SPRING])
    unknown = evaluate_capacity_conflict("SKU-1", ["NEVER-SEEN"], WEEKS, [BF, SPRING])
    assert stable is not None and unknown is not None
    assert (stable.priority, unknown.priority) == (Priority.NORMAL, Priority.NORMAL)


def test_no_shortfall_is_no_conflict() -> None:
    assert evaluate_capacity_conflict("SKU-1", ["BF-2026"], {date(2026, 11, 23): 0.0}, [BF]) is None
    assert evaluate_capacity_conflict("SKU-1", ["BF-2026"], {}, [BF]) is None


def test_a_changed_shortfall_updates_the_open_conflict_alert() -> None:
    first = evaluate_capacity_conflict("SKU-1", ["BF-2026"], WEEKS, [BF])
    worse = evaluate_capacity_conflict("SKU-1", ["BF-2026"], {**WEEKS, date(2026, 12, 7): 5.0}, [BF])
    assert first is not None and worse is not None
    open_alert = OpenAlert("AL-5", AlertType.CAPACITY_CONFLICT, "SKU-1", fingerprint(first))
    assert decide_alert(open_alert, first).kind is DecisionKind.NONE
    assert decide_alert(open_alert, worse).kind is DecisionKind.UPDATE
