"""Returns handlers against an in-memory store: idempotent creates of returns and complaints, the return-surge
threshold, one open alert per subject (raised, updated, left alone), critical complaints and planning's
capacity conflicts."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from services.returns_service import handlers
from services.returns_service.domain import (
    AcknowledgeAlert,
    PutAccount,
    RecordComplaint,
    RecordReturn,
    ResolveAlert,
    Segment,
)
from services.returns_service.settings import ReturnsSettings
from shared.errors import ProblemError
from shared.events import (
    CapacityConflictData,
    EventType,
    OrderVolumeReportedData,
    PromotionData,
    new_event,
    topic_of,
)
from shared.outbox import encode_event
from tests.fakes.returns import FakeReturnsStore, RecordingPublisher

TODAY = date(2026, 11, 30)
SETTINGS = ReturnsSettings(clock_today=TODAY)
RAISED, UPDATED = EventType.SALES_ALERT_RAISED, EventType.SALES_ALERT_UPDATED


def a_return(n: int, *, sku: str = "SKU-1", account: str = "ACME", reason: str = "defective", **changes: Any):
    body = {
        "return_id": f"R-{sku}-{n}",
        "sku": sku,
        "quantity": 1,
        "account_id": account,
        "reason": reason,
        "condition": "scrap",
        "returned_on": "2026-11-27",
        "order_id": None,
        "resolution": None,
        **changes,
    }
    return RecordReturn.from_body(body)


async def record_return(
    store: FakeReturnsStore, publisher: RecordingPublisher, command: RecordReturn, settings: ReturnsSettings
) -> handlers.Written:
    """A return as `POST /v1/returns` records it: its event encoded first and written with it, the surge
    re-evaluated when the return counts towards it."""
    data = handlers.return_recorded_data(command)
    event = new_event(EventType.RETURN_RECORDED, source="salesops/test", subject=command.return_id, data=data)
    encoded = encode_event(event, topic_of(EventType.RETURN_RECORDED).value, command.sku)
    if handlers.return_evaluated(command):
        return await handlers.record_quality_return(store, publisher, command, encoded, settings)
    return await handlers.record_return_alone(store, command, encoded)


def a_complaint(n: int, *, severity: str = "critical", account: str = "ACME", **changes: Any) -> RecordComplaint:
    body = {
        "complaint_id": f"C-{n}",
        "account_id": account,
        "sku": "SKU-1",
        "category": "quality",
        "severity": severity,
        "description": "burning smell",
        "received_on": "2026-11-29",
        **changes,
    }
    return RecordComplaint.from_body(body)


async def record_complaint(
    store: FakeReturnsStore, publisher: RecordingPublisher, command: RecordComplaint
) -> handlers.Written:
    """A complaint as `POST /v1/complaints` records it: its event encoded first and written with it."""
    data = handlers.complaint_recorded_data(command)
    event = new_event(EventType.COMPLAINT_RECORDED, source="salesops/test", subject=command.complaint_id, data=data)
    encoded = encode_event(event, topic_of(EventType.COMPLAINT_RECORDED).value, command.sku or command.complaint_id)
    return await handlers.record_complaint(store, publisher, command, encoded)


def outbox_types(store: FakeReturnsStore) -> list[str]:
    return [event.event_type for event in store.outbox]


async def ship(store: FakeReturnsStore, publisher: RecordingPublisher, units: int, day: str = "2026-11-25") -> None:
    data = OrderVolumeReportedData.model_validate(
        {
            "sku": "SKU-1",
            "days": [{"day": day, "units_ordered": units, "units_shipped": units, "units_backordered": 0}],
        }
    )
    await handlers.record_order_volumes(store, publisher, data, SETTINGS)


def alert_events(publisher: RecordingPublisher) -> list[EventType]:
    return [t for t in publisher.types() if t in (RAISED, UPDATED)]


# ---------------------------------------------------------------- idempotent creates


async def test_a_new_return_is_stored_and_announced_keyed_by_its_sku() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    written = await record_return(store, publisher, a_return(1), SETTINGS)
    assert written.created is True
    assert written.record.body["return_id"] == "R-SKU-1-1"
    (event,) = store.outbox
    assert (event.event_type, event.topic, event.key) == (EventType.RETURN_RECORDED.value, "salesops.returns", "SKU-1")
    document = json.loads(event.payload)
    assert (document["subject"], document["data"]["quantity"]) == ("R-SKU-1-1", 1)
    assert publisher.events == []


async def test_an_identical_return_retry_answers_with_the_stored_one_and_publishes_nothing() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    first = await record_return(store, publisher, a_return(1), SETTINGS)
    again = await record_return(store, publisher, a_return(1), SETTINGS)
    assert again.created is False
    assert again.record == first.record
    assert [event.event_type for event in store.outbox] == [EventType.RETURN_RECORDED.value]


async def test_the_same_return_id_with_another_body_is_a_conflict() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await record_return(store, publisher, a_return(1), SETTINGS)
    with pytest.raises(ProblemError) as raised:
        await record_return(store, publisher, a_return(1, quantity=3), SETTINGS)
    assert raised.value.status == 409
    assert store.returns["R-SKU-1-1"][0].quantity == 1
    assert len(store.outbox) == 1


async def test_an_identical_complaint_retry_raises_no_second_alert() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    first = await record_complaint(store, publisher, a_complaint(1))
    again = await record_complaint(store, publisher, a_complaint(1))
    assert (first.created, again.created) == (True, False)
    assert outbox_types(store) == [EventType.COMPLAINT_RECORDED.value]
    assert publisher.types() == [RAISED]
    assert len(store.alerts) == 1 and len(store.changes) == 1
    with pytest.raises(ProblemError) as raised:
        await record_complaint(store, publisher, a_complaint(1, severity="low"))
    assert raised.value.status == 409


# ---------------------------------------------------------------- return surge


async def test_a_surge_is_raised_at_both_thresholds_and_updated_by_new_evidence() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await handlers.put_account(store, RecordingPublisher(), PutAccount("ACME", "Acme", Segment.EMERGING))
    await ship(store, publisher, 100)
    for n in range(4):  # 4 returns of 100 shipped: under min_returns (5) and under the rate (5 %)
        await record_return(store, publisher, a_return(n), SETTINGS)
    assert store.alerts == {} and alert_events(publisher) == []

    await record_return(store, publisher, a_return(4), SETTINGS)  # 5 of 100: both thresholds reached
    (alert,) = store.alerts.values()
    assert (alert.type, alert.subject, alert.status, alert.revision) == ("return-surge", "SKU-1", "open", 1)
    assert alert.details["rate"] == pytest.approx(0.05)
    assert alert.details["thresholds"] == {"window_days": 14, "rate_threshold": 0.05, "min_returns": 5}
    assert alert.accounts == [{"account_id": "ACME", "name": "Acme", "segment": "emerging"}]
    assert alert.priority == "normal"
    assert alert_events(publisher) == [RAISED]
    raised = publisher.events[-1]
    assert (raised.key, raised.subject, raised.data.revision) == ("SKU-1", alert.alert_id, 1)
    assert [event_type for _, event_type, _ in store.changes] == [RAISED.value]

    await record_return(store, publisher, a_return(5, account="BIGCO"), SETTINGS)
    (updated,) = store.alerts.values()
    assert (updated.alert_id, updated.revision) == (alert.alert_id, 2)
    assert sorted(updated.account_ids) == ["ACME", "BIGCO"]
    assert alert_events(publisher) == [RAISED, UPDATED]
    assert store.changes[-1][2]["revision"] == 2


async def test_returns_under_the_rate_threshold_raise_nothing() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await ship(store, publisher, 1000)
    for n in range(6):  # 6 of 1000 shipped: 0.6 %
        await record_return(store, publisher, a_return(n), SETTINGS)
    assert store.alerts == {} and alert_events(publisher) == []


async def test_returns_that_are_not_about_quality_never_evaluate_the_surge() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    for n in range(6):
        await record_return(store, publisher, a_return(n, reason="no_longer_needed"), SETTINGS)
    assert store.locked_subjects == [] and store.alerts == {}


async def test_the_same_evidence_changes_nothing_and_falling_figures_do_not_withdraw_the_alert() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    for n in range(5):  # nothing shipped: the rate is undefined and min_returns alone decides
        await record_return(store, publisher, a_return(n), SETTINGS)
    (alert,) = store.alerts.values()
    assert alert.details["rate"] is None

    await ship(store, publisher, 0)  # re-evaluated with the same evidence
    assert store.alerts[alert.alert_id].revision == 1 and alert_events(publisher) == [RAISED]

    await ship(store, publisher, 10_000, day="2026-11-26")  # the rate falls far below the threshold
    assert store.alerts[alert.alert_id].status == "open"
    assert store.alerts[alert.alert_id].revision == 1 and alert_events(publisher) == [RAISED]


async def test_a_promotion_of_the_sku_is_attached_to_its_open_surge_alert() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    for n in range(5):
        await record_return(store, publisher, a_return(n), SETTINGS)
    promotion = PromotionData.model_validate(
        {
            "promotion_id": "BF-2026",
            "name": "Black Friday",
            "starts_on": "2026-11-27",
            "ends_on": "2026-12-02",
            "items": [{"sku": "SKU-1", "uplift_pct": 50}],
            "account_segments": ["strategic"],
            "version": 2,
        }
    )
    await handlers.record_promotion(store, publisher, promotion, SETTINGS, cancelled=False)
    (alert,) = store.alerts.values()
    assert [p["promotion_id"] for p in alert.details["active_promotions"]] == ["BF-2026"]
    assert alert.revision == 2

    older = promotion.model_copy(update={"version": 1})
    await handlers.record_promotion(store, publisher, older, SETTINGS, cancelled=True)
    assert store.promotions["BF-2026"] == (store.promotions["BF-2026"][0], 2)
    assert not store.promotions["BF-2026"][0].cancelled


# ---------------------------------------------------------------- critical complaints


async def test_a_critical_complaint_raises_its_own_high_priority_alert_without_looking_for_an_open_one() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await record_complaint(store, publisher, a_complaint(1))
    await record_complaint(store, publisher, a_complaint(2))
    assert store.locked_subjects == []  # each complaint is new: no alert can be open for it
    subjects = sorted((a.type, a.subject, a.priority) for a in store.alerts.values())
    assert subjects == [("critical-complaint", "C-1", "high"), ("critical-complaint", "C-2", "high")]
    assert alert_events(publisher) == [RAISED, RAISED]


@pytest.mark.parametrize(
    ("segment", "severity", "alerted"),
    [
        (Segment.STRATEGIC, "high", True),
        (Segment.INTEGRATED, "high", True),
        (Segment.EMERGING, "high", False),
        (None, "high", False),
        (Segment.STRATEGIC, "medium", False),
    ],
)
async def test_a_high_complaint_alerts_only_from_a_priority_tier(
    segment: Segment | None, severity: str, alerted: bool
) -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    if segment is not None:
        await handlers.put_account(store, RecordingPublisher(), PutAccount("ACME", "Acme", segment))
    await record_complaint(store, publisher, a_complaint(1, severity=severity))
    assert bool(store.alerts) is alerted
    assert outbox_types(store) == [EventType.COMPLAINT_RECORDED.value]
    assert alert_events(publisher) == ([RAISED] if alerted else [])


# ---------------------------------------------------------------- capacity conflicts


def conflict(*shortfalls: float, plan_version: int = 1) -> CapacityConflictData:
    weeks = [{"week_start": f"2026-12-{7 * i + 7:02d}", "shortfall": s} for i, s in enumerate(shortfalls)]
    return CapacityConflictData.model_validate(
        {"sku": "SKU-9", "promotion_ids": ["BF"], "weeks": weeks, "plan_version": plan_version}
    )


async def test_a_capacity_conflict_is_raised_updated_then_resolved() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await handlers.record_capacity_conflict(store, publisher, conflict(10))
    await handlers.record_capacity_conflict(store, publisher, conflict(10))  # the same shortfall: nothing new
    await handlers.record_capacity_conflict(store, publisher, conflict(10, 5, plan_version=2))
    (alert,) = store.alerts.values()
    assert (alert.revision, alert.details["total_shortfall"], alert.details["plan_version"]) == (2, 15, 2)

    await handlers.record_capacity_conflict(store, publisher, conflict(0, plan_version=3))  # no short week
    resolved = store.alerts[alert.alert_id]
    assert (resolved.status, resolved.revision, resolved.details["plan_version"]) == ("resolved", 3, 3)
    assert alert_events(publisher) == [RAISED, UPDATED, UPDATED]

    await handlers.resolve_capacity_conflict(store, publisher, conflict(0, plan_version=4))  # none open
    assert alert_events(publisher) == [RAISED, UPDATED, UPDATED]
    assert len(store.changes) == 3


# ---------------------------------------------------------------- people acknowledge and resolve


async def raised_surge(store: FakeReturnsStore, publisher: RecordingPublisher) -> str:
    for n in range(5):
        await record_return(store, publisher, a_return(n), SETTINGS)
    (alert,) = store.alerts.values()
    return alert.alert_id


async def test_acknowledging_records_who_and_when_and_announces_the_change() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    alert_id = await raised_surge(store, publisher)
    acknowledged = await handlers.act_on_alert(store, publisher, AcknowledgeAlert(alert_id, by="crm"))
    assert (acknowledged.status, acknowledged.revision, acknowledged.acknowledged_by) == ("open", 2, "crm")
    assert acknowledged.acknowledged_at is not None
    assert alert_events(publisher) == [RAISED, UPDATED]
    assert publisher.events[-1].data.state == "acknowledged"
    message = store.messages[-1]
    assert (message["type"], message["change"], message["data"]["state"]) == (
        "sales-alert.return-surge",
        "updated",
        "acknowledged",
    )

    again = await handlers.act_on_alert(store, publisher, AcknowledgeAlert(alert_id, by="someone-else"))
    assert (again.revision, again.acknowledged_by) == (2, "crm")  # nothing changes, nothing is announced
    assert alert_events(publisher) == [RAISED, UPDATED]

    await record_return(store, publisher, a_return(9, account="BIGCO"), SETTINGS)
    updated = store.alerts[alert_id]  # new evidence updates the acknowledged alert; it stays acknowledged
    assert (updated.revision, updated.acknowledged_by, updated.status) == (3, "crm", "open")
    assert publisher.events[-1].data.state == "acknowledged"


async def test_resolving_is_idempotent_and_a_resolved_alert_cannot_be_acknowledged() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    alert_id = await raised_surge(store, publisher)
    resolved = await handlers.act_on_alert(store, publisher, ResolveAlert(alert_id, by="crm"))
    assert (resolved.status, resolved.resolved_by, resolved.revision) == ("resolved", "crm", 2)
    assert publisher.events[-1].data.state == "resolved"

    again = await handlers.act_on_alert(store, publisher, ResolveAlert(alert_id, by="crm"))
    assert again.revision == 2 and alert_events(publisher) == [RAISED, UPDATED]

    with pytest.raises(ProblemError) as refused:
        await handlers.act_on_alert(store, publisher, AcknowledgeAlert(alert_id, by="crm"))
    assert refused.value.status == 409 and refused.value.extra["state"] == "resolved"
    with pytest.raises(ProblemError) as missing:
        await handlers.act_on_alert(store, publisher, ResolveAlert("alrt_unknown", by="crm"))
    assert missing.value.status == 404
    assert alert_events(publisher) == [RAISED, UPDATED]


async def test_a_resolved_alert_is_not_raised_again_by_the_same_evidence_but_is_by_new_evidence() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    alert_id = await raised_surge(store, publisher)
    await handlers.act_on_alert(store, publisher, ResolveAlert(alert_id, by="crm"))

    await ship(store, publisher, 0)  # re-evaluated, the same evidence: the person's resolution holds
    assert len(store.alerts) == 1 and alert_events(publisher) == [RAISED, UPDATED]

    await record_return(store, publisher, a_return(7), SETTINGS)  # new evidence: a new alert
    assert len(store.alerts) == 2
    assert alert_events(publisher) == [RAISED, UPDATED, RAISED]
    (fresh,) = (a for a in store.alerts.values() if a.alert_id != alert_id)
    assert (fresh.status, fresh.revision, fresh.acknowledged_by) == ("open", 1, None)


async def test_a_conflict_resolved_by_planning_is_raised_again_when_it_returns() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await handlers.record_capacity_conflict(store, publisher, conflict(10))
    await handlers.resolve_capacity_conflict(store, publisher, conflict(0, plan_version=2))
    (closed,) = store.alerts.values()
    assert (closed.status, closed.resolved_by) == ("resolved", None) and closed.resolved_at is not None
    await handlers.record_capacity_conflict(store, publisher, conflict(10, plan_version=3))
    assert len(store.alerts) == 2
    assert alert_events(publisher) == [RAISED, UPDATED, RAISED]
