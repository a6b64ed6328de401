"""The outbox relay's gathering time: the returns service's own default, the others' none, and a value set in the
environment wins over both, 0 included."""

from __future__ import annotations

import pytest

from services.returns_service.settings import ReturnsSettings
from shared.settings import Settings
from shared.settings_upgrade import upgrade_settings


def test_each_service_has_its_own_default_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESOPS_RELAY_GATHER_S", raising=False)
    assert Settings().relay_gather == 0.0
    assert ReturnsSettings().relay_gather == 0.1
    # Shared settings upgraded to the returns service's keep their unset value: the returns default holds.
    assert upgrade_settings(Settings(), ReturnsSettings).relay_gather == 0.1
    monkeypatch.setenv("SALESOPS_RELAY_GATHER_S", "0")
    assert ReturnsSettings().relay_gather == 0.0
    assert upgrade_settings(Settings(), ReturnsSettings).relay_gather == 0.0
    monkeypatch.setenv("SALESOPS_RELAY_GATHER_S", "0.25")
    assert Settings().relay_gather == 0.25
    assert ReturnsSettings().relay_gather == 0.25
