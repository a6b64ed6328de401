"""The webhook delivery policy with plain values: retry schedule, giving up, disabling, lanes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.returns_service.domain.delivery import (
    DeliveryPolicy,
    DeliveryStatus,
    EndpointHealth,
    EndpointStatus,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = DeliveryPolicy(
    backoff_initial_s=1,
    backoff_max_s=60,
    max_attempts=5,
    disable_after_failures=3,
    disable_after_s=3600,
    endpoint_concurrency=8,
)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    for attempts, base in [(1, 1), (2, 2), (3, 4), (5, 16), (10, 60), (10_000, 60)]:
        assert POLICY.retry_delay_s(attempts, draw=lambda: 0.0) == pytest.approx(base * 0.8)
        assert POLICY.retry_delay_s(attempts, draw=lambda: 1.0) == pytest.approx(base * 1.2)
        assert base * 0.8 <= POLICY.retry_delay_s(attempts) <= base * 1.2


def test_a_failed_attempt_is_retried_until_the_last_one_then_failed() -> None:
    retried = POLICY.after_attempt(ok=False, attempts=2, now=NOW, draw=lambda: 0.5)
    assert retried.status is DeliveryStatus.PENDING and retried.retry_at == NOW + timedelta(seconds=2)
    last = POLICY.after_attempt(ok=False, attempts=5, now=NOW)
    assert (last.status, last.retry_at) == (DeliveryStatus.FAILED, None)
    delivered = POLICY.after_attempt(ok=True, attempts=5, now=NOW)
    assert (delivered.status, delivered.retry_at) == (DeliveryStatus.DELIVERED, None)


def test_an_endpoint_is_disabled_only_when_failures_are_many_and_lasting() -> None:
    health = EndpointHealth(EndpointStatus.ENABLED)
    for minute in range(5):  # many failures within minutes: a short outage
        health = POLICY.endpoint_after(health, ok=False, now=NOW + timedelta(minutes=minute), error="HTTP 503")
    assert health.status is EndpointStatus.ENABLED
    assert (health.consecutive_failures, health.failing_since) == (5, NOW)

    quiet = POLICY.endpoint_after(
        EndpointHealth(EndpointStatus.ENABLED, 1, NOW - timedelta(days=2)), ok=False, now=NOW, error="HTTP 503"
    )
    assert quiet.status is EndpointStatus.ENABLED  # lasting but few failures

    later = NOW + timedelta(hours=1)
    disabled = POLICY.endpoint_after(health, ok=False, now=later, error="timeout after 5s")
    assert disabled.status is EndpointStatus.DISABLED and disabled.disabled_at == later
    assert disabled.disabled_reason is not None and "timeout after 5s" in disabled.disabled_reason


def test_one_success_clears_the_streak_but_does_not_re_enable() -> None:
    failing = EndpointHealth(EndpointStatus.ENABLED, 7, NOW - timedelta(hours=2))
    assert POLICY.endpoint_after(failing, ok=True, now=NOW, error=None) == EndpointHealth(EndpointStatus.ENABLED)
    disabled = EndpointHealth(EndpointStatus.DISABLED, 9, NOW, NOW, "disabled")
    after = POLICY.endpoint_after(disabled, ok=True, now=NOW, error=None)
    assert after.status is EndpointStatus.DISABLED and after.consecutive_failures == 0


def test_a_failing_endpoint_gets_one_lane() -> None:
    assert POLICY.lanes(consecutive_failures=0) == 8
    assert POLICY.lanes(consecutive_failures=1) == 1


def test_lanes_are_earned_by_answering_and_lost_by_failing() -> None:
    lanes, earned = 1, []
    for _ in range(5):
        lanes = POLICY.lanes_after(lanes, ok=True)
        earned.append(lanes)
    assert earned == [2, 4, 8, 8, 8]
    assert POLICY.lanes_after(8, ok=False) == 1
    assert POLICY.lanes_after(1, ok=False) == 1  # a receiver that never answers never holds more than one


@pytest.mark.parametrize(
    "changes", [{"backoff_initial_s": 0}, {"max_attempts": 0}, {"endpoint_concurrency": 0}, {"jitter": 1.0}]
)
def test_nonsense_policies_are_refused(changes: dict[str, float]) -> None:
    values = {
        "backoff_initial_s": 1.0,
        "backoff_max_s": 60.0,
        "max_attempts": 5,
        "disable_after_failures": 3,
        "disable_after_s": 3600.0,
        **changes,
    }
    with pytest.raises(ValueError):
        DeliveryPolicy(**values)  # type: ignore[arg-type]
