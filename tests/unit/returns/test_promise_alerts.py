"""Promise-at-risk alerts and published accounts against the in-memory store: one alert per order line, raised
with the account's tier and owner, updated when the verdict changes, resolved when the promise is restored;
stale events (an older plan version) change nothing; a person's resolution holds only while the break lasts;
every real account change publishes its next version and an identical put nothing."""

from __future__ import annotations

from typing import Any

import pytest

from services.returns_service import handlers
from services.returns_service.domain import (
    PromiseMark,
    PutAccount,
    ResolveAlert,
    Segment,
    decide_promise_step,
    promise_subject,
)
from shared.events import AccountChangedData, EventType, PromiseData, SalesAlertData
from tests.fakes.returns import FakeReturnsStore, RecordingPublisher

RAISED, UPDATED = EventType.SALES_ALERT_RAISED, EventType.SALES_ALERT_UPDATED


def promise(plan_version: int, *, short: float = 20, earliest: str | None = "2026-12-14", **changes: Any):
    body = {
        "order_id": "SO-1",
        "line_id": "1",
        "account_id": "ACC-W",
        "tier": "stable",
        "sku": "SKU-1",
        "quantity": 60,
        "quantity_short": short,
        "promised_on": "2026-12-07",
        "earliest_on": earliest,
        "plan_version": plan_version,
        "drivers": [{"event_id": f"item:SKU-1:{plan_version}", "type": "planning.item.updated", "summary": "cut"}],
        **changes,
    }
    return PromiseData.model_validate(body)


def restored(plan_version: int, **changes: Any) -> PromiseData:
    return promise(plan_version, short=0, earliest="2026-12-07", **changes)


def alert_changes(publisher: RecordingPublisher) -> list[tuple[EventType, SalesAlertData]]:
    return [(e.type, e.data) for e in publisher.events if e.type in (RAISED, UPDATED)]


async def a_store_with_accounts() -> FakeReturnsStore:
    store = FakeReturnsStore()
    await handlers.put_account(store, RecordingPublisher(), PutAccount("ACC-W", "Webshop", Segment.STABLE, "w@x.com"))
    return store


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("last", "arriving", "apply", "new_break"),
    [
        (None, PromiseMark("SKU-1", 3, True), True, True),
        (PromiseMark("SKU-1", 3, True), PromiseMark("SKU-1", 4, True), True, False),
        (PromiseMark("SKU-1", 3, False), PromiseMark("SKU-1", 4, True), True, True),
        (PromiseMark("SKU-1", 4, False), PromiseMark("SKU-1", 3, True), False, False),  # stale at-risk
        (PromiseMark("SKU-1", 4, True), PromiseMark("SKU-1", 3, False), False, False),  # stale restored
        (PromiseMark("SKU-1", 4, True), PromiseMark("SKU-1", 4, False), True, False),  # same plan, re-judged
        (PromiseMark("SKU-1", 9, False), PromiseMark("SKU-2", 2, True), True, True),  # moved to another SKU
        (None, PromiseMark("SKU-1", 1, False), True, False),
    ],
)
def test_an_older_plan_version_of_the_same_sku_is_stale(last, arriving, apply, new_break) -> None:
    step = decide_promise_step(last, arriving)
    assert (step.apply, step.new_break) == (apply, new_break)


def test_an_order_line_is_its_own_subject() -> None:
    assert promise_subject("SO-1", "1") == "SO-1/1"
    assert promise_subject("SO-1", "1") != promise_subject("SO-1", "10")
    assert promise_subject("A:B", "C") != promise_subject("A", "B:C")


# ---------------------------------------------------------------- the handlers


async def test_an_at_risk_line_raises_one_alert_with_tier_owner_and_earliest_date() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    await handlers.record_promise_at_risk(store, publisher, promise(3))

    ((kind, alert),) = alert_changes(publisher)
    assert (kind, alert.type, alert.status, alert.priority, alert.sku) == (
        RAISED,
        "promise-at-risk",
        "open",
        "normal",
        "SKU-1",
    )
    assert alert.accounts == [{"account_id": "ACC-W", "name": "Webshop", "segment": "stable"}]
    details = alert.details
    assert (details["order_id"], details["line_id"], details["tier"], details["owner_email"]) == (
        "SO-1",
        "1",
        "stable",
        "w@x.com",
    )
    assert (details["quantity"], details["quantity_short"]) == (60, 20)
    assert (details["promised_on"], details["earliest_on"], details["plan_version"]) == (
        "2026-12-07",
        "2026-12-14",
        3,
    )
    assert details["drivers"] == [{"event_id": "item:SKU-1:3", "type": "planning.item.updated", "summary": "cut"}]
    assert store.messages[0]["type"] == "sales-alert.promise-at-risk"


async def test_a_strategic_line_is_high_priority_even_before_the_account_is_registered_here() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    await handlers.record_promise_at_risk(store, publisher, promise(1, account_id="ACC-S", tier="strategic"))
    ((_, alert),) = alert_changes(publisher)
    assert alert.priority == "high"
    assert alert.accounts == [{"account_id": "ACC-S", "name": None, "segment": "strategic"}]
    assert alert.details["owner_email"] is None


async def test_a_changed_verdict_updates_the_alert_and_the_same_verdict_changes_nothing() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    first = await handlers.record_promise_at_risk(store, publisher, promise(3))
    assert await handlers.record_promise_at_risk(store, publisher, promise(4)) is None  # new version, same verdict
    later = await handlers.record_promise_at_risk(store, publisher, promise(5, short=30, earliest="2026-12-21"))
    assert first is not None and later is not None
    assert later.alert_id == first.alert_id and later.revision == 2
    assert (later.details["quantity_short"], later.details["earliest_on"]) == (30, "2026-12-21")
    assert [kind for kind, _ in alert_changes(publisher)] == [RAISED, UPDATED]
    assert len(store.alerts) == 1


async def test_restored_resolves_the_alert_and_a_stale_at_risk_does_not_reopen_it() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    raised = await handlers.record_promise_at_risk(store, publisher, promise(3))
    closed = await handlers.record_promise_restored(store, publisher, restored(4))
    assert raised is not None and closed is not None
    assert (closed.alert_id, closed.status, closed.resolved_by) == (raised.alert_id, "resolved", None)
    assert closed.details["quantity_short"] == 20  # what was broken stays readable
    assert closed.details["restored"]["plan_version"] == 4
    assert closed.details["restored"]["earliest_on"] == "2026-12-07"

    assert await handlers.record_promise_at_risk(store, publisher, promise(3, short=25)) is None  # arrives late
    assert [a.status for a in store.alerts.values()] == ["resolved"]
    assert [kind for kind, _ in alert_changes(publisher)] == [RAISED, UPDATED]
    assert store.promise_marks[("SO-1", "1")] == PromiseMark("SKU-1", 4, at_risk=False)


async def test_a_stale_restored_does_not_resolve_a_newer_break() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    await handlers.record_promise_at_risk(store, publisher, promise(5))
    assert await handlers.record_promise_restored(store, publisher, restored(4)) is None
    assert [a.status for a in store.alerts.values()] == ["open"]


async def test_a_restored_before_its_at_risk_keeps_the_late_at_risk_out() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    assert await handlers.record_promise_restored(store, publisher, restored(4)) is None  # nothing open
    assert await handlers.record_promise_at_risk(store, publisher, promise(3)) is None
    assert store.alerts == {} and alert_changes(publisher) == []


async def test_a_new_break_after_a_restore_raises_a_new_alert_even_with_the_same_verdict() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    first = await handlers.record_promise_at_risk(store, publisher, promise(3))
    await handlers.record_promise_restored(store, publisher, restored(4))
    again = await handlers.record_promise_at_risk(store, publisher, promise(5))
    assert first is not None and again is not None and again.alert_id != first.alert_id
    assert [(a.status, a.revision) for a in store.alerts.values()] == [("resolved", 2), ("open", 1)]


async def test_a_persons_resolution_holds_while_the_break_lasts_but_not_after_a_restore() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    raised = await handlers.record_promise_at_risk(store, publisher, promise(3))
    assert raised is not None
    await handlers.act_on_alert(store, publisher, ResolveAlert(raised.alert_id, by="kim"))
    assert await handlers.record_promise_at_risk(store, publisher, promise(4)) is None  # the same break, dealt with
    await handlers.record_promise_restored(store, publisher, restored(5))  # nothing open: nothing to resolve
    assert len(store.alerts) == 1
    again = await handlers.record_promise_at_risk(store, publisher, promise(6))  # it broke again
    assert again is not None and again.alert_id != raised.alert_id and again.status == "open"


async def test_each_line_has_its_own_alert() -> None:
    store, publisher = await a_store_with_accounts(), RecordingPublisher()
    await handlers.record_promise_at_risk(store, publisher, promise(3))
    await handlers.record_promise_at_risk(store, publisher, promise(3, line_id="2"))
    await handlers.record_promise_at_risk(store, publisher, promise(3, order_id="SO-2"))
    assert sorted(a.subject for a in store.alerts.values()) == ["SO-1/1", "SO-1/2", "SO-2/1"]


# ---------------------------------------------------------------- published accounts


async def test_every_real_account_change_publishes_the_next_version_and_an_identical_put_nothing() -> None:
    store, publisher = FakeReturnsStore(), RecordingPublisher()
    created = await handlers.put_account(store, publisher, PutAccount("ACC-1", "Acme", Segment.STABLE, "k@x.com"))
    same = await handlers.put_account(store, publisher, PutAccount("ACC-1", "Acme", Segment.STABLE, "k@x.com"))
    tier = await handlers.put_account(store, publisher, PutAccount("ACC-1", "Acme", Segment.STRATEGIC, "k@x.com"))
    assert (created.created, created.changed, same.changed, tier.created, tier.changed) == (
        True,
        True,
        False,
        False,
        True,
    )
    assert publisher.types() == [EventType.ACCOUNT_CHANGED, EventType.ACCOUNT_CHANGED]
    data = [e.data for e in publisher.events]
    assert all(isinstance(d, AccountChangedData) for d in data)
    assert [(d.version, d.segment, d.owner_email) for d in data] == [
        (1, "stable", "k@x.com"),
        (2, "strategic", "k@x.com"),
    ]
    assert {(e.key, e.subject) for e in publisher.events} == {("ACC-1", "ACC-1")}
    assert data[1].changed_at == tier.account.updated_at
