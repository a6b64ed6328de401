"""Settings of the promotion service: the shared `SALESOPS_*` ones; the service has no knobs of its own yet."""

from __future__ import annotations

from shared.settings import Settings


class PromotionSettings(Settings):
    """`SALESOPS_*` environment variables of the promotion service."""
