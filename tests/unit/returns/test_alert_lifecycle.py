"""One open alert per (type, subject): raise once, update on new evidence, stay quiet otherwise."""

from datetime import date, timedelta

import pytest

from services.returns_service.domain import (
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    DecisionKind,
    OpenAlert,
    PromotionRef,
    ReturnCondition,
    ReturnReason,
    ReturnRecord,
    ReturnSurgeFinding,
    ReturnSurgeRule,
    Segment,
    Severity,
    decide_alert,
    evaluate_complaint,
    evaluate_return_surge,
    fingerprint,
)

TODAY = date(2026, 11, 30)
ACCOUNTS = {
    "BOLT": Account("BOLT", "Bolt Ltd", Segment.STABLE),
    "ACME": Account("ACME", "Acme", Segment.STRATEGIC),
}


def ret(n: int, account: str = "BOLT", on: date = TODAY - timedelta(days=3)) -> ReturnRecord:
    return ReturnRecord(f"R-{n}", "SKU-1", 1, account, ReturnReason.DEFECTIVE, ReturnCondition.SCRAP, on)


def finding_for(
    records: list[ReturnRecord], today: date = TODAY, promotions: tuple[PromotionRef, ...] = ()
) -> ReturnSurgeFinding:
    finding = evaluate_return_surge("SKU-1", records, 50, ACCOUNTS, promotions, today, ReturnSurgeRule())
    assert finding is not None
    return finding


def opened(finding: ReturnSurgeFinding) -> OpenAlert:
    return OpenAlert("AL-1", AlertType.RETURN_SURGE, "SKU-1", fingerprint(finding))


FIVE = [ret(i) for i in range(5)]


def test_first_finding_raises() -> None:
    decision = decide_alert(None, finding_for(FIVE))
    assert decision.kind is DecisionKind.RAISE
    assert decision.alert_id is None
    assert decision.fingerprint == fingerprint(finding_for(FIVE))


def test_identical_evidence_is_no_news() -> None:
    decision = decide_alert(opened(finding_for(FIVE)), finding_for(FIVE))
    assert decision.kind is DecisionKind.NONE
    assert decision.alert_id == "AL-1"


def test_more_evidence_updates_the_open_alert() -> None:
    more = finding_for([*FIVE, ret(5)])
    decision = decide_alert(opened(finding_for(FIVE)), more)
    assert decision.kind is DecisionKind.UPDATE
    assert decision.alert_id == "AL-1"
    assert decision.finding == more


def test_a_new_strategic_account_updates_even_with_the_same_counts() -> None:
    swapped = finding_for([*FIVE[:4], ret(4, account="ACME")])
    assert decide_alert(opened(finding_for(FIVE)), swapped).kind is DecisionKind.UPDATE


def test_a_new_active_promotion_updates() -> None:
    promo = PromotionRef("XMAS", frozenset({"SKU-1"}), date(2026, 12, 20), date(2026, 12, 24))
    assert decide_alert(opened(finding_for(FIVE)), finding_for(FIVE, promotions=(promo,))).kind is DecisionKind.UPDATE


def test_the_window_sliding_with_the_same_figures_is_no_news() -> None:
    tomorrow = finding_for(FIVE, today=TODAY + timedelta(days=1))
    assert tomorrow.window_start != finding_for(FIVE).window_start
    assert decide_alert(opened(finding_for(FIVE)), tomorrow).kind is DecisionKind.NONE


def test_no_finding_never_raises_nor_withdraws() -> None:
    assert decide_alert(None, None).kind is DecisionKind.NONE
    decision = decide_alert(opened(finding_for(FIVE)), None)
    assert (decision.kind, decision.alert_id) == (DecisionKind.NONE, "AL-1")


def test_an_open_alert_about_something_else_is_a_caller_error() -> None:
    other = OpenAlert("AL-2", AlertType.RETURN_SURGE, "SKU-2", "x")
    with pytest.raises(ValueError):
        decide_alert(other, finding_for(FIVE))
    wrong_type = OpenAlert("AL-3", AlertType.CAPACITY_CONFLICT, "SKU-1", "x")
    with pytest.raises(ValueError):
        decide_alert(wrong_type, finding_for(FIVE))


def test_each_critical_complaint_is_its_own_alert() -> None:
    account = Account("ACME", "Acme", Segment.STRATEGIC)
    first = evaluate_complaint(
        Complaint("C-1", "ACME", None, ComplaintCategory.SERVICE, Severity.CRITICAL, "down", TODAY), account
    )
    assert first is not None
    assert first.subject == "C-1"
    assert decide_alert(None, first).kind is DecisionKind.RAISE
    open_alert = OpenAlert("AL-9", AlertType.CRITICAL_COMPLAINT, "C-1", fingerprint(first))
    assert decide_alert(open_alert, first).kind is DecisionKind.NONE


def test_fingerprint_is_a_stable_hex_digest() -> None:
    digest = fingerprint(finding_for(FIVE))
    assert digest == fingerprint(finding_for(list(reversed(FIVE))))
    assert len(digest) == 64
    int(digest, 16)
