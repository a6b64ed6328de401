"""After a re-plan: which booked promises the revised supply can no longer keep and which came back, stored
and published per line (`salesops.promise.at-risk.v1` / `.restored.v1`, keyed by SKU) with the events
behind the revision. The breaking order is the domain's (`domain/promises.py`: review_promises,
diff_at_risk); this module loads, saves and publishes.

Part of the handlers' room, like `recompute.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.planning_service.domain import SkuInputs, SkuPlan
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.domain.promises import (
    AtRiskLine,
    ChangeKind,
    PromiseChange,
    PromiseReview,
    Supply,
    all_promises_kept,
    diff_at_risk,
    review_promises,
)
from services.planning_service.store import Store
from shared.events import EventType, PromiseData, PromiseDriverData, Segment
from shared.ports import Publisher

SEGMENTS: dict[Tier, Segment] = {
    Tier.STRATEGIC: "strategic",
    Tier.INTEGRATED: "integrated",
    Tier.EMERGING: "emerging",
    Tier.STABLE: "stable",
}
# An event names at most this many of the revision's drivers (as mps.revised does).
MAX_PROMISE_DRIVERS = 100


async def review_promises_after(
    store: Store,
    publisher: Publisher,
    plans: Sequence[SkuPlan],
    inputs: Sequence[SkuInputs],
    versions: Mapping[str, int],
    drivers: Mapping[str, Sequence[str]],
) -> list[PromiseChange]:
    """Review every re-planned SKU's open lines against its new supply; store and publish real changes only.

    A SKU with no open line and nothing at risk before is skipped: it has no promise to break or restore.
    """
    if not plans:
        return []
    inputs_of = {inp.item.sku: inp for inp in inputs}
    previous = await store.promises_at_risk([plan.sku for plan in plans])
    reviewed: dict[str, list[AtRiskLine]] = {}
    changes: dict[str, tuple[PromiseReview, list[PromiseChange]]] = {}
    # The SKUs with open lines, with their supply: those whose supply covers all of their lines at once (the
    # common case) and had none at risk have nothing to publish, so the review goes line by line only for the rest.
    supplies = [
        (Supply.from_plan(plan, inputs_of[plan.sku].item.on_hand), plan.sku, inputs_of[plan.sku].order_lines)
        for plan in plans
        if inputs_of[plan.sku].order_lines or previous.get(plan.sku)
    ]
    fits = all_promises_kept([supply for supply, _, _ in supplies], [lines for _, _, lines in supplies])
    for (supply, sku, open_lines), all_kept in zip(supplies, fits, strict=True):
        before = previous.get(sku, [])
        if all_kept and not before:
            continue
        review = review_promises(supply, open_lines)
        found = diff_at_risk(before, review.at_risk)
        if found:
            reviewed[sku] = list(review.at_risk)
            changes[sku] = (review, found)
    if not changes:
        return []
    await store.save_promises_at_risk(reviewed, plan_versions=versions)
    wanted = list(dict.fromkeys(i for sku in changes for i in drivers.get(sku, ())[:MAX_PROMISE_DRIVERS]))
    known = await store.drivers_by_id(wanted)
    published: list[PromiseChange] = []
    for sku, (review, found) in changes.items():
        driver_data = [
            PromiseDriverData(
                event_id=event_id,
                type=known[event_id]["event_type"] if event_id in known else None,
                summary=known[event_id]["summary"] if event_id in known else "",
            )
            for event_id in drivers.get(sku, ())[:MAX_PROMISE_DRIVERS]
        ]
        lines = {line.key: line for line in inputs_of[sku].order_lines}
        kept = set(review.kept)
        for change in found:
            publisher.publish(
                EventType.PROMISE_AT_RISK if change.kind == ChangeKind.AT_RISK else EventType.PROMISE_RESTORED,
                key=sku,
                subject=change.line.order_id,
                data=_promise_data(change, versions[sku], driver_data, lines, kept),
            )
            published.append(change)
    return published


def _promise_data(
    change: PromiseChange,
    plan_version: int,
    drivers: list[PromiseDriverData],
    lines: Mapping[tuple[str, str], OrderLine],
    kept: set[tuple[str, str]],
) -> PromiseData:
    """An at-risk line as reviewed. A restored line has nothing short: while it is still open it is shown as
    it stands now, met on its promised date (`earliest_on` null once it is shipped, cancelled or promised
    beyond the horizon, where it is shown as last reported)."""
    line = change.line
    fields = {
        "order_id": line.order_id,
        "line_id": line.line_id,
        "account_id": line.account_id,
        "tier": SEGMENTS[line.tier],
        "sku": line.sku,
        "quantity": line.quantity,
        "quantity_short": line.quantity_short,
        "promised_on": line.promised_on,
        "earliest_on": line.new_earliest_on,
    }
    if change.kind == ChangeKind.RESTORED:
        current = lines.get(line.key)
        fields |= {"quantity_short": 0.0, "earliest_on": None}
        if current is not None:
            fields |= {
                "account_id": current.account_id,
                "tier": SEGMENTS[current.tier],
                "quantity": current.open_quantity,
                "promised_on": current.promised_on,
                "earliest_on": current.promised_on if current.key in kept else None,
            }
    return PromiseData.model_validate(fields | {"plan_version": plan_version, "drivers": drivers})
