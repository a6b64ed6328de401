"""Return-surge rule: thresholds, window boundaries, evidence carried and priority."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.returns_service.domain import (
    QUALITY_REASONS,
    Account,
    AffectedAccount,
    AlertType,
    ComplaintCategory,
    Priority,
    PromotionRef,
    ReasonCount,
    Resolution,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    ReturnSurgeFinding,
    ReturnSurgeRule,
    Segment,
    Severity,
    evaluate_return_surge,
    fingerprint,
)

TODAY = date(2026, 11, 30)
RULE = ReturnSurgeRule()
ACCOUNTS = {
    "ACME": Account("ACME", "Acme Corp", Segment.STRATEGIC, "sam@example.com"),
    "BOLT": Account("BOLT", "Bolt Ltd", Segment.STABLE),
    "CORE": Account("CORE", "Core GmbH", Segment.EMERGING),
}


def ret(
    n: int,
    *,
    quantity: int = 1,
    reason: ReturnReason = ReturnReason.DEFECTIVE,
    account: str = "BOLT",
    on: date = TODAY,
    sku: str = "SKU-1",
) -> ReturnRecord:
    return ReturnRecord(f"R-{sku}-{n}", sku, quantity, account, reason, ReturnCondition.SCRAP, on, Resolution.REFUND)


def returns(
    count: int, *, quantity: int = 1, reason: ReturnReason = ReturnReason.DEFECTIVE, account: str = "BOLT"
) -> list[ReturnRecord]:
    return [ret(i, quantity=quantity, reason=reason, account=account) for i in range(count)]


def surge(
    records: list[ReturnRecord], shipped: float, promotions: list[PromotionRef] | None = None
) -> ReturnSurgeFinding | None:
    return evaluate_return_surge("SKU-1", records, shipped, ACCOUNTS, promotions or [], TODAY, RULE)


def test_enum_values_are_exactly_the_contract_ones() -> None:
    assert {r.value for r in ReturnReason} == {
        "defective",
        "damaged",
        "wrong_item",
        "not_as_described",
        "no_longer_needed",
        "late_delivery",
        "other",
    }
    assert {c.value for c in ReturnCondition} == {"resellable", "refurbish", "scrap"}
    assert {r.value for r in Resolution} == {"refund", "replacement", "credit"}
    assert {c.value for c in ComplaintCategory} == {"quality", "delivery", "service", "billing", "other"}
    assert {s.value for s in Severity} == {"low", "medium", "high", "critical"}
    assert {s.value for s in Segment} == {"strategic", "integrated", "emerging", "stable"}
    assert {t.value for t in AlertType} == {
        "return-surge",
        "critical-complaint",
        "capacity-conflict",
        "promise-at-risk",
        "account-unprofitable",
        "segment-mismatch",
    }
    assert {"defective", "damaged", "not_as_described"} == QUALITY_REASONS


def test_rule_defaults() -> None:
    assert (RULE.window_days, RULE.rate_threshold, RULE.min_returns) == (14, 0.05, 5)
    assert RULE.window(TODAY) == (date(2026, 11, 17), TODAY)


def test_below_the_rate_threshold_is_nothing() -> None:
    assert surge(returns(5), shipped=101) is None  # 4.95 %


@pytest.mark.parametrize(("count", "shipped"), [(5, 100), (7, 140), (6, 120)])
def test_exactly_at_the_rate_threshold_alerts(count: int, shipped: int) -> None:
    finding = surge(returns(count), shipped=shipped)
    assert finding is not None
    assert finding.rate == pytest.approx(0.05)
    assert (finding.quality_units, finding.quality_return_count, finding.shipped_units) == (
        count,
        count,
        shipped,
    )


def test_min_returns_counts_records_not_units() -> None:
    assert surge(returns(4, quantity=10), shipped=100) is None  # 40 % but only four returns
    assert surge([ret(1, quantity=50)], shipped=100) is None
    finding = surge(returns(5, quantity=10), shipped=100)
    assert finding is not None
    assert (finding.quality_units, finding.quality_return_count, finding.rate) == (50, 5, 0.5)


@pytest.mark.parametrize("reason", sorted(set(ReturnReason) - QUALITY_REASONS))
def test_non_quality_reasons_are_ignored(reason: ReturnReason) -> None:
    assert surge(returns(20, reason=reason), shipped=10) is None
    mixed = returns(4) + [ret(100 + i, reason=reason) for i in range(10)]
    assert surge(mixed, shipped=10) is None


def test_window_boundary_days() -> None:
    first_day = TODAY - timedelta(days=13)
    inside = [ret(i, on=first_day) for i in range(4)] + [ret(9, on=TODAY)]
    finding = surge(inside, shipped=100)
    assert finding is not None
    assert (finding.window_start, finding.window_end) == (first_day, TODAY)
    day_before = [ret(i, on=first_day - timedelta(days=1)) for i in range(4)] + [ret(9, on=TODAY)]
    assert surge(day_before, shipped=100) is None
    tomorrow = [ret(i) for i in range(4)] + [ret(9, on=TODAY + timedelta(days=1))]
    assert surge(tomorrow, shipped=100) is None


def test_returns_of_other_skus_are_ignored() -> None:
    assert surge([*returns(4), ret(99, sku="SKU-2")], shipped=10) is None


def test_nothing_shipped_in_the_window_alerts_with_an_undefined_rate() -> None:
    finding = surge(returns(5), shipped=0)
    assert finding is not None
    assert finding.rate is None
    assert surge(returns(4), shipped=0) is None


def test_top_reasons_by_units_then_name() -> None:
    records = [
        ret(1, reason=ReturnReason.DEFECTIVE, quantity=3),
        ret(2, reason=ReturnReason.DAMAGED, quantity=2),
        ret(3, reason=ReturnReason.DAMAGED, quantity=1),
        ret(4, reason=ReturnReason.NOT_AS_DESCRIBED, quantity=4),
        ret(5, reason=ReturnReason.NOT_AS_DESCRIBED, quantity=1),
        ret(6, reason=ReturnReason.WRONG_ITEM, quantity=99),
    ]
    finding = surge(records, shipped=100)
    assert finding is not None
    assert finding.top_reasons == (
        ReasonCount(ReturnReason.NOT_AS_DESCRIBED, 5, 2),
        ReasonCount(ReturnReason.DAMAGED, 3, 2),
        ReasonCount(ReturnReason.DEFECTIVE, 3, 1),
    )
    assert finding.quality_units == 11


def test_affected_accounts_carry_their_segment_and_unknown_accounts_none() -> None:
    records = [ret(1, account="ACME", quantity=2), ret(2, account="GHOST", quantity=2)]
    records += [ret(3, account="BOLT"), ret(4, account="BOLT"), ret(5, account="BOLT", quantity=3)]
    finding = surge(records, shipped=10)
    assert finding is not None
    assert finding.affected_accounts == (
        AffectedAccount("BOLT", Segment.STABLE, "Bolt Ltd", units=5, returns=3),
        AffectedAccount("ACME", Segment.STRATEGIC, "Acme Corp", units=2, returns=1),
        AffectedAccount("GHOST", None, None, units=2, returns=1),
    )


def test_priority_is_high_with_a_strategic_or_integrated_account() -> None:
    normal = surge([*returns(4, account="BOLT"), ret(9, account="CORE")], shipped=10)
    assert normal is not None
    assert normal.priority is Priority.NORMAL
    strategic = surge([*returns(4, account="BOLT"), ret(9, account="ACME")], shipped=10)
    assert strategic is not None
    assert strategic.priority is Priority.HIGH
    integrated_accounts = {**ACCOUNTS, "BOLT": Account("BOLT", "Bolt Ltd", Segment.INTEGRATED)}
    integrated = evaluate_return_surge("SKU-1", returns(5), 10, integrated_accounts, [], TODAY, RULE)
    assert integrated is not None
    assert integrated.priority is Priority.HIGH


def test_active_promotions_of_the_sku_are_attached() -> None:
    running = PromotionRef("RUN", frozenset({"SKU-1"}), date(2026, 11, 27), TODAY)
    upcoming = PromotionRef("XMAS", frozenset({"SKU-1"}), date(2026, 12, 20), date(2026, 12, 24))
    ended = PromotionRef("OLD", frozenset({"SKU-1"}), date(2026, 11, 1), TODAY - timedelta(days=1))
    cancelled = PromotionRef("CAN", frozenset({"SKU-1"}), TODAY, TODAY, cancelled=True)
    other = PromotionRef("OTHER", frozenset({"SKU-2"}), TODAY, TODAY)
    finding = surge(returns(5), 10, [upcoming, cancelled, other, ended, running])
    assert finding is not None
    assert [p.promotion_id for p in finding.active_promotions] == ["RUN", "XMAS"]


def test_invalid_rule_and_record_are_rejected() -> None:
    with pytest.raises(ValueError):
        ReturnSurgeRule(window_days=0)
    with pytest.raises(ValueError):
        ret(1, quantity=0)


def test_configured_rule_is_honoured() -> None:
    rule = ReturnSurgeRule(window_days=7, rate_threshold=0.5, min_returns=2)
    records = [ret(1, on=TODAY - timedelta(days=6)), ret(2, on=TODAY - timedelta(days=7))]
    assert evaluate_return_surge("SKU-1", records, 2, ACCOUNTS, [], TODAY, rule) is None
    finding = evaluate_return_surge("SKU-1", [*records, ret(3)], 4, ACCOUNTS, [], TODAY, rule)
    assert finding is not None
    assert finding.rate == 0.5


record_strategy = st.builds(
    ReturnRecord,
    return_id=st.uuids().map(str),
    sku=st.just("SKU-1"),
    quantity=st.integers(1, 20),
    account_id=st.sampled_from(["ACME", "BOLT", "CORE", "GHOST"]),
    reason=st.sampled_from(list(ReturnReason)),
    condition=st.sampled_from(list(ReturnCondition)),
    returned_on=st.dates(min_value=TODAY - timedelta(days=20), max_value=TODAY),
    resolution=st.none() | st.sampled_from(list(Resolution)),
)


@given(records=st.lists(record_strategy, max_size=30), shipped=st.integers(0, 300), data=st.data())
def test_the_finding_does_not_depend_on_the_order_of_returns(
    records: list[ReturnRecord], shipped: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(records))
    first = surge(records, shipped)
    second = surge(list(shuffled), shipped)
    assert first == second
    if first is not None and second is not None:
        assert fingerprint(first) == fingerprint(second)


@given(records=st.lists(record_strategy, max_size=30), shipped=st.integers(1, 300))
def test_a_finding_means_both_thresholds_are_met(records: list[ReturnRecord], shipped: int) -> None:
    window_start = TODAY - timedelta(days=13)
    quality = [r for r in records if r.reason in QUALITY_REASONS and r.returned_on >= window_start]
    finding = surge(records, shipped)
    expected = len(quality) >= 5 and sum(r.quantity for r in quality) / shipped >= 0.05
    assert (finding is not None) == expected
