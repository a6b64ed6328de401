"""The promotion service's store in dictionaries: the same answers as `SqlStore` for what handlers ask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from services.promotion_service.domain import PromotionStatus, SkuConflict
from services.promotion_service.store import ConflictReport, LaunchRecord, OpenConflict, PromotionRecord


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakePromotionStore:
    promotions: dict[str, PromotionRecord] = field(default_factory=dict)
    launches: dict[str, LaunchRecord] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], ConflictReport] = field(default_factory=dict)
    locked: list[str] = field(default_factory=list)

    async def insert_promotion(
        self, promotion_id: str, *, body: Mapping[str, Any], request_hash: str, partition_key: str
    ) -> PromotionRecord | None:
        if promotion_id in self.promotions:
            return None
        now = _now()
        record = PromotionRecord(
            promotion_id=promotion_id,
            body=dict(body),
            request_hash=request_hash,
            status=PromotionStatus.PLANNED.value,
            version=1,
            partition_key=partition_key,
            conflict=None,
            created_at=now,
            updated_at=now,
        )
        self.promotions[promotion_id] = record
        return record

    async def promotion(self, promotion_id: str, *, lock: bool = False) -> PromotionRecord | None:
        if lock:
            self.locked.append(promotion_id)
        return self.promotions.get(promotion_id)

    async def live_promotions_overlapping(
        self, promotion_id: str, skus: Sequence[str], starts_on: date, ends_on: date
    ) -> list[PromotionRecord]:
        return [
            p
            for p in self.promotions.values()
            if p.status != PromotionStatus.CANCELLED.value
            and p.promotion_id != promotion_id
            and p.body["starts_on"] <= ends_on.isoformat()
            and p.body["ends_on"] >= starts_on.isoformat()
            and {item["sku"] for item in p.body["items"]} & set(skus)
        ]

    def _next_version(self, promotion_id: str, **changes: Any) -> PromotionRecord:
        current = self.promotions[promotion_id]
        updated = replace(current, **changes, version=current.version + 1, updated_at=_now())
        self.promotions[promotion_id] = updated
        return updated

    async def revise_promotion(self, promotion_id: str, body: Mapping[str, Any]) -> PromotionRecord:
        return self._next_version(promotion_id, body=dict(body))

    async def cancel_promotion(self, promotion_id: str) -> PromotionRecord:
        return self._next_version(promotion_id, status=PromotionStatus.CANCELLED.value)

    async def insert_launch(
        self, launch_id: str, *, sku: str, launch_on: date, body: Mapping[str, Any], request_hash: str
    ) -> LaunchRecord | None:
        if launch_id in self.launches:
            return None
        record = LaunchRecord(launch_id, sku, launch_on, dict(body), request_hash, _now())
        self.launches[launch_id] = record
        return record

    async def launch(self, launch_id: str) -> LaunchRecord | None:
        return self.launches.get(launch_id)

    async def known_promotion_ids(self, promotion_ids: Sequence[str]) -> set[str]:
        return set(promotion_ids) & set(self.promotions)

    async def conflict_plan_version(self, promotion_id: str, sku: str) -> int | None:
        stored = self.conflicts.get((promotion_id, sku))
        return stored.plan_version if stored else None

    async def save_conflict(self, promotion_id: str, report: ConflictReport) -> None:
        self.conflicts[(promotion_id, report.sku)] = report

    async def open_conflicts_of_sku(self, sku: str, promotion_ids: Sequence[str]) -> list[OpenConflict]:
        return [
            OpenConflict(promotion_id, stored.plan_version)
            for (promotion_id, conflict_sku), stored in sorted(self.conflicts.items())
            if conflict_sku == sku and (not promotion_ids or promotion_id in promotion_ids)
        ]

    async def delete_conflict(self, promotion_id: str, sku: str) -> None:
        self.conflicts.pop((promotion_id, sku), None)

    async def conflicts_of(self, promotion_id: str) -> list[SkuConflict]:
        return [
            SkuConflict(sku=sku, weeks=stored.weeks, total_shortfall=stored.total_shortfall)
            for (owner, sku), stored in sorted(self.conflicts.items())
            if owner == promotion_id
        ]

    async def set_conflict_state(self, promotion_id: str, status: str, conflict: Mapping[str, Any] | None) -> None:
        current = self.promotions[promotion_id]
        self.promotions[promotion_id] = replace(current, status=status, conflict=conflict, updated_at=_now())
