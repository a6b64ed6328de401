"""Events the consumer tests feed their loops: a small, valid promotion that touches one SKU."""

from __future__ import annotations

from shared.events import CloudEvent, EventType, PromotionData, new_event


def planned_promotion(promotion_id: str) -> CloudEvent:
    """A `promotion.planned` event of `promotion_id`: 10 % on SKU-1 for two days."""
    data = PromotionData.model_validate(
        {
            "promotion_id": promotion_id,
            "name": promotion_id,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-02",
            "items": [{"sku": "SKU-1", "uplift_pct": 10}],
        }
    )
    return new_event(EventType.PROMOTION_PLANNED, source="test", subject=promotion_id, data=data)
