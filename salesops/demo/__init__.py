"""`salesops demo`: a few months of a small kitchen-appliance company played through a running system.

The scenario is a pure function of (seed, today): the same seed on the same day sends byte-identical
requests, and every id derives from the seed, so re-running it is an identical retry (200, nothing new
published). "Today" is the UTC date, the same default the services use; history ends yesterday and the
campaigns lie ahead of today.
"""

from salesops.demo.run import plan_changes, run_demo
from salesops.demo.scenario import QUALITY_REASONS, SPIKE_RUN_DAYS, Scenario, build_scenario

__all__ = ["QUALITY_REASONS", "SPIKE_RUN_DAYS", "Scenario", "build_scenario", "plan_changes", "run_demo"]
