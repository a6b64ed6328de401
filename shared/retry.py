"""Retries with capped exponential backoff and jitter, built on tenacity: the one way the plumbing waits before
trying again (producer restarts, consumer retries and restarts, dead letters, the relay, readiness waits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

# How often a retry's wait looks at its owner's stop flag: a stopping consumer or relay must not sleep on.
_STOP_CHECK_S = 0.1

RetryHook = Callable[[BaseException, float, int], None]
"""Told before each wait: the failure, the seconds about to be waited, and the attempt that failed."""


@dataclass(frozen=True)
class Backoff:
    """Waits of `initial_s`, doubling up to `max_s`, each with up to half of `initial_s` of jitter so that
    several clients hit by the same outage do not come back in step."""

    initial_s: float
    max_s: float

    def wait(self) -> wait_base:
        return wait_exponential_jitter(multiplier=self.initial_s, max=self.max_s, jitter=self.initial_s / 2)


class Stopped(Exception):
    """Raised out of a retry's wait because its owner is stopping."""


class _GiveUpAfter(stop_base):
    """Gives up after `attempts` failures that `counts` counts; the others are retried without limit (an
    unreachable database says nothing about the event in hand). Stateful: one per retried call."""

    def __init__(self, attempts: int, counts: Callable[[BaseException], bool]) -> None:
        self._attempts = attempts
        self._counts = counts
        self.counted = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        assert retry_state.outcome is not None
        error = retry_state.outcome.exception()
        if error is not None and self._counts(error):
            self.counted += 1
        return self.counted >= self._attempts


def _every(_: BaseException) -> bool:
    return True


def _stoppable_sleep(stopping: Callable[[], bool] | None) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            if stopping is not None and stopping():
                raise Stopped
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _STOP_CHECK_S) if stopping is not None else left)

    return sleep


def _before_sleep(hook: RetryHook | None) -> Callable[[RetryCallState], None] | None:
    if hook is None:
        return None

    def tell(state: RetryCallState) -> None:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert error is not None
        hook(error, state.upcoming_sleep, state.attempt_number)

    return tell


def retrying(
    backoff: Backoff,
    *,
    retry_on: Callable[[BaseException], bool] = _every,
    give_up_after: int | None = None,
    counts: Callable[[BaseException], bool] = _every,
    deadline_s: float | None = None,
    stopping: Callable[[], bool] | None = None,
    on_retry: RetryHook | None = None,
) -> AsyncRetrying:
    """An async retry loop: `async for attempt in retrying(...): with attempt: ...`.

    Exceptions for which `retry_on` is true are retried after a backoff; others, and cancellation, propagate at
    once. After `give_up_after` failures that `counts` counts, or past `deadline_s`, the last failure
    propagates. A wait ends early with `Stopped` as soon as `stopping()` is true."""
    stop: stop_base = stop_never
    if give_up_after is not None:
        stop = _GiveUpAfter(give_up_after, counts)
    if deadline_s is not None:
        stop = stop | stop_after_delay(deadline_s)
    return AsyncRetrying(
        wait=backoff.wait(),
        stop=stop,
        retry=retry_if_exception(lambda e: isinstance(e, Exception) and retry_on(e)),
        sleep=_stoppable_sleep(stopping),
        before_sleep=_before_sleep(on_retry),
        reraise=True,
    )


def retrying_sync(
    backoff: Backoff,
    *,
    retry_on: Callable[[BaseException], bool] = _every,
    give_up_after: int | None = None,
    deadline_s: float | None = None,
    on_retry: RetryHook | None = None,
) -> Retrying:
    """The same for blocking code (the launcher and the command line): `for attempt in retrying_sync(...)`."""
    stop: stop_base = stop_never
    if give_up_after is not None:
        stop = _GiveUpAfter(give_up_after, _every)
    if deadline_s is not None:
        stop = stop | stop_after_delay(deadline_s)
    return Retrying(
        wait=backoff.wait(),
        stop=stop,
        retry=retry_if_exception(lambda e: isinstance(e, Exception) and retry_on(e)),
        before_sleep=_before_sleep(on_retry),
        reraise=True,
    )
