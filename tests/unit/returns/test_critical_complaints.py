"""Critical-complaint rule over every segment x severity, and the priority helper."""

from datetime import date

import pytest

from services.returns_service.domain import (
    PRIORITY_SEGMENTS,
    Account,
    AlertType,
    Complaint,
    ComplaintCategory,
    Priority,
    Segment,
    Severity,
    evaluate_complaint,
    priority_for,
)


def complaint(severity: Severity) -> Complaint:
    return Complaint("C-1", "ACME", "SKU-1", ComplaintCategory.QUALITY, severity, "casing cracks", date(2026, 11, 30))


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("segment", [*Segment, None])
def test_every_segment_and_severity(segment: Segment | None, severity: Severity) -> None:
    account = Account("ACME", "Acme Corp", segment) if segment else None
    finding = evaluate_complaint(complaint(severity), account)
    expected = severity is Severity.CRITICAL or (
        severity is Severity.HIGH and segment in (Segment.STRATEGIC, Segment.INTEGRATED)
    )
    assert (finding is not None) == expected
    if finding is not None:
        assert finding.priority is Priority.HIGH
        assert finding.segment == segment
        assert finding.alert_type is AlertType.CRITICAL_COMPLAINT


def test_finding_carries_the_complaint_and_account() -> None:
    account = Account("ACME", "Acme Corp", Segment.STRATEGIC, "sam@example.com")
    finding = evaluate_complaint(complaint(Severity.HIGH), account)
    assert finding is not None
    assert (finding.complaint_id, finding.subject, finding.account_id, finding.account_name) == (
        "C-1",
        "C-1",
        "ACME",
        "Acme Corp",
    )
    assert (finding.sku, finding.category, finding.severity) == (
        "SKU-1",
        ComplaintCategory.QUALITY,
        Severity.HIGH,
    )
    assert (finding.description, finding.received_on) == ("casing cracks", date(2026, 11, 30))


def test_priority_segments_are_strategic_and_integrated() -> None:
    assert {Segment.STRATEGIC, Segment.INTEGRATED} == PRIORITY_SEGMENTS


@pytest.mark.parametrize(
    ("segments", "base", "expected"),
    [
        ([], Priority.NORMAL, Priority.NORMAL),
        ([None, Segment.STABLE, Segment.EMERGING], Priority.NORMAL, Priority.NORMAL),
        ([Segment.STABLE, Segment.STRATEGIC], Priority.NORMAL, Priority.HIGH),
        ([Segment.INTEGRATED], Priority.NORMAL, Priority.HIGH),
        (["strategic"], Priority.NORMAL, Priority.HIGH),
        ([Segment.STABLE], Priority.HIGH, Priority.HIGH),
    ],
)
def test_priority_for(segments: list[str | None], base: Priority, expected: Priority) -> None:
    assert priority_for(segments, base) is expected
