"""Settings of the fulfillment service: the shared ones plus the spike rule (`SALESOPS_SPIKE_*`) and the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import Field

from services.fulfillment_service.domain import SpikeRule
from shared.settings import Settings

_DEFAULT = SpikeRule()


class FulfillmentSettings(Settings):
    spike_baseline_weeks: int = Field(default=_DEFAULT.baseline_weeks, ge=1, le=52)
    spike_level_days: int = Field(default=_DEFAULT.level_days, ge=1)
    spike_min_history_days: int = Field(default=_DEFAULT.min_history_days, ge=1)
    spike_min_same_weekday: int = Field(default=_DEFAULT.min_same_weekday, ge=1)
    spike_z_threshold: float = Field(default=_DEFAULT.z_threshold, ge=0)
    spike_min_ratio: float = Field(default=_DEFAULT.min_ratio, ge=0)
    spike_min_units: float = Field(default=_DEFAULT.min_units, ge=0)
    spike_min_sigma: float = Field(default=_DEFAULT.min_sigma, gt=0)
    # Pins "today" (ISO date) so tests and replays judge backorders and shipment dates against a fixed day.
    clock_today: date | None = None

    def today(self) -> date:
        return self.clock_today or datetime.now(UTC).date()

    def spike_rule(self) -> SpikeRule:
        """The rule these settings describe; raises ValueError for an inconsistent combination."""
        return SpikeRule(
            baseline_weeks=self.spike_baseline_weeks,
            level_days=self.spike_level_days,
            min_history_days=self.spike_min_history_days,
            min_same_weekday=self.spike_min_same_weekday,
            z_threshold=self.spike_z_threshold,
            min_ratio=self.spike_min_ratio,
            min_units=self.spike_min_units,
            min_sigma=self.spike_min_sigma,
        )
