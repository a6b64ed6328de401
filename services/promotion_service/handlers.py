"""Promotion commands and planning's capacity-conflict events: load, apply the domain rules, save, record
events. Handlers take the store and the unit of work's publisher as parameters; only the boundary commits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog

from services.promotion_service.domain import (
    CreateLaunch,
    CreatePromotion,
    OverlapWarning,
    PromotionSpan,
    PromotionStatus,
    RevisePromotion,
    RuleViolation,
    check_launch,
    check_promotion,
    conflict_summary,
    is_older_report,
    merge_revision,
    overlap_warnings,
    status_after_conflicts,
)
from services.promotion_service.store import ConflictReport, LaunchRecord, PromotionRecord, Store
from shared.errors import ProblemError, conflict, not_found
from shared.events import CapacityConflictData, CloudEvent, EventType, LaunchData, PromotionData
from shared.idempotency import fingerprint
from shared.ports import Publisher

log = structlog.get_logger("salesops.promotion")

# Turns a merged revision into a create body, validated as a create request is (the API passes its schema).
BodyValidator = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class WrittenPromotion:
    """The outcome of a create or a revision: the stored promotion, advice that did not block the change,
    and whether anything was written (created, or revised)."""

    promotion: PromotionRecord
    warnings: list[OverlapWarning]
    changed: bool


def unprocessable(violations: Sequence[RuleViolation]) -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Entity",
        "; ".join(f"{v.field}: {v.message}" for v in violations),
        errors=[{"field": v.field, "message": v.message} for v in violations],
    )


def _reject_violations(command: CreatePromotion) -> None:
    violations = check_promotion(
        starts_on=command.starts_on,
        ends_on=command.ends_on,
        item_skus=command.item_skus,
        cannibalized_skus=command.cannibalized_skus,
    )
    if violations:
        raise unprocessable(violations)


def _span(body: Mapping[str, Any]) -> PromotionSpan:
    return PromotionSpan(
        promotion_id=body["promotion_id"],
        skus=frozenset(item["sku"] for item in body["items"]),
        starts_on=date.fromisoformat(body["starts_on"]),
        ends_on=date.fromisoformat(body["ends_on"]),
    )


async def _warnings(store: Store, promotion: PromotionRecord) -> list[OverlapWarning]:
    """Overlapping live promotions of the same SKUs: advice in the answer, never a refusal."""
    candidate = _span(promotion.body)
    others = await store.live_promotions_overlapping(
        candidate.promotion_id, sorted(candidate.skus), candidate.starts_on, candidate.ends_on
    )
    return overlap_warnings(candidate, [_span(other.body) for other in others])


def _event_data(promotion: PromotionRecord) -> PromotionData:
    return PromotionData.model_validate({**promotion.body, "status": promotion.status, "version": promotion.version})


def _require_identical(stored_hash: str, request_hash: str, what: str, ident: str, key: str) -> None:
    """An identical retry answers with the stored resource; the same id with another body is a conflict."""
    if stored_hash != request_hash:
        raise conflict(f"{what} '{ident}' already exists with a different body", **{key: ident})


async def create_promotion(store: Store, publisher: Publisher, command: CreatePromotion) -> WrittenPromotion:
    """Store a new promotion and announce it; an identical retry returns the stored one and publishes nothing."""
    _reject_violations(command)
    request_hash = fingerprint(command.body)
    inserted = await store.insert_promotion(
        command.promotion_id, body=command.body, request_hash=request_hash, partition_key=command.item_skus[0]
    )
    if inserted is None:
        stored = await store.promotion(command.promotion_id)
        assert stored is not None  # the insert found it
        _require_identical(stored.request_hash, request_hash, "promotion", command.promotion_id, "promotion_id")
        return WrittenPromotion(stored, await _warnings(store, stored), changed=False)
    publisher.publish(
        EventType.PROMOTION_PLANNED,
        key=inserted.partition_key,
        subject=inserted.promotion_id,
        data=_event_data(inserted),
    )
    return WrittenPromotion(inserted, await _warnings(store, inserted), changed=True)


async def _load_for_update(store: Store, promotion_id: str) -> PromotionRecord:
    # The row lock serialises concurrent revisions, so versions and events never interleave.
    promotion = await store.promotion(promotion_id, lock=True)
    if promotion is None:
        raise not_found("promotion", promotion_id)
    return promotion


def _revised_body(current: Mapping[str, Any], changes: Mapping[str, Any], validate: BodyValidator) -> Mapping[str, Any]:
    merged, violations = merge_revision(current, changes)
    if violations:
        raise unprocessable(violations)
    body = validate(merged)
    _reject_violations(CreatePromotion.from_body(body))
    return body


async def revise_promotion(
    store: Store, publisher: Publisher, command: RevisePromotion, validate: BodyValidator
) -> WrittenPromotion:
    """Apply a partial revision; publishes `revised` with the whole promotion when anything changed."""
    current = await _load_for_update(store, command.promotion_id)
    if current.status == PromotionStatus.CANCELLED.value:
        raise conflict(
            f"promotion '{command.promotion_id}' is cancelled and can no longer be revised",
            promotion_id=command.promotion_id,
        )
    body = _revised_body(current.body, command.changes, validate)
    if body == current.body:
        return WrittenPromotion(current, await _warnings(store, current), changed=False)
    revised = await store.revise_promotion(command.promotion_id, body)
    publisher.publish(
        EventType.PROMOTION_REVISED,
        key=revised.partition_key,
        subject=command.promotion_id,
        data=_event_data(revised),
    )
    return WrittenPromotion(revised, await _warnings(store, revised), changed=True)


async def cancel_promotion(store: Store, publisher: Publisher, promotion_id: str) -> tuple[PromotionRecord, bool]:
    """Cancel once: a repeated cancel answers with the cancelled promotion and publishes nothing."""
    current = await _load_for_update(store, promotion_id)
    if current.status == PromotionStatus.CANCELLED.value:
        return current, False
    cancelled = await store.cancel_promotion(promotion_id)
    publisher.publish(
        EventType.PROMOTION_CANCELLED,
        key=cancelled.partition_key,
        subject=promotion_id,
        data=_event_data(cancelled),
    )
    return cancelled, True


async def create_launch(store: Store, publisher: Publisher, command: CreateLaunch) -> tuple[LaunchRecord, bool]:
    """Store a launch and announce it; idempotent on `launch_id` like a promotion create."""
    violations = check_launch(sku=command.sku, reference_sku=command.reference_sku)
    if violations:
        raise unprocessable(violations)
    request_hash = fingerprint(command.body)
    inserted = await store.insert_launch(
        command.launch_id, sku=command.sku, launch_on=command.launch_on, body=command.body, request_hash=request_hash
    )
    if inserted is None:
        stored = await store.launch(command.launch_id)
        assert stored is not None  # the insert found it
        _require_identical(stored.request_hash, request_hash, "launch", command.launch_id, "launch_id")
        return stored, False
    publisher.publish(
        EventType.LAUNCH_PLANNED,
        key=command.sku,
        subject=command.launch_id,
        data=LaunchData.model_validate(inserted.body),
    )
    return inserted, True


# ---------------------------------------------------------------- capacity conflicts from planning


async def _refresh_conflict_state(store: Store, promotion_id: str) -> None:
    """Recompute the promotion's conflict summary and status from its open conflicts."""
    promotion = await store.promotion(promotion_id, lock=True)
    if promotion is None:
        return
    open_conflicts = await store.conflicts_of(promotion_id)
    status = status_after_conflicts(PromotionStatus(promotion.status), len(open_conflicts))
    summary = conflict_summary(open_conflicts)
    if status.value != promotion.status or summary != promotion.conflict:
        # Status mirrors planning's own report, so no promotion event is published for it: planning
        # already knows, and re-announcing would make it re-plan for nothing.
        await store.set_conflict_state(promotion_id, status.value, summary)


async def on_capacity_conflict_detected(store: Store, event: CloudEvent, data: CapacityConflictData) -> None:
    """Planning cannot cover the SKU's demand: the named promotions are at risk until it says resolved."""
    known = await store.known_promotion_ids(data.promotion_ids)
    for unknown in sorted(set(data.promotion_ids) - known):
        log.warning("capacity conflict for an unknown promotion ignored", promotion_id=unknown, sku=data.sku)
    report = ConflictReport(
        sku=data.sku,
        weeks=tuple((week.week_start, week.shortfall) for week in data.weeks),
        total_shortfall=data.total_shortfall,
        plan_version=data.plan_version,
        event_id=event.id,
    )
    for promotion_id in sorted(known):
        if is_older_report(await store.conflict_plan_version(promotion_id, data.sku), data.plan_version):
            continue
        await store.save_conflict(promotion_id, report)
        await _refresh_conflict_state(store, promotion_id)


async def on_capacity_conflict_resolved(store: Store, data: CapacityConflictData) -> None:
    """Planning covers the SKU again; without promotion ids, every conflict on the SKU is resolved."""
    for open_conflict in await store.open_conflicts_of_sku(data.sku, data.promotion_ids):
        if is_older_report(open_conflict.plan_version, data.plan_version):
            continue
        await store.delete_conflict(open_conflict.promotion_id, data.sku)
        await _refresh_conflict_state(store, open_conflict.promotion_id)
