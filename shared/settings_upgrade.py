"""A service's own settings class from the shared `Settings` an app was built with: the shared values are
kept, the service's own knobs come from the environment."""

from __future__ import annotations

from typing import TypeVar

from shared.settings import Settings

ServiceSettings = TypeVar("ServiceSettings", bound=Settings)


def upgrade_settings(settings: Settings | None, to: type[ServiceSettings]) -> ServiceSettings:
    if isinstance(settings, to):
        return settings
    return to(**settings.model_dump()) if settings is not None else to()
