"""Webhook delivery policy: when a failed attempt is retried, when a delivery is given up, how many attempts an
endpoint may have in flight, and when an endpoint that keeps failing is disabled."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True)
class EndpointHealth:
    """What the policy remembers of an endpoint between attempts."""

    status: EndpointStatus
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True)
class AttemptOutcome:
    """Where a delivery stands after an attempt: delivered, failed for good, or retried at `retry_at`."""

    status: DeliveryStatus
    retry_at: datetime | None


@dataclass(frozen=True)
class DeliveryPolicy:
    backoff_initial_s: float
    backoff_max_s: float
    max_attempts: int
    disable_after_failures: int
    disable_after_s: float
    endpoint_concurrency: int = 1
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.backoff_initial_s <= 0 or self.backoff_max_s <= 0:
            raise ValueError("backoff delays must be positive")
        if self.max_attempts < 1 or self.disable_after_failures < 1 or self.endpoint_concurrency < 1:
            raise ValueError("attempt and failure counts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be a fraction below 1")

    def retry_delay_s(self, attempts: int, draw: Callable[[], float] = random.random) -> float:
        """Exponential in the attempts made so far, capped, then spread by +/- `jitter` so that the retries of
        many deliveries that failed together do not all come back at the same instant."""
        exponent = min(max(attempts - 1, 0), 64)  # 2**64 already passes any cap; bounds the float arithmetic
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0**exponent)
        return base * (1 - self.jitter + 2 * self.jitter * draw())

    def after_attempt(
        self, *, ok: bool, attempts: int, now: datetime, draw: Callable[[], float] = random.random
    ) -> AttemptOutcome:
        """`attempts` counts the attempt just made."""
        if ok:
            return AttemptOutcome(DeliveryStatus.DELIVERED, None)
        if attempts >= self.max_attempts:
            return AttemptOutcome(DeliveryStatus.FAILED, None)
        return AttemptOutcome(DeliveryStatus.PENDING, now + timedelta(seconds=self.retry_delay_s(attempts, draw)))

    def endpoint_after(self, health: EndpointHealth, *, ok: bool, now: datetime, error: str | None) -> EndpointHealth:
        """One success clears the failure streak (it does not re-enable a disabled endpoint: that is the
        owner's call). An endpoint is disabled only when its failures are both many and lasting, so a short
        outage of a busy CRM never disables it, nor a long one of a quiet CRM after a few attempts."""
        if ok:
            return replace(health, consecutive_failures=0, failing_since=None)
        failures = health.consecutive_failures + 1
        since = health.failing_since or now
        persistent = failures >= self.disable_after_failures and now - since >= timedelta(seconds=self.disable_after_s)
        if persistent and health.status is EndpointStatus.ENABLED:
            return EndpointHealth(
                status=EndpointStatus.DISABLED,
                consecutive_failures=failures,
                failing_since=since,
                disabled_at=now,
                disabled_reason=f"disabled after persistent failure; last error: {error}",
            )
        return replace(health, consecutive_failures=failures, failing_since=since)

    def lanes(self, consecutive_failures: int) -> int:
        """Attempts an endpoint may have in flight at most: one while it is failing."""
        return 1 if consecutive_failures > 0 else self.endpoint_concurrency

    def lanes_after(self, lanes: int, *, ok: bool) -> int:
        """An endpoint earns lanes by answering: each success doubles them up to `endpoint_concurrency`, a
        failure takes it back to one. An endpoint starts with one, so receivers that accept and never answer
        hold one slot each, however many deliveries they have due, and cannot crowd out the others."""
        return min(self.endpoint_concurrency, max(1, lanes) * 2) if ok else 1


@dataclass(frozen=True)
class AttemptResult:
    """One attempt as the attempt log shows it: the receiver's status, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
