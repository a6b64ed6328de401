"""Where the console finds the four services (environment `SALESOPS_CONSOLE_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("promotion", "fulfillment", "returns", "planning")


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_CONSOLE_", extra="ignore")

    promotion_url: str = "http://127.0.0.1:8001"
    fulfillment_url: str = "http://127.0.0.1:8002"
    returns_url: str = "http://127.0.0.1:8003"
    planning_url: str = "http://127.0.0.1:8004"
    # Plain requests answer within this; SSE streams have no read timeout (they idle between heartbeats).
    upstream_timeout_s: float = 30.0
    # How often the page re-reads the plan and the promotions, in seconds.
    refresh_interval_s: float = 5.0
    # Request bodies larger than this are refused (413) before they reach a service; the services' own default.
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    def service_urls(self) -> dict[str, str]:
        return {name: str(getattr(self, f"{name}_url")).rstrip("/") for name in SERVICES}

    @classmethod
    def for_port_base(cls, port_base: int) -> ConsoleSettings:
        return cls.model_validate(
            {f"{name}_url": f"http://127.0.0.1:{port_base + i}" for i, name in enumerate(SERVICES, 1)}
        )


def env_for_port_base(port_base: int) -> dict[str, str]:
    """The environment that points a console at the services of `salesops up --port-base N`."""
    return {
        f"SALESOPS_CONSOLE_{name.upper()}_URL": f"http://127.0.0.1:{port_base + i}"
        for i, name in enumerate(SERVICES, 1)
    }
