"""Settings of the planning service: the horizon, the clock and how often a new ISO week is looked for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import Field

from services.planning_service.domain import PlanningParams
from shared.settings import Settings
from shared.settings_upgrade import upgrade_settings
from shared.types import PlanDate

PlanStorage = Literal["expanded", "compact"]


class PlanningSettings(Settings):
    """`SALESOPS_*` environment variables of the planning service (on top of the shared ones)."""

    planning_horizon_weeks: int = Field(default=26, ge=1, le=104)
    # Pins "today" (ISO date) so tests and replays plan against a fixed current week.
    clock_today: PlanDate | None = None
    # How often the background task checks whether a new ISO week began (then snapshots and replans).
    planning_rollover_check_s: float = Field(default=30.0, gt=0)
    # A full re-plan goes through the SKUs this many at a time, each chunk its own transaction under its SKUs'
    # locks: its memory is two chunks' (two are in flight), and an event's re-plan waits for one chunk at most.
    planning_replan_chunk_skus: int = Field(default=500, ge=1, le=100_000)
    # Demand sensing: the share of a confirmed level shift's run-rate gap adopted, the fade per week after
    # the held weeks, and how many weeks it is held. The whole gap: a shift is adopted only once several
    # spike days confirm it, and one-off spike days add their observed excess alone.
    planning_sensing_weight: float = Field(default=1.0, ge=0)
    planning_sensing_decay: float = Field(default=0.5, ge=0, le=1)
    planning_sensing_weeks: int = Field(default=4, ge=0, le=26)
    # Fitting baseline models in the background: worker processes (0: a thread of the service instead) and
    # how often SKUs needing a fit (new week, no model, history changed) are looked for.
    planning_fit_workers: int = Field(default=1, ge=0, le=8)
    planning_fit_check_s: float = Field(default=30.0, gt=0)
    # How long a replica's fitter holds the SKUs of the chunk it is fitting (released when the chunk is stored):
    # a replica that dies mid-fit leaves them to the others after this long.
    planning_fit_lease_s: float = Field(default=900.0, gt=0)
    # The fit's worker processes exit once no SKU needed a fit for this long (0: as soon as none does), and
    # start again for the next fit: each holds the statistics libraries, a few hundred MB, between rollovers.
    planning_fit_worker_idle_s: float = Field(default=120.0, ge=0)
    # How plans' weeks and revisions' changes are written: `expanded`, an object per week and per change, as
    # every version of the service reads them; `compact`, the field names once and arrays of values (under half
    # the size, a seventh for a first plan's changes), which versions before this one cannot read. Both are
    # always read. Expanded while replicas of an earlier version may still run (a rolling upgrade, and before
    # going back to one); compact once every replica reads both (see deploy/README.md, "Upgrading").
    planning_plan_storage: PlanStorage = "expanded"

    def planning_params(self) -> PlanningParams:
        return PlanningParams(
            sensing_weight=self.planning_sensing_weight,
            sensing_decay=self.planning_sensing_decay,
            sensing_weeks=self.planning_sensing_weeks,
        )

    def today(self) -> date:
        return self.clock_today or datetime.now(UTC).date()

    def horizon_start(self) -> date:
        """Monday of the current ISO week: the first week of every plan."""
        today = self.today()
        return today - timedelta(days=today.weekday())


def planning_settings(settings: Settings | None) -> PlanningSettings:
    """Shared `Settings` upgraded to `PlanningSettings`; the service's own knobs come from the environment."""
    return upgrade_settings(settings, PlanningSettings)
