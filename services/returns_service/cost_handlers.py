"""Cost-to-serve handlers: keep the copy of sales orders and shipments, recount an account's ledger whenever one
of its facts changes, and raise, update or resolve its `account-unprofitable` and `segment-mismatch` alerts.

Ledger: rebuilt for the whole account from its stored facts (newest order versions, shipments, returns,
complaints) on every change (an order or a shipment in the consumer's transaction; a return or a complaint marks
the account and the recount task recounts it shortly after, `recount_marked`), so duplicates, corrections and
late events leave it exactly as if everything had arrived once and in order. Rates price the stored driver
counts when read (a rate change re-prices history).
Alerts: evaluated for the account right after each recount, after a change of its segment, and by the refresh
(a new day, new rates)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from services.returns_service import handlers
from services.returns_service.costing import (
    CostRates,
    OrderFact,
    OrderLineFact,
    ShipmentFact,
    ShipmentLineFact,
    behaviour_profile,
    count_drivers,
    find_unprofitable,
    mismatch_content,
    mismatch_priority,
    price,
    suggest_tier,
    unprofitable_content,
    unprofitable_priority,
    window,
)
from services.returns_service.domain import (
    AlertContent,
    AlertType,
    DecisionKind,
    Evidence,
    OpenAlert,
    Priority,
    PutAccount,
    decide_alert,
)
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import (
    AccountWrite,
    AlertRecord,
    CostStore,
    GroupRecountStore,
    RecountStore,
    StoredRates,
)
from shared.events import EventType, SalesOrderData, ShipmentRecordedData
from shared.ports import Publisher


def order_fact(data: SalesOrderData) -> OrderFact:
    lines = tuple(
        OrderLineFact(line.line_id, line.sku, line.quantity, line.promised_on, line.unit_price, line.unit_cost)
        for line in data.lines
    )
    return OrderFact(
        data.order_id, data.account_id, data.version, data.ordered_on, lines, data.rush, data.status == "cancelled"
    )


def shipment_fact(data: ShipmentRecordedData) -> ShipmentFact:
    shipment = data.shipment
    lines = tuple(ShipmentLineFact(line.line_id, line.quantity) for line in shipment.lines)
    return ShipmentFact(shipment.shipment_id, data.order_id, shipment.shipped_on, lines)


# ---------------------------------------------------------------- facts in


async def record_sales_order(
    store: CostStore, publisher: Publisher, data: SalesOrderData, settings: ReturnsSettings
) -> bool:
    """Keep the order's newest version (and the delivery a shipment event carries) and recount the account
    when anything changed; a duplicate or an older version changes nothing. True when something changed."""
    await store.lock_account_costs(data.account_id)
    changed = await store.save_order(order_fact(data), status=data.status)
    if isinstance(data, ShipmentRecordedData):
        # A delivery is a fact of its own: kept even when its event carries an order version already superseded.
        changed = await store.save_shipment(shipment_fact(data)) or changed
    if changed:
        await recount_account(store, publisher, data.account_id, settings)
    return changed


async def put_account(
    store: CostStore, publisher: Publisher, command: PutAccount, settings: ReturnsSettings
) -> AccountWrite:
    """A new segment changes what the account's behaviour is measured against: its cost alerts are evaluated
    again (the ledger itself does not depend on the segment)."""
    await store.lock_account_costs(command.account_id)
    result = await handlers.put_account(store, publisher, command)
    await evaluate_account(store, publisher, command.account_id, settings)
    return result


async def put_cost_rates(store: CostStore, rates: CostRates, *, by: str | None) -> StoredRates:
    """New rates price every month from now on, history included; the refresh re-evaluates the alerts."""
    return await store.put_rates(rates, by=by)


# ---------------------------------------------------------------- the ledger and the alerts


async def recount_account(
    store: RecountStore, publisher: Publisher, account_id: str, settings: ReturnsSettings
) -> None:
    """Rebuild the account's rate-free ledger from its facts as of today, then evaluate its alerts."""
    await store.lock_account_costs(account_id)
    today = settings.today()
    facts = await store.account_facts(account_id)
    months = [m for m in count_drivers(facts, today) if m.account_id == account_id]
    await store.replace_ledger(account_id, months, today)
    await evaluate_account(store, publisher, account_id, settings)


COST_ALERTS = (AlertType.ACCOUNT_UNPROFITABLE, AlertType.SEGMENT_MISMATCH)


async def evaluate_account(
    store: RecountStore, publisher: Publisher, account_id: str, settings: ReturnsSettings
) -> None:
    """Raise, update or resolve the account's `account-unprofitable` and `segment-mismatch` alerts (under the
    account's cost lock, which every writer of them holds)."""
    await store.lock_account_costs(account_id)
    today = settings.today()
    unprofitable, mapping = settings.unprofitable_rule(), settings.mapping_rule()
    first, last = window(today, max(unprofitable.window_months, mapping.window_months))
    m_first, m_last = window(today, mapping.window_months)
    inputs = await store.evaluation_inputs(
        account_id, first=first, last=last, mapping_first=m_first, mapping_last=m_last
    )
    current = await store.begin_evaluation(account_id, COST_ALERTS, datetime.now(UTC))
    rates = inputs.rates.rates
    entries = [price(m, rates) for m in inputs.months]
    account = inputs.account
    segment = account.segment if account else None
    segments = {account_id: segment} if segment else {}

    findings = find_unprofitable(entries, segments, today, unprofitable)
    if findings:
        finding = findings[0]
        content = unprofitable_content(finding, account, rates.currency)
        await raise_or_update(
            store,
            publisher,
            finding,
            content,
            unprofitable_priority(finding),
            current=current.get(AlertType.ACCOUNT_UNPROFITABLE.value),
        )
    else:
        await _clear(store, publisher, current.get(AlertType.ACCOUNT_UNPROFITABLE.value), today.isoformat())

    suggestion = None
    if any(m_first <= e.month <= m_last for e in entries):
        assert inputs.revenue_all is not None  # read whenever the account has a month in the mapping window
        profile = behaviour_profile(account_id, entries, today, mapping.window_months, inputs.revenue_all)
        suggestion = suggest_tier(profile, segment, mapping)
    if suggestion is not None and suggestion.mismatch:
        content = mismatch_content(suggestion, account)
        await raise_or_update(
            store,
            publisher,
            suggestion,
            content,
            mismatch_priority(suggestion),
            current=current.get(AlertType.SEGMENT_MISMATCH.value),
        )
    else:
        await _clear(store, publisher, current.get(AlertType.SEGMENT_MISMATCH.value), today.isoformat())


async def raise_or_update(
    store: RecountStore,
    publisher: Publisher,
    finding: Evidence,
    content: AlertContent,
    priority: Priority,
    *,
    current: AlertRecord | None,
) -> AlertRecord | None:
    """One open alert per (type, account): raised once, updated when its evidence changes, left alone when it
    does not, and not raised again with the evidence a person resolved. `current` is the open alert, locked."""
    alert_type, subject = finding.alert_type, finding.subject
    open_ref = OpenAlert(current.alert_id, alert_type, subject, current.fingerprint) if current else None
    resolved = None if current else await store.resolved_fingerprint(alert_type, subject)
    decision = decide_alert(open_ref, finding, resolved_fingerprint=resolved)
    if decision.kind is DecisionKind.NONE or decision.fingerprint is None:
        return None
    if decision.kind is DecisionKind.RAISE:
        return await handlers.raise_alert(
            store, publisher, alert_type, subject, content, priority=priority, fingerprint=decision.fingerprint
        )
    assert current is not None and decision.alert_id == current.alert_id
    return await handlers.revise_alert(
        store, publisher, current, content, priority=priority, fingerprint=decision.fingerprint
    )


async def _clear(store: RecountStore, publisher: Publisher, current: AlertRecord | None, on: str) -> None:
    """The system resolves the open alert (locked) because its cause went away."""
    if current is None:
        return
    closed = await store.close_alert(current.alert_id, {**current.details, "cleared_on": on})
    await handlers.announce(store, publisher, closed, EventType.SALES_ALERT_UPDATED)


async def recount_marked(store: RecountStore, publisher: Publisher, account_id: str, settings: ReturnsSettings) -> bool:
    """Recount an account a return or complaint marked (see `cost_recount`), under its cost lock, and remove the
    mark unless a new one came in meanwhile. False when the mark was already gone (nothing to do)."""
    due_seq = await store.begin_recount(account_id)
    if due_seq is None:
        return False
    await recount_account(store, publisher, account_id, settings)
    await store.finish_recount(account_id, due_seq)
    return True


async def recount_marked_together(
    store: GroupRecountStore, publisher: Publisher, account_ids: Sequence[str], settings: ReturnsSettings
) -> list[str]:
    """`recount_marked` of several accounts in the caller's transaction (one BEGIN and COMMIT, one removal of
    their marks); returns the accounts left for a transaction of their own, those whose cost lock another
    transaction held. Only the first account's lock is waited for: the others are taken only if free, so a
    transaction holding cost locks never waits for another one (no deadlock with one that takes the same locks in
    another order). The marks go in the last statement, so a request that marks one of these accounts meanwhile
    waits at most for the COMMIT, as it would for a recount of that account alone."""
    finished: list[tuple[str, int]] = []
    busy: list[str] = []
    for account_id in account_ids:
        if store.cost_locks:
            locked, due_seq = await store.try_begin_recount(account_id)
            if not locked:
                busy.append(account_id)
                continue
        else:
            due_seq = await store.begin_recount(account_id)
        if due_seq is None:
            continue  # counted by a recount that held the lock meanwhile
        await recount_account(store, publisher, account_id, settings)
        finished.append((account_id, due_seq))
    await store.finish_recounts(finished)
    return busy


# ---------------------------------------------------------------- the refresh


async def accounts_due(store: CostStore, settings: ReturnsSettings) -> list[str]:
    """One batch of accounts to recount: counted before today (backorders fall due, trailing windows move) or
    evaluated before the rates last changed. Each is then recounted in its own transaction (`recount_account`),
    so the refresh never holds two accounts' locks at once."""
    stored = await store.stored_rates()
    return await store.accounts_to_refresh(settings.today(), stored.updated_at, settings.cost_refresh_batch_size)
