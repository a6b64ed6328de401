"""The spike rule is configured from `SALESOPS_SPIKE_*` settings, with the documented defaults."""

import pytest

from services.fulfillment_service.domain import SpikeRule
from services.fulfillment_service.settings import FulfillmentSettings


def test_defaults_are_the_rule_defaults() -> None:
    assert FulfillmentSettings().spike_rule() == SpikeRule()


def test_environment_overrides_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_SPIKE_Z_THRESHOLD", "4.5")
    monkeypatch.setenv("SALESOPS_SPIKE_BASELINE_WEEKS", "4")
    rule = FulfillmentSettings().spike_rule()
    assert rule.z_threshold == 4.5 and rule.window_days == 28


def test_inconsistent_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="min_history_days"):
        FulfillmentSettings(spike_baseline_weeks=1, spike_min_history_days=14).spike_rule()
